import Fastify, { type FastifyInstance } from 'fastify';
import type { TokenValidator } from '../identity/token-validator.js';
import { UnauthenticatedError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { installFaultHandling } from './faults.js';
import { installOps, type OpsOptions } from './ops.routes.js';
import type { PolicyEnforcer } from './types.js';

export interface OpsServerOptions {
  log: Logger;
  validator: TokenValidator;
  policy: PolicyEnforcer;
  keystoneUri: string;
  ops: OpsOptions;
  listen: { host: string; port: number };
}

/**
 * A second listener with nothing but /healthz, /readyz and /metrics (LIFEBOAT_METRICS_LISTEN):
 * the only HTTP a `--role worker` process serves, so its byte, chunk and backend counters can
 * be scraped; on an API process it puts monitoring on a port of its own. Same access rules
 * and answers as on the API port. Returns the listening instance (close it on shutdown).
 */
export async function startOpsServer(o: OpsServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, requestIdHeader: false, return503OnClosing: true, forceCloseConnections: 'idle' });
  installFaultHandling(app, { log: o.log, keystoneUri: o.keystoneUri });
  installOps(app, o.ops, {
    log: o.log,
    policy: o.policy,
    authenticate: async (req) => {
      const token = req.headers['x-auth-token'];
      if (typeof token !== 'string' || token === '') throw new UnauthenticatedError();
      return o.validator.validate(token, req.id);
    },
  });
  await app.listen(o.listen);
  return app;
}
