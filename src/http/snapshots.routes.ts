import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { SnapshotService } from '../services/snapshot.service.js';
import type { WorkloadService } from '../services/workload.service.js';
import type { SnapshotFilter } from '../domain/snapshot.js';
import { ValidationError } from '../lib/errors.js';
import { parseQueryDate } from '../lib/time.js';
import type { RequestContext } from '../domain/context.js';
import { ctxOf } from './server.js';
import type { PolicyEnforcer } from './types.js';
import { queryBool, queryString } from './query.js';
import { nextPageLinks, parsePage } from './pagination.js';
import { parseTakeSnapshot } from './snapshot.commands.js';
import { allows, param, policy, unenforced } from './route-policy.js';
import { snapshotDetail, snapshotSummary, taskView } from './snapshot.views.js';

export interface SnapshotRoutesDeps {
  snapshots: SnapshotService;
  /** Finds the workload a snapshot is taken of, the policy target of that route. */
  workloads: WorkloadService;
  policy: PolicyEnforcer;
  /** The base of the `snapshots_links` a paged list carries. */
  publicUrl: string;
}

/** Snapshots (snapshots-api.md; workloadmgr-api §4.2) and tasks (§2.11). */
export function snapshotRoutes(d: SnapshotRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    /** Checked on the snapshot `:sid` names (its project and owner), inside `:wid` on nested routes. */
    const onSnapshot = (action: string) =>
      policy(action, { target: (req, ctx) => d.snapshots.get(ctx, param(req, 'sid'), (req.params as { wid?: string }).wid) });

    function date(q: Record<string, unknown>, name: 'date_from' | 'date_to'): number | undefined {
      const v = queryString(q[name]);
      if (v === undefined) return undefined;
      const ms = parseQueryDate(v);
      if (ms === null) throw new ValidationError(`Please provide valid ${name} in Format YYYY-MM-DDTHH:MM:SS`);
      return ms;
    }

    /** Filters of the list endpoints; `all` needs the admin rule, else the list is the caller's own. */
    function listOpts(req: FastifyRequest, ctx: RequestContext, workloadId?: string) {
      const q = req.query as Record<string, unknown>;
      const filter: SnapshotFilter = {};
      const wid = workloadId ?? queryString(q.workload_id);
      if (wid !== undefined) filter.workloadId = wid;
      const host = queryString(q.host);
      if (host !== undefined) filter.host = host;
      const from = date(q, 'date_from');
      let to = date(q, 'date_to');
      if (from !== undefined && to === undefined) to = Date.now();
      if (from !== undefined) filter.dateFrom = from;
      if (to !== undefined) filter.dateTo = to;
      const status = queryString(q.status);
      if (status !== undefined) filter.status = status;
      const all = queryBool(q.all, 'all') && allows(d.policy, 'workload:workload_get_all_by_admin', ctx);
      return { all, filter, withInstances: queryBool(q.get_instances, 'get_instances'), page: parsePage(q) };
    }

    const list = async (req: FastifyRequest, workloadId?: string) => {
      const ctx = ctxOf(req);
      const o = listOpts(req, ctx, workloadId);
      const items = await d.snapshots.list(ctx, o);
      return { snapshots: items.map((s) => snapshotSummary(s, o.withInstances)), ...nextPageLinks(d.publicUrl, req, 'snapshots', o.page, items.map((s) => s.id)) };
    };
    const listDetail = async (req: FastifyRequest, workloadId?: string) => {
      const ctx = ctxOf(req);
      const o = listOpts(req, ctx, workloadId);
      const items = await d.snapshots.listDetail(ctx, o);
      return { snapshots: items.map((x) => snapshotDetail(x.snapshot, x.metadata)), ...nextPageLinks(d.publicUrl, req, 'snapshots', o.page, items.map((x) => x.snapshot.id)) };
    };
    const getAll = policy('snapshot:snapshot_get_all');
    app.get('/snapshots', getAll, async (req) => list(req));
    app.get<{ Params: { wid: string } }>('/workloads/:wid/snapshots', getAll, async (req) => list(req, req.params.wid));
    app.get('/snapshots/detail', getAll, async (req) => listDetail(req));
    app.get<{ Params: { wid: string } }>('/workloads/:wid/snapshots/detail', getAll, async (req) => listDetail(req, req.params.wid));

    // Take snapshot: POST /workloads/{id}[?full=1]; the body is optional.
    const onWorkload = policy('workload:workload_snapshot', { target: (req, ctx) => d.workloads.get(ctx, param(req, 'wid')) });
    app.post<{ Params: { wid: string } }>('/workloads/:wid', onWorkload, async (req) => {
      const ctx = ctxOf(req);
      const s = await d.snapshots.take(ctx, req.params.wid, parseTakeSnapshot(req.query as Record<string, unknown>, req.body));
      return { snapshot: snapshotSummary(s) };
    });

    const show = async (req: FastifyRequest, id: string, wid?: string) => {
      const ctx = ctxOf(req);
      const x = await d.snapshots.getDetail(ctx, id, wid);
      return { snapshot: snapshotDetail(x.snapshot, x.metadata) };
    };
    app.get<{ Params: { sid: string } }>('/snapshots/:sid', onSnapshot('snapshot:snapshot_show'), async (req) => show(req, req.params.sid));
    app.get<{ Params: { wid: string; sid: string } }>('/workloads/:wid/snapshots/:sid', onSnapshot('snapshot:snapshot_show'), async (req) => show(req, req.params.sid, req.params.wid));

    const del = async (req: FastifyRequest, id: string, wid?: string) => {
      const ctx = ctxOf(req);
      const t = await d.snapshots.delete(ctx, id, wid);
      return { task: { id: t.id } };
    };
    app.delete<{ Params: { sid: string } }>('/snapshots/:sid', onSnapshot('snapshot:snapshot_delete'), async (req) => del(req, req.params.sid));
    app.delete<{ Params: { wid: string; sid: string } }>('/workloads/:wid/snapshots/:sid', onSnapshot('snapshot:snapshot_delete'), async (req) =>
      del(req, req.params.sid, req.params.wid),
    );

    // Cancel is a GET in the GUIDE (POST accepted too); 200 with an empty body.
    const cancel = async (req: FastifyRequest<{ Params: { sid: string } }>, reply: import('fastify').FastifyReply) => {
      const ctx = ctxOf(req);
      await d.snapshots.cancel(ctx, req.params.sid);
      return reply.code(200).header('content-type', 'application/json').send('');
    };
    app.get<{ Params: { sid: string } }>('/snapshots/:sid/cancel', onSnapshot('snapshot:snapshot_cancel'), cancel);
    app.post<{ Params: { sid: string } }>('/snapshots/:sid/cancel', onSnapshot('snapshot:snapshot_cancel'), cancel);

    // workloadmgr checks no rule on tasks; a task is found only in the caller's project.
    app.get<{ Params: { id: string } }>('/task/:id', unenforced('tasks are read in the caller project only; workloadmgr names no rule'), async (req) => {
      const ctx = ctxOf(req);
      return { task: taskView(await d.snapshots.getTask(ctx, req.params.id)) };
    });
  };
}
