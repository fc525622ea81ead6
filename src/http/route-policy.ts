import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestContext } from '../domain/context.js';
import { ForbiddenError, UnauthenticatedError } from '../lib/errors.js';
import type { PolicyEnforcer, PolicyTarget } from './types.js';

/**
 * Route policy: every /v1 route declares, in its route options, the oslo.policy action it is
 * checked against and, for routes on one object, how to find that object; one preHandler
 * (installed once on the /v1 tree) enforces the declaration. A route that declares nothing
 * makes the server refuse to start, so no route can forget its check.
 *
 *   app.get('/workloads/:id', policy('workload:workload_show', { target: workloadById }), handler)
 *
 * Order of a decision (the contract):
 * 1. The rule is checked on the caller's own project and user (the target of lists and
 *    creates). A caller the rule denies outright gets 403 before any lookup, so a denied
 *    caller learns nothing about which ids exist.
 * 2. With a `target`, the object is looked up (tenant scoping is the resolver's job: another
 *    project's object throws the same 404 as a missing one) and the rule is checked again on
 *    the object's project and owner, so `project_id:%(project_id)s` and
 *    `user_id:%(user_id)s` rules see the object, not the caller. A denial is 403, or
 *    `hiddenAs` (a 404) when the object belongs to another project.
 * Rules therefore must allow a caller on their own project for stage 1 to pass; every rule
 * that grants by matching the target (admin_or_owner, owner-only) does.
 */
export interface RoutePolicy {
  /** The action; a function when it depends on the request (e.g. a body that reads or writes). */
  action: string | ((req: FastifyRequest) => string);
  /** The object acted on: its project and owning user. Throws NotFound for unknown or foreign ids. */
  target?: (req: FastifyRequest, ctx: RequestContext) => Promise<PolicyTarget>;
  /** Message of the 403 instead of "Policy doesn't allow <action> to be performed." (legacy texts). */
  deniedMessage?: string;
  /** When the rule denies on an object of another project: this error (a 404) instead of a 403. */
  hiddenAs?: (req: FastifyRequest) => Error;
}

/** A route checked by no rule, with the reason why (kept in the declaration, read in review). */
export interface Unenforced {
  unenforced: string;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Required on every /v1 route; see route-policy.ts. */
    policy?: RoutePolicy | Unenforced;
  }
}

/** Route options declaring `action`; without `target` it is checked on the caller's own project. */
export function policy(action: RoutePolicy['action'], more: Omit<RoutePolicy, 'action'> = {}): { config: { policy: RoutePolicy } } {
  return { config: { policy: { action, ...more } } };
}

/** Route options for a route that no rule guards; `reason` says why that is safe. */
export function unenforced(reason: string): { config: { policy: Unenforced } } {
  return { config: { policy: { unenforced: reason } } };
}

/** The target of lists, creates and project-level actions: the caller's own project and user. */
export function ownTarget(ctx: RequestContext): PolicyTarget {
  return { project_id: ctx.projectId, user_id: ctx.userId };
}

/** A soft check on the caller's own project (e.g. "may this caller list every project?"). */
export function allows(enforcer: PolicyEnforcer, action: string, ctx: RequestContext): boolean {
  return enforcer.check(action, ctx, ownTarget(ctx));
}

/** The standard denial of `action` (oslo's text, which tempest matches). */
function policyDenied(action: string): ForbiddenError {
  return new ForbiddenError(`Policy doesn't allow ${action} to be performed.`);
}

/** A check that depends on the body, on the caller's own project: throws the standard 403 when denied. */
export function demand(enforcer: PolicyEnforcer, action: string, ctx: RequestContext): void {
  if (!allows(enforcer, action, ctx)) throw policyDenied(action);
}

/** A string route parameter (route params are strings; this only narrows the type). */
export function param(req: FastifyRequest, name: string): string {
  return String((req.params as Record<string, unknown>)[name] ?? '');
}

/** Only the fields rules may read; an object's other fields never reach the policy. */
function targetOf(o: PolicyTarget): PolicyTarget {
  return { project_id: o.project_id, user_id: o.user_id ?? null };
}

async function enforceRoutePolicy(enforcer: PolicyEnforcer, req: FastifyRequest): Promise<void> {
  if (req.is404) return; // no route: the not-found handler answers, nothing to authorize
  const decl = req.routeOptions.config.policy;
  // Unreachable for registered routes (the onRoute guard refuses them); fail closed anyway.
  if (!decl) throw new Error(`route ${req.method} ${req.routeOptions.url ?? ''} declares no policy`);
  if ('unenforced' in decl) return;
  const ctx = req.ctx;
  if (!ctx) throw new UnauthenticatedError();
  const action = typeof decl.action === 'function' ? decl.action(req) : decl.action;
  const denied = () => (decl.deniedMessage !== undefined ? new ForbiddenError(decl.deniedMessage) : policyDenied(action));
  if (!enforcer.check(action, ctx, ownTarget(ctx))) throw denied();
  if (!decl.target) return;
  const target = targetOf(await decl.target(req, ctx));
  if (enforcer.check(action, ctx, target)) return;
  if (decl.hiddenAs && target.project_id !== ctx.projectId) throw decl.hiddenAs(req);
  throw denied();
}

/**
 * Installs the policy check on `app` and every route registered below it afterwards: routes
 * without a declaration are refused at registration (the server does not start), declared
 * ones are checked before their handler runs (after the auth hook has set `req.ctx`).
 */
export function installRoutePolicy(app: FastifyInstance, enforcer: PolicyEnforcer): void {
  app.addHook('onRoute', (route) => {
    if (!route.config?.policy) throw new Error(`route ${String(route.method)} ${route.url} declares no policy (route options config.policy)`);
  });
  app.addHook('preHandler', async (req) => enforceRoutePolicy(enforcer, req));
}
