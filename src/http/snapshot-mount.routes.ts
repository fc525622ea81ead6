import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { SnapshotService } from '../services/snapshot.service.js';
import type { SnapshotMountService } from '../services/snapshot-mount.service.js';
import { ValidationError } from '../lib/errors.js';
import { ctxOf } from './server.js';
import { param, policy } from './route-policy.js';
import { queryString, unwrap } from './query.js';
import { requireObject } from './fields.js';

export interface SnapshotMountRoutesDeps {
  snapshots: SnapshotService;
  mounts: SnapshotMountService;
}

/** `{"mount": {"mount_vm_id": "<uuid>", "options": {}}}` → the VM id (checked by the service). */
export function parseMountBody(body: unknown): string {
  const b = unwrap(body, 'mount');
  if (typeof b.mount_vm_id !== 'string' || b.mount_vm_id === '') throw new ValidationError('mount_vm_id is required');
  if (b.options !== undefined && b.options !== null) requireObject(b.options, 'options');
  return b.mount_vm_id;
}

function pathQuery(req: FastifyRequest, dflt?: string): string {
  const p = queryString((req.query as Record<string, unknown>).path) ?? dflt;
  if (p === undefined) throw new ValidationError('path is required');
  return p;
}

/** `attachment; filename="…"` with an ASCII fallback and the RFC 5987 UTF-8 form. */
export function attachment(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/** Snapshot mount, dismount and mounted list (workloadmgr-api §4.2.7–4.2.9) and file browse / download. */
export function snapshotMountRoutes(d: SnapshotMountRoutesDeps): FastifyPluginAsync {
  return async (app) => {
    const onSnapshot = (action: string) =>
      policy(action, { target: (req, ctx) => d.snapshots.get(ctx, param(req, 'sid'), (req.params as { wid?: string }).wid) });
    const empty = (reply: FastifyReply) => reply.code(200).header('content-type', 'application/json').send('');

    const mount = async (req: FastifyRequest<{ Params: { sid: string; wid?: string } }>, reply: FastifyReply) => {
      await d.mounts.mount(ctxOf(req), req.params.sid, req.params.wid, parseMountBody(req.body));
      return empty(reply);
    };
    app.post('/snapshots/:sid/mount', onSnapshot('snapshot:snapshot_mount'), mount);
    app.post('/workloads/:wid/snapshots/:sid/mount', onSnapshot('snapshot:snapshot_mount'), mount);

    const dismount = async (req: FastifyRequest<{ Params: { sid: string; wid?: string } }>, reply: FastifyReply) => {
      await d.mounts.dismount(ctxOf(req), req.params.sid, req.params.wid);
      return empty(reply);
    };
    app.post('/snapshots/:sid/dismount', onSnapshot('snapshot:snapshot_dismount'), dismount);
    app.post('/workloads/:wid/snapshots/:sid/dismount', onSnapshot('snapshot:snapshot_dismount'), dismount);

    const list = policy('snapshot:mounted_list');
    app.get('/snapshots/mounted/list', list, async (req) => ({ mounted_snapshots: await d.mounts.mountedList(ctxOf(req)) }));
    app.get<{ Params: { wid: string } }>('/workloads/:wid/snapshots/mounted/list', list, async (req) => ({ mounted_snapshots: await d.mounts.mountedList(ctxOf(req), req.params.wid) }));

    // Browse and download: read access to the snapshot (its show rule).
    const read = onSnapshot('snapshot:snapshot_show');
    app.get<{ Params: { sid: string } }>('/snapshots/:sid/files', read, async (req) => {
      const r = await d.mounts.listFiles(ctxOf(req), req.params.sid, pathQuery(req, '/'));
      return { path: r.path, files: r.entries, truncated: r.truncated };
    });
    app.get<{ Params: { sid: string } }>('/snapshots/:sid/files/content', read, async (req, reply) => {
      const range = typeof req.headers.range === 'string' ? req.headers.range : undefined;
      const f = await d.mounts.openFile(ctxOf(req), req.params.sid, pathQuery(req), range);
      reply.header('accept-ranges', 'bytes').header('content-disposition', attachment(f.name)).header('x-content-type-options', 'nosniff');
      if (!f.stream) return reply.code(416).header('content-range', `bytes */${f.size}`).header('content-type', 'application/json').send('');
      reply.header('content-type', 'application/octet-stream').header('content-length', String(f.size === 0 ? 0 : f.end - f.start + 1));
      if (f.partial) reply.code(206).header('content-range', `bytes ${f.start}-${f.end}/${f.size}`);
      return reply.send(f.stream);
    });
    app.get<{ Params: { sid: string } }>('/snapshots/:sid/files/archive', read, async (req, reply) => {
      const t = await d.mounts.tar(ctxOf(req), req.params.sid, pathQuery(req, '/'));
      return reply.header('content-type', 'application/x-tar').header('content-disposition', attachment(`${t.name}.tar`)).send(t.stream);
    });
  };
}
