import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { FileSearchRequest, FileSearchService } from '../services/file-search.service.js';
import type { FileSearch } from '../domain/file-search.js';
import { ValidationError } from '../lib/errors.js';
import { formatWireTime, parseQueryDate } from '../lib/time.js';
import { redactPathsOrNull } from '../lib/redact.js';
import { ctxOf } from './server.js';
import { policy } from './route-policy.js';
import { unwrap } from './query.js';

/** The §2.6 record (plus progress_percent and the snapshots searched, which the vendor lacks). */
export function fileSearchView(s: FileSearch): Record<string, unknown> {
  return {
    created_at: formatWireTime(s.created_at),
    updated_at: formatWireTime(s.updated_at),
    id: s.id,
    deleted_at: formatWireTime(s.deleted_at),
    status: s.status,
    error_msg: redactPathsOrNull(s.error_msg),
    filepath: s.filepath,
    json_resp: s.json_resp,
    vm_id: s.vm_id,
    progress_percent: s.progress_percent,
    snapshot_ids: s.snapshot_ids,
  };
}

function count(v: unknown, field: string): number {
  if (v === undefined || v === null || v === '') return 0;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,9}$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new ValidationError(`${field} must be a non-negative integer`);
  return n;
}

function date(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const ms = typeof v === 'string' ? parseQueryDate(v) : null;
  if (ms === null) throw new ValidationError(`Please provide valid ${field} in Format YYYY-MM-DDTHH:MM:SS`);
  return ms;
}

/** `{"file_search": {...}}` (§4.4.1); snapshot_ids is an array or a comma-separated string. */
export function parseFileSearch(body: unknown): FileSearchRequest {
  const b = unwrap(body, 'file_search');
  if (typeof b.vm_id !== 'string' || b.vm_id === '') throw new ValidationError('vm_id is required');
  if (typeof b.filepath !== 'string') throw new ValidationError('Provide valid linux filepath to search');
  let ids: unknown = b.snapshot_ids ?? [];
  if (typeof ids === 'string') ids = ids.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) throw new ValidationError('snapshot_ids must be a list of snapshot ids or a comma-separated string');
  const r: FileSearchRequest = { vmId: b.vm_id, filepath: b.filepath, snapshotIds: ids as string[], start: count(b.start, 'start'), end: count(b.end, 'end') };
  const from = date(b.date_from, 'date_from');
  const to = date(b.date_to, 'date_to');
  if (from !== undefined) r.dateFrom = from;
  if (to !== undefined) r.dateTo = to;
  return r;
}

/** File search (workloadmgr-api §4.4; F11) and its cancel (a Lifeboat addition, like snapshot cancel). */
export function fileSearchRoutes(d: { searches: FileSearchService }): FastifyPluginAsync {
  return async (app) => {
    const rule = policy('filesearch:search');
    app.post('/search', rule, async (req) => ({ file_search: fileSearchView(await d.searches.start(ctxOf(req), parseFileSearch(req.body))) }));
    app.get<{ Params: { id: string } }>('/search/:id', rule, async (req) => ({ file_search: fileSearchView(await d.searches.get(ctxOf(req), req.params.id)) }));
    const cancel = async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      await d.searches.cancel(ctxOf(req), req.params.id);
      return reply.code(200).header('content-type', 'application/json').send('');
    };
    app.get('/search/:id/cancel', rule, cancel);
    app.post('/search/:id/cancel', rule, cancel);
  };
}
