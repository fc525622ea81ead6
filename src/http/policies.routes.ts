import type { FastifyPluginAsync } from 'fastify';
import type { PolicyService } from '../services/policy.service.js';
import { POLICY_FIELDS } from '../services/policy.service.js';
import { ForbiddenError } from '../lib/errors.js';
import type { RequestContext } from '../domain/context.js';
import { WLM_VERSION } from '../domain/snapshot.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { unwrap } from './query.js';
import { policyAssignmentView, policyDetail, policySummary } from './policy.views.js';

export interface PolicyRoutesDeps {
  policies: PolicyService;
  policy: PolicyEnforcer;
}

// Fixed ids of the four policy fields (GET /policy_field).
const FIELD_IDS: Record<string, string> = {
  interval: '8e3b1a8e-3f3c-4d43-9a6b-0c3c39f0a001',
  retention_policy_type: '8e3b1a8e-3f3c-4d43-9a6b-0c3c39f0a002',
  retention_policy_value: '8e3b1a8e-3f3c-4d43-9a6b-0c3c39f0a003',
  fullbackup_interval: '8e3b1a8e-3f3c-4d43-9a6b-0c3c39f0a004',
};

/**
 * Workload policies (workloadmgr-api §4.6). Trailing slashes are ignored by the server, so
 * `/workload_policy/` (tempest) and `/workload_policy` (docs) are the same route.
 */
export function policyRoutes(d: PolicyRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const allow = (action: string, ctx: RequestContext, projectId = ctx.projectId) => d.policy.enforce(action, ctx, { project_id: projectId });
    const allowed = (action: string, ctx: RequestContext) => {
      try {
        allow(action, ctx);
        return true;
      } catch (e) {
        if (e instanceof ForbiddenError) return false;
        throw e;
      }
    };
    // Whoever may manage policies sees all of them; a project sees those assigned to it.
    const seeAll = (ctx: RequestContext) => allowed('workload:policy_update', ctx);

    app.get('/workload_policy', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:policy_list', ctx);
      return { policy_list: (await d.policies.list(ctx, seeAll(ctx))).map(policySummary) };
    });

    app.post('/workload_policy', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:policy_create', ctx);
      return { policy: policySummary(await d.policies.create(ctx, unwrap(req.body, 'workload_policy'))) };
    });

    app.get<{ Params: { project_id: string } }>('/workload_policy/assigned/:project_id', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:policy_list', ctx, req.params.project_id);
      return { policies: (await d.policies.assignedTo(req.params.project_id)).map(policyAssignmentView) };
    });

    app.get<{ Params: { id: string } }>('/workload_policy/:id', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:policy_get', ctx);
      return { policy: policyDetail(await d.policies.get(ctx, req.params.id, seeAll(ctx))) };
    });

    app.put<{ Params: { id: string } }>('/workload_policy/:id', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:policy_update', ctx);
      return { policy: policySummary(await d.policies.update(ctx, req.params.id, unwrap(req.body, 'policy'))) };
    });

    app.delete<{ Params: { id: string } }>('/workload_policy/:id', async (req, reply) => {
      const ctx = ctxOf(req);
      allow('workload:policy_delete', ctx);
      await d.policies.delete(ctx, req.params.id);
      return reply.code(202).send();
    });

    app.post<{ Params: { id: string } }>('/workload_policy/:id/assign', async (req) => {
      const ctx = ctxOf(req);
      const body = unwrap(req.body, 'policy');
      // Legacy message (tempest greps for it) instead of the policy-rule text.
      const removing = body.remove_projects !== undefined && body.remove_projects !== null && !(Array.isArray(body.remove_projects) && body.remove_projects.length === 0);
      if (!allowed('workload:policy_apply', ctx) || (removing && !allowed('workload:policy_remove', ctx))) {
        throw new ForbiddenError('User does not have admin privileges');
      }
      const r = await d.policies.assign(ctx, req.params.id, body);
      return { policy: policyDetail(r.policy), failed_ids: r.failedIds };
    });

    app.get('/policy_field', async (req) => {
      allow('workload:policy_get', ctxOf(req));
      return {
        policy_field_list: POLICY_FIELDS.map((name) => ({
          id: FIELD_IDS[name],
          name,
          type: 'text',
          created_at: '2020-01-01T00:00:00.000000',
          updated_at: null,
          deleted_at: null,
          deleted: false,
          version: WLM_VERSION,
        })),
      };
    });
  };
}
