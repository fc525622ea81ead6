import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { WorkloadService, WorkloadDetail } from '../services/workload.service.js';
import { NotFoundError } from '../lib/errors.js';
import { WORKLOAD_TYPES } from '../domain/workload.js';
import type { RequestContext } from '../domain/context.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { queryBool, queryString } from './query.js';
import { nextPageLinks, parsePage } from './pagination.js';
import { parseCreateWorkload, parseModifyWorkload } from './workload.commands.js';
import { allows, param, policy } from './route-policy.js';
import { workloadDetail, workloadSummary } from './workload.views.js';

export interface WorkloadRoutesDeps {
  workloads: WorkloadService;
  policy: PolicyEnforcer;
  publicUrl: string;
}

/** Workloads and workload types (workloadmgr-api §4.1). */
export function workloadRoutes(d: WorkloadRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    /** Checked on the workload `:id` names (its project and owner). */
    const onWorkload = (action: string) => policy(action, { target: (req, ctx) => d.workloads.get(ctx, param(req, 'id')) });
    const detail = (wd: WorkloadDetail, ctx: RequestContext) =>
      workloadDetail(d.publicUrl, wd.workload, { ...wd, isAdmin: ctx.isAdmin });

    /** `all_workloads` needs the admin rule; without it the list is silently the caller's own (legacy). */
    const listOpts = (req: FastifyRequest, ctx: RequestContext) => {
      const q = req.query as Record<string, unknown>;
      const all = queryBool(q.all_workloads, 'all_workloads');
      const projectId = queryString(q.project_id);
      const page = parsePage(q);
      if ((all || projectId) && allows(d.policy, 'workload:workload_get_all_by_admin', ctx)) return { all: true, page, ...(projectId ? { projectId } : {}) };
      return { all: false, page };
    };

    app.get('/workloads', policy('workload:workload_get_all'), async (req) => {
      const ctx = ctxOf(req);
      const o = listOpts(req, ctx);
      const list = await d.workloads.list(ctx, o);
      return { workloads: list.map((w) => workloadSummary(d.publicUrl, w)), ...nextPageLinks(d.publicUrl, req, 'workloads', o.page, list.map((w) => w.id)) };
    });

    app.get('/workloads/detail', policy('workload:workload_get_all'), async (req) => {
      const ctx = ctxOf(req);
      const o = listOpts(req, ctx);
      const list = await d.workloads.listDetail(ctx, o);
      return { workloads: list.map((wd) => detail(wd, ctx)), ...nextPageLinks(d.publicUrl, req, 'workloads', o.page, list.map((wd) => wd.workload.id)) };
    });

    app.post('/workloads', policy('workload:workload_create'), async (req, reply) => {
      const ctx = ctxOf(req);
      const w = await d.workloads.create(ctx, parseCreateWorkload(req.body));
      return reply.code(202).send({ workload: workloadSummary(d.publicUrl, w) });
    });

    app.get<{ Params: { id: string } }>('/workloads/:id', onWorkload('workload:workload_show'), async (req) => {
      const ctx = ctxOf(req);
      return { workload: detail(await d.workloads.getDetail(ctx, req.params.id), ctx) };
    });

    app.put<{ Params: { id: string } }>('/workloads/:id', onWorkload('workload:workload_modify'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.workloads.modify(ctx, req.params.id, parseModifyWorkload(req.body));
      return reply.code(202).send();
    });

    app.delete<{ Params: { id: string } }>('/workloads/:id', onWorkload('workload:workload_delete'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.workloads.delete(ctx, req.params.id);
      return reply.code(202).send();
    });

    app.post<{ Params: { id: string } }>('/workloads/:id/unlock', onWorkload('workload:workload_unlock'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.workloads.unlock(ctx, req.params.id);
      return reply.code(202).send();
    });

    app.post<{ Params: { id: string } }>('/workloads/:id/reset', onWorkload('workload:workload_reset'), async (req, reply) => {
      const ctx = ctxOf(req);
      await d.workloads.reset(ctx, req.params.id);
      return reply.code(202).send();
    });

    const typeView = (t: (typeof WORKLOAD_TYPES)[number], full: boolean) => ({
      id: t.id,
      status: 'available',
      links: [
        { rel: 'self', href: `${d.publicUrl}/v1/workload_types/${t.id}` },
        { rel: 'bookmark', href: `${d.publicUrl}/workload_types/${t.id}` },
      ],
      name: t.name,
      description: t.description,
      is_public: true,
      ...(full ? { created_at: '2014-01-01T00:00:00.000000', updated_at: null, user_id: null, project_id: null, metadata: [] } : {}),
    });
    app.get('/workload_types', policy('workload:workload_type_get_all'), async () => {
      return { workload_types: WORKLOAD_TYPES.map((t) => typeView(t, false)) };
    });
    app.get('/workload_types/detail', policy('workload:workload_type_get_all'), async () => {
      return { workload_types: WORKLOAD_TYPES.map((t) => typeView(t, true)) };
    });
    app.get<{ Params: { id: string } }>('/workload_types/:id', policy('workload:workload_type_show'), async (req) => {
      const t = WORKLOAD_TYPES.find((x) => x.id === req.params.id.toLowerCase());
      if (!t) throw NotFoundError.of('WorkloadType', req.params.id);
      return { workload_type: typeView(t, true) };
    });
  };
}
