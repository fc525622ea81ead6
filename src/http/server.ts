import type { Socket } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import { newRequestId } from '../lib/ids.js';
import { UnauthenticatedError, ValidationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { RequestContext } from '../domain/context.js';
import type { TokenValidator } from '../identity/token-validator.js';
import { clientErrorResponse, faultRenderer, installFaultHandling, sendFault } from './faults.js';
import type { PolicyEnforcer } from './types.js';
import { installRoutePolicy } from './route-policy.js';
import { dashboardRoutes } from './dashboard.routes.js';
import type { HttpDrain } from './drain.js';
import { installOps, type OpsOptions } from './ops.routes.js';
import { installOpenApi } from './openapi.js';

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
  /** Graceful shutdown: 503 + Retry-After and no keep-alive once started (drain.ts). */
  drain?: HttpDrain;
  /** /metrics, /healthz, /readyz and the HTTP metrics hook (ops.routes.ts); absent: none. */
  ops?: OpsOptions;
  /** Installed on the /v1 tree after the auth hook, before its routes (e.g. the audit trail). */
  v1Hooks?: ((v1: FastifyInstance) => void)[];
}

/** A valid X-Auth-Token → its context; UnauthenticatedError otherwise. */
async function validateToken(o: HttpOptions, req: FastifyRequest): Promise<RequestContext> {
  const token = req.headers['x-auth-token'];
  if (typeof token !== 'string' || token === '') throw new UnauthenticatedError();
  const ctx = await o.validator.validate(token, req.id);
  ctx.requestId = req.id;
  return ctx;
}

/** The /v1 auth check: a valid token whose project is the tenant in the URL. */
async function authenticate(o: HttpOptions, req: FastifyRequest, tenant: string | undefined): Promise<RequestContext> {
  const ctx = await validateToken(o, req);
  if (tenant !== ctx.projectId) throw new ValidationError('Malformed request url');
  return ctx;
}

/** True for URLs of the authenticated /v1/{tenant_id}/... tree. */
function isV1Tree(url: string): boolean {
  return /^\/+v1\/+[^/?#]/.test(url);
}

/**
 * Errors the router raises before any route matched (bad %-encoding → 400, a path element
 * longer than maxParamLength → 414). Under /v1 the token is checked first, so an
 * unauthenticated caller learns nothing beyond "401" about URLs it may not use.
 */
function frameworkErrors(o: HttpOptions) {
  const render = faultRenderer({ log: o.log, keystoneUri: o.keystoneUri });
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply): void => {
    const url = req.raw.url ?? '';
    const check = isV1Tree(url) ? authenticate(o, req, '').catch((e: unknown) => (e instanceof ValidationError ? undefined : e)) : Promise.resolve(undefined);
    void check.then((authErr) => {
      // Fastify runs no hooks for these requests: request ids and the access log by hand.
      reply.raw.once('finish', () => logAccess(o.log, req, reply));
      reply.header('x-compute-request-id', req.id).header('x-openstack-request-id', req.id);
      render(authErr ?? err, req, reply);
    });
  };
}

/** Node's HTTP parser refused the request (e.g. headers too large): answer with a fault. */
function clientErrorHandler(o: HttpOptions) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const requestId = newRequestId();
    o.log.info({ reqId: requestId, remoteAddress: socket.remoteAddress, code: err.code }, 'request refused by the HTTP parser');
    if (socket.writable) socket.write(clientErrorResponse(err.code, requestId));
    socket.destroy(err);
  };
}

/**
 * One access-log line per answered request: client address, method, route template (never
 * the raw URL with its ids or query, never a header, so never a token), status, latency and
 * request id.
 */
function logAccess(log: Logger, req: FastifyRequest, reply: FastifyReply): void {
  log.info(
    {
      reqId: req.id,
      remoteAddress: req.ip,
      method: req.method,
      route: req.routeOptions?.url ?? '(no route)',
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
    },
    'request',
  );
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
    frameworkErrors: frameworkErrors(o),
    clientErrorHandler: clientErrorHandler(o),
  });
  o.drain?.install(app);

  // JSON only (any other body type → 415). An empty body is allowed (clients send
  // Content-Type on body-less POSTs); everything else goes through Fastify's poisoning-safe parser.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
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
  app.addHook('onResponse', async (req, reply) => logAccess(o.log, req, reply));

  installFaultHandling(app, { log: o.log, keystoneUri: o.keystoneUri });
  // Before any route: every route gets its schema (validation and /openapi.json) at registration.
  await installOpenApi(app, { publicUrl: o.publicUrl });
  if (o.ops) installOps(app, o.ops, { log: o.log, policy: o.policy, authenticate: (req) => validateToken(o, req) });

  const versions = () => ({
    versions: [{ id: 'v1.0', status: 'CURRENT', updated: '2012-01-04T11:33:21Z', links: [{ rel: 'self', href: `${o.publicUrl}/v1/` }] }],
  });
  app.get('/', async () => versions());
  app.get('/v1', async () => versions());

  for (const mount of o.rootMounts ?? []) await mount(app);
  await dashboardRoutes(app);

  await app.register(
    async (v1) => {
      v1.addHook('onRequest', async (req: FastifyRequest) => {
        req.ctx = await authenticate(o, req, (req.params as { tenant_id?: string }).tenant_id);
      });
      // Unknown URLs under /v1 answer 404 only to an authenticated caller (the hook above runs first).
      v1.setNotFoundHandler((_req, reply) => void sendFault(reply, 404, 'The resource could not be found.'));
      installRoutePolicy(v1, o.policy);
      for (const install of o.v1Hooks ?? []) install(v1);
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
