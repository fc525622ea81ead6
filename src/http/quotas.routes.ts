import type { FastifyPluginAsync } from 'fastify';
import type { AllowedQuota, QuotaService } from '../services/quota.service.js';
import { NotFoundError } from '../lib/errors.js';
import { parseCreateQuotas, parseUpdateQuota } from './quota.commands.js';
import { param, policy } from './route-policy.js';
import { allowedQuotaView, quotaTypeView } from './quota.views.js';

export interface QuotaRoutesDeps {
  quotas: QuotaService;
}

/**
 * Project quotas (workloadmgr-api §4.7). Types are readable by everyone; a project reads its
 * own quotas; changes need the admin rules. Both `project_quota_types` (tempest, 6.x docs) and
 * `projects_quota_types` (4.2/5.x docs) are served.
 */
export function quotaRoutes(d: QuotaRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const quotaById = async (id: string): Promise<AllowedQuota> => {
      const q = await d.quotas.find(id);
      if (!q) throw NotFoundError.of('Allowed quota', id);
      return q;
    };
    /**
     * Checked on the quota `:id` names, which may belong to any project (quotas are an
     * operator resource); denied on another project's quota, the answer is the 404 of an unknown id.
     */
    const onQuota = (action: string) =>
      policy(action, { target: async (req) => ({ project_id: (await quotaById(param(req, 'id'))).project_id, user_id: null }), hiddenAs: (req) => NotFoundError.of('Allowed quota', param(req, 'id')) });
    /** Checked on the project `:id` names. */
    const onProject = (action: string) => policy(action, { target: async (req) => ({ project_id: param(req, 'id'), user_id: null }) });

    for (const base of ['/project_quota_types', '/projects_quota_types']) {
      app.get(base, policy('workload:get_quota_types'), async () => {
        return { quota_types: d.quotas.listTypes().map(quotaTypeView) };
      });
      app.get<{ Params: { id: string } }>(`${base}/:id`, policy('workload:get_quota_type'), async (req) => {
        return { quota_type: quotaTypeView(d.quotas.getType(req.params.id)) };
      });
    }

    app.post<{ Params: { id: string } }>('/project_allowed_quotas/:id', onProject('workload:create_allowed_quotas'), async (req) => {
      const created = await d.quotas.create(req.params.id, parseCreateQuotas(req.body, req.params.id));
      return { allowed_quotas: created.map(allowedQuotaView) };
    });

    app.get<{ Params: { id: string } }>('/project_allowed_quotas/:id', onProject('workload:get_allowed_quotas'), async (req) => {
      return { allowed_quotas: (await d.quotas.list(req.params.id)).map(allowedQuotaView) };
    });

    app.get<{ Params: { id: string } }>('/project_allowed_quota/:id', onQuota('workload:get_allowed_quota'), async (req) => {
      const q = await quotaById(req.params.id);
      return { allowed_quotas: allowedQuotaView(q) };
    });

    app.put<{ Params: { id: string } }>('/update_allowed_quota/:id', onQuota('workload:update_allowed_quota'), async (req, reply) => {
      const cmd = parseUpdateQuota(req.body);
      const updated = await d.quotas.update(await quotaById(req.params.id), cmd);
      return reply.code(202).send({ allowed_quotas: [allowedQuotaView(updated)] });
    });

    app.delete<{ Params: { id: string } }>('/project_allowed_quotas/:id', onQuota('workload:delete_allowed_quota'), async (req, reply) => {
      const q = await quotaById(req.params.id);
      await d.quotas.delete(q);
      return reply.code(202).send();
    });
  };
}
