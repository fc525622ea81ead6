import type { FastifyPluginAsync } from 'fastify';
import type { AllowedQuota, QuotaService } from '../services/quota.service.js';
import { ForbiddenError, NotFoundError, ValidationError } from '../lib/errors.js';
import type { RequestContext } from '../domain/context.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { unwrap } from './query.js';
import { allowedQuotaView, quotaTypeView } from './quota.views.js';

export interface QuotaRoutesDeps {
  quotas: QuotaService;
  policy: PolicyEnforcer;
}

/**
 * Project quotas (workloadmgr-api §4.7). Types are readable by everyone; a project reads its
 * own quotas; changes need the admin rules. Both `project_quota_types` (tempest, 6.x docs) and
 * `projects_quota_types` (4.2/5.x docs) are served.
 */
export function quotaRoutes(d: QuotaRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const allow = (action: string, ctx: RequestContext, projectId = ctx.projectId) => d.policy.enforce(action, ctx, { project_id: projectId });

    /**
     * A quota by id for `action`: the rule is checked on the caller's own project first (so a
     * denied caller learns nothing about ids), then on the quota's project, where a denial
     * answers 404 like an unknown id.
     */
    const quotaFor = async (action: string, ctx: RequestContext, id: string): Promise<AllowedQuota> => {
      allow(action, ctx);
      const q = await d.quotas.find(id);
      if (!q) throw NotFoundError.of('Allowed quota', id);
      if (q.project_id !== ctx.projectId) {
        try {
          allow(action, ctx, q.project_id);
        } catch (e) {
          if (e instanceof ForbiddenError) throw NotFoundError.of('Allowed quota', id);
          throw e;
        }
      }
      return q;
    };

    for (const base of ['/project_quota_types', '/projects_quota_types']) {
      app.get(base, async (req) => {
        allow('workload:get_quota_types', ctxOf(req));
        return { quota_types: d.quotas.listTypes().map(quotaTypeView) };
      });
      app.get<{ Params: { id: string } }>(`${base}/:id`, async (req) => {
        allow('workload:get_quota_type', ctxOf(req));
        return { quota_type: quotaTypeView(d.quotas.getType(req.params.id)) };
      });
    }

    app.post<{ Params: { id: string } }>('/project_allowed_quotas/:id', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:create_allowed_quotas', ctx, req.params.id);
      const body = req.body;
      if (typeof body !== 'object' || body === null || Array.isArray(body) || !('allowed_quotas' in body)) throw new ValidationError('Incorrect request body format');
      const created = await d.quotas.create(req.params.id, (body as { allowed_quotas: unknown }).allowed_quotas);
      return { allowed_quotas: created.map(allowedQuotaView) };
    });

    app.get<{ Params: { id: string } }>('/project_allowed_quotas/:id', async (req) => {
      const ctx = ctxOf(req);
      allow('workload:get_allowed_quotas', ctx, req.params.id);
      return { allowed_quotas: (await d.quotas.list(req.params.id)).map(allowedQuotaView) };
    });

    app.get<{ Params: { id: string } }>('/project_allowed_quota/:id', async (req) => {
      const q = await quotaFor('workload:get_allowed_quota', ctxOf(req), req.params.id);
      return { allowed_quotas: allowedQuotaView(q) };
    });

    app.put<{ Params: { id: string } }>('/update_allowed_quota/:id', async (req, reply) => {
      const ctx = ctxOf(req);
      const body = unwrap(req.body, 'allowed_quotas');
      const q = await quotaFor('workload:update_allowed_quota', ctx, req.params.id);
      const updated = await d.quotas.update(q, body);
      return reply.code(202).send({ allowed_quotas: [allowedQuotaView(updated)] });
    });

    app.delete<{ Params: { id: string } }>('/project_allowed_quotas/:id', async (req, reply) => {
      const q = await quotaFor('workload:delete_allowed_quota', ctxOf(req), req.params.id);
      await d.quotas.delete(q);
      return reply.code(202).send();
    });
  };
}
