import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { EmbeddedIdentity } from '../identity/embedded-identity.js';
import { identityV3Version } from '../identity/keystone-token.js';
import { ForbiddenError, NotFoundError } from '../lib/errors.js';

/**
 * The embedded Keystone v3 subset over HTTP. Register with prefix `/identity`:
 *   app.register(identityRoutes, { prefix: '/identity', identity })
 * Errors are thrown as AppErrors; the app's fault handler (http/faults.ts) renders them
 * (401 with Keystone's body and WWW-Authenticate, 404 for an invalid subject token).
 */
export interface IdentityRoutesOptions {
  identity: EmbeddedIdentity;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export const identityRoutes: FastifyPluginAsync<IdentityRoutesOptions> = async (app, opts) => {
  const idp = opts.identity;
  const version = () => identityV3Version(idp.identityV3Url);

  // Keystone answers its root with 300 Multiple Choices and the list of versions;
  // keystoneauth's discovery accepts it.
  app.get('/', async (_req, reply) => reply.code(300).send({ versions: { values: [version()] } }));
  app.get('/v3', async () => ({ version: version() }));
  // With ignoreTrailingSlash the router already maps '/v3/' to '/v3'; declaring it again would throw.
  const routerOpts = (app.initialConfig as { routerOptions?: { ignoreTrailingSlash?: boolean } }).routerOptions;
  if (!routerOpts?.ignoreTrailingSlash) app.get('/v3/', async () => ({ version: version() }));

  app.post('/v3/auth/tokens', async (req, reply) => {
    const { token, body } = await idp.authenticate(req.body, { address: req.ip });
    return reply.code(201).header('x-subject-token', token).header('vary', 'X-Auth-Token').send(body);
  });

  // GET/HEAD/DELETE need a valid X-Auth-Token (any project) and act on X-Subject-Token,
  // which must be the caller's own token unless the caller is an admin or a service (403).
  app.get('/v3/auth/tokens', { exposeHeadRoute: false }, async (req, reply) => {
    const caller = await idp.validate(header(req, 'x-auth-token'), String(req.id));
    const subject = header(req, 'x-subject-token');
    const body = await idp.inspect(subject, caller);
    return reply.code(200).header('x-subject-token', subject).send(body);
  });

  // Keystone's list of the projects a token's user may scope to (the dashboard's project switch).
  app.get('/v3/auth/projects', async (req) => {
    const projects = await idp.projectsOf(header(req, 'x-auth-token'), String(req.id));
    const self = `${idp.identityV3Url}/auth/projects`;
    return {
      projects: projects.map((p) => ({ id: p.id, name: p.name, domain_id: 'default', enabled: true, is_domain: false, parent_id: 'default', description: '', links: { self: `${idp.identityV3Url}/projects/${p.id}` } })),
      links: { self, previous: null, next: null },
    };
  });

  app.head('/v3/auth/tokens', async (req, reply) => {
    const caller = await idp.validate(header(req, 'x-auth-token'), String(req.id));
    const subject = header(req, 'x-subject-token');
    try {
      await idp.inspect(subject, caller);
    } catch (e) {
      if (e instanceof NotFoundError) return reply.code(404).send();
      if (e instanceof ForbiddenError) return reply.code(403).send();
      throw e;
    }
    return reply.code(200).header('x-subject-token', subject).send();
  });

  app.delete('/v3/auth/tokens', async (req, reply) => {
    const caller = await idp.validate(header(req, 'x-auth-token'), String(req.id));
    await idp.revoke(header(req, 'x-subject-token'), caller);
    return reply.code(204).send();
  });
};
