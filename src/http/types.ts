import type { RequestContext } from '../domain/context.js';

/**
 * The object a policy rule is checked against: its project and its owning user (`null` when
 * nobody owns it, e.g. a project quota; a `user_id:%(user_id)s` rule then denies). For lists
 * and creates it is the caller's own project and user (route-policy.ts `ownTarget`).
 */
export type PolicyTarget = { project_id: string; user_id?: string | null };

export interface PolicyEnforcer {
  /** True when the rule of `action` allows `ctx` on `target`. */
  check(action: string, ctx: RequestContext, target: PolicyTarget): boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the /v1 auth hook from a validated token; absent on unauthenticated routes. */
    ctx?: RequestContext;
  }
}
