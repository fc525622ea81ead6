import Fastify, { type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import { newRequestId } from '../lib/ids.js';
import { UnauthenticatedError, ValidationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { RequestContext } from '../domain/context.js';
import { installFaultHandling } from './faults.js';
import type { PolicyEnforcer, TokenValidator } from './types.js';

/** The legacy request body limit (osapi_max_request_body_size). */
export const BODY_LIMIT = 114688;

export interface HttpOptions {
  log: Logger;
  publicUrl: string;
  validator: TokenValidator;
  policy: PolicyEnforcer;
  /** URI put in WWW-Authenticate on 401s. */
  keystoneUri: string;
  /** Route plugins mounted under /v1/:tenant_id (after the auth hook). */
  v1Routes: FastifyPluginAsync[];
  /** Mounted at the root, outside /v1 auth (e.g. the embedded identity at /identity). */
  rootMounts?: ((app: FastifyInstance) => PromiseLike<unknown>)[];
  /** pino logger instance for Fastify's own request logging (false: none). */
  fastifyLogger?: object | false;
}

/**
 * Builds the HTTP server: OpenStack conventions on every answer (request ids, JSON faults,
 * body limit, trailing slashes), version discovery without auth, and the /v1/{tenant_id}
 * tree behind token validation and the tenant check.
 */
export async function buildHttpServer(o: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: (o.fastifyLogger ?? false) as never,
    genReqId: () => newRequestId(),
    requestIdHeader: false,
    bodyLimit: BODY_LIMIT,
    routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 200 },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // JSON only. An empty body is allowed (clients send Content-Type on body-less POSTs);
  // everything else goes through Fastify's poisoning-safe parser.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    defaultJson(req, text, (err, value) => {
      if (err) return done(new ValidationError('Malformed request body'), undefined);
      done(null, value);
    });
  });

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-compute-request-id', req.id);
    reply.header('x-openstack-request-id', req.id);
    if (!reply.hasHeader('content-type')) reply.header('content-type', 'application/json');
    return payload;
  });

  installFaultHandling(app, { log: o.log, keystoneUri: o.keystoneUri });

  const versions = () => ({
    versions: [{ id: 'v1.0', status: 'CURRENT', updated: '2012-01-04T11:33:21Z', links: [{ rel: 'self', href: `${o.publicUrl}/v1/` }] }],
  });
  app.get('/', async () => versions());
  app.get('/v1', async () => versions());

  for (const mount of o.rootMounts ?? []) await mount(app);

  await app.register(
    async (v1) => {
      v1.addHook('onRequest', async (req: FastifyRequest) => {
        const token = req.headers['x-auth-token'];
        if (typeof token !== 'string' || token === '') throw new UnauthenticatedError();
        const ctx = await o.validator.validate(token, req.id);
        ctx.requestId = req.id;
        const tenant = (req.params as { tenant_id?: string }).tenant_id;
        if (tenant !== ctx.projectId) throw new ValidationError('Malformed request url');
        req.ctx = ctx;
      });
      for (const r of o.v1Routes) await v1.register(r);
    },
    { prefix: '/v1/:tenant_id' },
  );
  return app;
}

/** The validated context of a /v1 request (the auth hook guarantees it). */
export function ctxOf(req: FastifyRequest): RequestContext {
  if (!req.ctx) throw new UnauthenticatedError();
  return req.ctx;
}
