import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { RestoreService } from '../services/restore.service.js';
import type { SnapshotService } from '../services/snapshot.service.js';
import { ctxOf } from './server.js';
import { queryString } from './query.js';
import { nextPageLinks, parsePage } from './pagination.js';
import { parseCreateRestore } from './restore.commands.js';
import { param, policy } from './route-policy.js';
import { restoreDetail, restoreSummary } from './restore.views.js';

export interface RestoreRoutesDeps {
  restores: RestoreService;
  /** Finds the snapshot a restore is made from, the policy target of a create. */
  snapshots: SnapshotService;
  publicUrl: string;
}

type Nested = { wid: string; sid: string };

/** Restores (workloadmgr-api §4.3). */
export function restoreRoutes(d: RestoreRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const nestedOf = (req: FastifyRequest) => {
      const p = req.params as Partial<Nested>;
      return p.wid !== undefined && p.sid !== undefined ? { workloadId: p.wid, snapshotId: p.sid } : undefined;
    };
    /** Checked on the snapshot restored from (`:sid`, inside `:wid` on nested routes). */
    const restoreFrom = policy('snapshot:snapshot_restore', {
      target: (req, ctx) => d.snapshots.get(ctx, param(req, 'sid'), (req.params as { wid?: string }).wid),
    });
    /** Checked on the restore `:rid` names (its project and owner). */
    const onRestore = (action: string) => policy(action, { target: (req, ctx) => d.restores.get(ctx, param(req, 'rid'), nestedOf(req)) });
    const getAll = policy('restore:restore_get_all');

    const create = async (req: FastifyRequest, reply: FastifyReply, sid: string, wid?: string) => {
      const ctx = ctxOf(req);
      const r = await d.restores.create(ctx, sid, wid, parseCreateRestore(req.body));
      return reply.code(202).send({ restore: restoreDetail(d.publicUrl, r) });
    };
    app.post<{ Params: Nested }>('/workloads/:wid/snapshots/:sid/restores', restoreFrom, (req, reply) => create(req, reply, req.params.sid, req.params.wid));
    app.post<{ Params: Nested }>('/workloads/:wid/snapshots/:sid', restoreFrom, (req, reply) => create(req, reply, req.params.sid, req.params.wid));
    app.post<{ Params: { sid: string } }>('/snapshots/:sid', restoreFrom, (req, reply) => create(req, reply, req.params.sid));

    const list = async (req: FastifyRequest, detail: boolean, nested?: Nested) => {
      const ctx = ctxOf(req);
      const q = req.query as Record<string, unknown>;
      const snapshotId = nested?.sid ?? queryString(q.snapshot_id);
      const page = parsePage(q);
      const items = await d.restores.list(ctx, { ...(snapshotId !== undefined ? { snapshotId } : {}), ...(nested ? { workloadId: nested.wid } : {}) }, page);
      return {
        restores: items.map((r) => (detail ? restoreDetail(d.publicUrl, r) : restoreSummary(d.publicUrl, r))),
        ...nextPageLinks(d.publicUrl, req, 'restores', page, items.map((r) => r.id)),
      };
    };
    app.get('/restores', getAll, (req) => list(req, false));
    app.get('/restores/detail', getAll, (req) => list(req, true));
    app.get<{ Params: Nested }>('/workloads/:wid/snapshots/:sid/restores', getAll, (req) => list(req, false, req.params));
    app.get<{ Params: Nested }>('/workloads/:wid/snapshots/:sid/restores/detail', getAll, (req) => list(req, true, req.params));

    const show = async (req: FastifyRequest, id: string, nested?: Nested) => {
      const ctx = ctxOf(req);
      const r = await d.restores.get(ctx, id, nested ? { workloadId: nested.wid, snapshotId: nested.sid } : undefined);
      return { restore: restoreDetail(d.publicUrl, r) };
    };
    app.get<{ Params: { rid: string } }>('/restores/:rid', onRestore('restore:restore_show'), (req) => show(req, req.params.rid));
    app.get<{ Params: Nested & { rid: string } }>('/workloads/:wid/snapshots/:sid/restores/:rid', onRestore('restore:restore_show'), (req) => show(req, req.params.rid, req.params));

    const del = async (req: FastifyRequest, reply: FastifyReply, id: string, nested?: Nested) => {
      const ctx = ctxOf(req);
      await d.restores.delete(ctx, id, nested ? { workloadId: nested.wid, snapshotId: nested.sid } : undefined);
      return reply.code(200).header('content-type', 'application/json').send('');
    };
    app.delete<{ Params: { rid: string } }>('/restores/:rid', onRestore('restore:restore_delete'), (req, reply) => del(req, reply, req.params.rid));
    app.delete<{ Params: Nested & { rid: string } }>('/workloads/:wid/snapshots/:sid/restores/:rid', onRestore('restore:restore_delete'), (req, reply) => del(req, reply, req.params.rid, req.params));

    const cancel = async (req: FastifyRequest<{ Params: { rid: string } }>, reply: FastifyReply) => {
      const ctx = ctxOf(req);
      await d.restores.cancel(ctx, req.params.rid);
      return reply.code(200).header('content-type', 'application/json').send('');
    };
    app.get<{ Params: { rid: string } }>('/restores/:rid/cancel', onRestore('restore:restore_cancel'), cancel);
    app.post<{ Params: { rid: string } }>('/restores/:rid/cancel', onRestore('restore:restore_cancel'), cancel);
  };
}
