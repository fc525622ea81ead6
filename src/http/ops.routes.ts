import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestContext } from '../domain/context.js';
import { UnauthenticatedError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { LifeboatMetrics, MetricsAccess } from '../lib/metrics.js';
import { demand } from './route-policy.js';
import type { PolicyEnforcer } from './types.js';

/** The oslo.policy action a token must pass to read /metrics. */
export const METRICS_ACTION = 'workload:get_metrics';

/** A dependency /readyz checks: resolves when reachable, throws (or hangs) otherwise. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export interface OpsOptions {
  metrics: LifeboatMetrics;
  metricsAccess: MetricsAccess;
  readiness: ReadinessCheck[];
  /** A check slower than this counts as failed (default 5 s). */
  readinessTimeoutMs?: number;
}

export interface OpsDeps {
  log: Logger;
  policy: PolicyEnforcer;
  /** Validates X-Auth-Token (no tenant in these URLs); throws UnauthenticatedError. */
  authenticate(req: FastifyRequest): Promise<RequestContext>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/** The route template of a request, never its raw URL (ids and query strings stay out of labels). */
function routeLabel(req: FastifyRequest): string {
  return req.is404 ? '(unmatched)' : (req.routeOptions?.url ?? '(unmatched)');
}

async function checkMetricsAccess(o: OpsOptions, d: OpsDeps, req: FastifyRequest): Promise<void> {
  if (o.metricsAccess === 'open') return;
  const token = req.headers['x-auth-token'];
  const hasToken = typeof token === 'string' && token !== '';
  if (o.metricsAccess === 'loopback' && !hasToken && LOOPBACK.test(req.socket.remoteAddress ?? '')) return;
  if (!hasToken) throw new UnauthenticatedError();
  demand(d.policy, METRICS_ACTION, await d.authenticate(req));
}

/** Runs one check with a deadline; never throws. */
async function probe(c: ReadinessCheck, timeoutMs: number, log: Logger): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([c.check(), deadline]);
    return true;
  } catch (e) {
    log.warn({ check: c.name, err: e instanceof Error ? e.message : String(e) }, 'readiness check failed');
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Operations endpoints outside the /v1 tree, and the HTTP metrics hook. Install before any
 * route is registered, so the hook sees every route.
 * - GET /healthz: 200 while the process serves HTTP (liveness; checks nothing else).
 * - GET /readyz: 200 when every readiness check passes (store, backup target), else 503; the
 *   body names each check `ok` or `unreachable` (details go to the log, never to the caller).
 * - GET /metrics: Prometheus text format, access as METRICS_ACCESS says.
 */
export function installOps(app: FastifyInstance, o: OpsOptions, d: OpsDeps): void {
  app.addHook('onResponse', async (req, reply) => {
    o.metrics.observeHttp(req.method, routeLabel(req), reply.statusCode, reply.elapsedTime / 1000);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const timeout = o.readinessTimeoutMs ?? 5000;
    const results = await Promise.all(o.readiness.map(async (c) => [c.name, await probe(c, timeout, d.log)] as const));
    const ready = results.every(([, ok]) => ok);
    const checks = Object.fromEntries(results.map(([name, ok]) => [name, ok ? 'ok' : 'unreachable']));
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', async (req, reply) => {
    await checkMetricsAccess(o, d, req);
    const { contentType, text } = await o.metrics.render();
    return reply.type(contentType).send(text);
  });
}
