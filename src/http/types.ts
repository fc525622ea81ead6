import type { RequestContext } from '../domain/context.js';

export interface PolicyEnforcer {
  /** Throws ForbiddenError("Policy doesn't allow <action> to be performed.") on denial. */
  enforce(action: string, ctx: RequestContext, target: { project_id: string }): void;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the /v1 auth hook from a validated token; absent on unauthenticated routes. */
    ctx?: RequestContext;
  }
}
