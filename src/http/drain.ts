import type { FastifyInstance } from 'fastify';
import { sendFault } from './faults.js';

/** Seconds a client is told to wait (Retry-After) before it tries again, on this or another server. */
export const DRAIN_RETRY_AFTER_SECONDS = 5;

/**
 * The HTTP side of graceful shutdown. Once `start()` is called (SIGTERM/SIGINT), every new
 * request is answered 503 `serviceUnavailable` with Retry-After, and every answer — the 503s
 * and those of requests already in flight, which complete normally — carries
 * `Connection: close`, so keep-alive clients move to another server instead of reusing a
 * connection to one that is going away. The listener itself stays open until the process's
 * workers are done (app.ts), so a load balancer sees 503s rather than refused connections.
 */
export class HttpDrain {
  private draining = false;

  get isDraining(): boolean {
    return this.draining;
  }

  start(): void {
    this.draining = true;
  }

  /** Installs the hooks; call right after the Fastify instance is made, before any route. */
  install(app: FastifyInstance): void {
    app.addHook('onRequest', async (_req, reply) => {
      if (!this.draining) return;
      reply.header('retry-after', String(DRAIN_RETRY_AFTER_SECONDS));
      return sendFault(reply, 503, 'The service is shutting down; retry the request.');
    });
    app.addHook('onSend', async (_req, reply, payload) => {
      if (this.draining) reply.header('connection', 'close');
      return payload;
    });
  }
}
