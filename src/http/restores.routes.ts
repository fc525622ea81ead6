import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { RestoreService } from '../services/restore.service.js';
import type { RequestContext } from '../domain/context.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { queryString, unwrap } from './query.js';
import { restoreDetail, restoreSummary } from './restore.views.js';

export interface RestoreRoutesDeps {
  restores: RestoreService;
  policy: PolicyEnforcer;
  publicUrl: string;
}

type Nested = { wid: string; sid: string };

/** Restores (workloadmgr-api §4.3). */
export function restoreRoutes(d: RestoreRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const allow = (action: string, ctx: RequestContext) => d.policy.enforce(action, ctx, { project_id: ctx.projectId });

    const create = async (req: FastifyRequest, reply: FastifyReply, sid: string, wid?: string) => {
      const ctx = ctxOf(req);
      allow('snapshot:snapshot_restore', ctx);
      const r = await d.restores.create(ctx, sid, wid, unwrap(req.body, 'restore'));
      return reply.code(202).send({ restore: restoreDetail(d.publicUrl, r) });
    };
    app.post<{ Params: Nested }>('/workloads/:wid/snapshots/:sid/restores', (req, reply) => create(req, reply, req.params.sid, req.params.wid));
    app.post<{ Params: Nested }>('/workloads/:wid/snapshots/:sid', (req, reply) => create(req, reply, req.params.sid, req.params.wid));
    app.post<{ Params: { sid: string } }>('/snapshots/:sid', (req, reply) => create(req, reply, req.params.sid));

    const list = async (req: FastifyRequest, detail: boolean, nested?: Nested) => {
      const ctx = ctxOf(req);
      allow('restore:restore_get_all', ctx);
      const q = req.query as Record<string, unknown>;
      const snapshotId = nested?.sid ?? queryString(q.snapshot_id);
      const items = await d.restores.list(ctx, { ...(snapshotId !== undefined ? { snapshotId } : {}), ...(nested ? { workloadId: nested.wid } : {}) });
      return { restores: items.map((r) => (detail ? restoreDetail(d.publicUrl, r) : restoreSummary(d.publicUrl, r))) };
    };
    app.get('/restores', (req) => list(req, false));
    app.get('/restores/detail', (req) => list(req, true));
    app.get<{ Params: Nested }>('/workloads/:wid/snapshots/:sid/restores', (req) => list(req, false, req.params));
    app.get<{ Params: Nested }>('/workloads/:wid/snapshots/:sid/restores/detail', (req) => list(req, true, req.params));

    const show = async (req: FastifyRequest, id: string, nested?: Nested) => {
      const ctx = ctxOf(req);
      allow('restore:restore_show', ctx);
      const r = await d.restores.get(ctx, id, nested ? { workloadId: nested.wid, snapshotId: nested.sid } : undefined);
      return { restore: restoreDetail(d.publicUrl, r) };
    };
    app.get<{ Params: { rid: string } }>('/restores/:rid', (req) => show(req, req.params.rid));
    app.get<{ Params: Nested & { rid: string } }>('/workloads/:wid/snapshots/:sid/restores/:rid', (req) => show(req, req.params.rid, req.params));

    const del = async (req: FastifyRequest, reply: FastifyReply, id: string, nested?: Nested) => {
      const ctx = ctxOf(req);
      allow('restore:restore_delete', ctx);
      await d.restores.delete(ctx, id, nested ? { workloadId: nested.wid, snapshotId: nested.sid } : undefined);
      return reply.code(200).header('content-type', 'application/json').send('');
    };
    app.delete<{ Params: { rid: string } }>('/restores/:rid', (req, reply) => del(req, reply, req.params.rid));
    app.delete<{ Params: Nested & { rid: string } }>('/workloads/:wid/snapshots/:sid/restores/:rid', (req, reply) => del(req, reply, req.params.rid, req.params));

    const cancel = async (req: FastifyRequest<{ Params: { rid: string } }>, reply: FastifyReply) => {
      const ctx = ctxOf(req);
      allow('restore:restore_cancel', ctx);
      await d.restores.cancel(ctx, req.params.rid);
      return reply.code(200).header('content-type', 'application/json').send('');
    };
    app.get<{ Params: { rid: string } }>('/restores/:rid/cancel', cancel);
    app.post<{ Params: { rid: string } }>('/restores/:rid/cancel', cancel);
  };
}
