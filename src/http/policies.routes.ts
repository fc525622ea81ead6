import type { FastifyPluginAsync } from 'fastify';
import type { PolicyService } from '../services/policy.service.js';
import { POLICY_FIELDS } from '../services/policy.service.js';
import { ForbiddenError } from '../lib/errors.js';
import type { RequestContext } from '../domain/context.js';
import { WLM_VERSION } from '../domain/snapshot.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { parseAssignPolicy, parseCreatePolicy, parseUpdatePolicy } from './policy.commands.js';
import { allows, param, policy } from './route-policy.js';
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
    // Whoever may manage policies sees all of them; a project sees those assigned to it.
    const seeAll = (ctx: RequestContext) => allows(d.policy, 'workload:policy_update', ctx);
    // Legacy message (tempest greps for it) instead of the policy-rule text.
    const NOT_ADMIN = 'User does not have admin privileges';

    app.get('/workload_policy', policy('workload:policy_list'), async (req) => {
      const ctx = ctxOf(req);
      return { policy_list: (await d.policies.list(ctx, seeAll(ctx))).map(policySummary) };
    });

    app.post('/workload_policy', policy('workload:policy_create'), async (req) => {
      const ctx = ctxOf(req);
      return { policy: policySummary(await d.policies.create(ctx, parseCreatePolicy(req.body))) };
    });

    const onProject = policy('workload:policy_list', { target: async (req) => ({ project_id: param(req, 'project_id'), user_id: null }) });
    app.get<{ Params: { project_id: string } }>('/workload_policy/assigned/:project_id', onProject, async (req) => {
      return { policies: (await d.policies.assignedTo(req.params.project_id)).map(policyAssignmentView) };
    });

    app.get<{ Params: { id: string } }>('/workload_policy/:id', policy('workload:policy_get'), async (req) => {
      const ctx = ctxOf(req);
      return { policy: policyDetail(await d.policies.get(ctx, req.params.id, seeAll(ctx))) };
    });

    app.put<{ Params: { id: string } }>('/workload_policy/:id', policy('workload:policy_update'), async (req) => {
      const ctx = ctxOf(req);
      return { policy: policySummary(await d.policies.update(ctx, req.params.id, parseUpdatePolicy(req.body))) };
    });

    app.delete<{ Params: { id: string } }>('/workload_policy/:id', policy('workload:policy_delete'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.policies.delete(ctx, req.params.id);
      return reply.code(202).send();
    });

    app.post<{ Params: { id: string } }>('/workload_policy/:id/assign', policy('workload:policy_apply', { deniedMessage: NOT_ADMIN }), async (req) => {
      const ctx = ctxOf(req);
      const cmd = parseAssignPolicy(req.body);
      if (cmd.removeProjects.length > 0 && !allows(d.policy, 'workload:policy_remove', ctx)) throw new ForbiddenError(NOT_ADMIN);
      const r = await d.policies.assign(ctx, req.params.id, cmd);
      return { policy: policyDetail(r.policy), failed_ids: r.failedIds };
    });

    app.get('/policy_field', policy('workload:policy_get'), async () => {
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
