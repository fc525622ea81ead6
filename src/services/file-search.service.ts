import type { Db } from '../store/db.js';
import { listSnapshots } from '../store/snapshot.store.js';
import { getFileSearch, insertFileSearch, runningSearchesOfVm, transitionFileSearch } from '../store/file-search.store.js';
import { FILE_SEARCH_JOBS } from '../jobs/kinds.js';
import { enqueue } from '../jobs/queue.js';
import type { Clock } from '../lib/clock.js';
import { InvalidStateError, NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import type { RequestContext } from '../domain/context.js';
import type { Snapshot } from '../domain/snapshot.js';
import { RUNNING_SEARCH_STATES, SEARCH_PATH, type FileSearch } from '../domain/file-search.js';
import { ownScope } from './workload.service.js';

export interface FileSearchDeps {
  db: Db;
  clock: Clock;
}

/** The vendor's search body (§4.4.1), checked for shape by http/. */
export interface FileSearchRequest {
  vmId: string;
  filepath: string;
  /** Explicit snapshots (array or comma-separated string in the body); empty: none given. */
  snapshotIds: string[];
  /** Skip this many newest snapshots (OFFSET). */
  start: number;
  /** At most this many newest snapshots (LIMIT); 0: no limit. */
  end: number;
  /** created_at window, epoch ms (inclusive); undefined: open. */
  dateFrom?: number;
  dateTo?: number;
}

export const NO_SNAPSHOTS_MESSAGE = 'There are not any valid snapshots available for search';

/**
 * Selection precedence of the vendor (§4.4.1): snapshot_ids → start/end → date range → all
 * available snapshots of the VM's workload; newest first before OFFSET/LIMIT.
 */
export function selectSnapshots(req: FileSearchRequest, snaps: Snapshot[]): Snapshot[] {
  const newestFirst = [...snaps].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  if (req.snapshotIds.length > 0) {
    const byId = new Map(newestFirst.map((s) => [s.id, s]));
    return req.snapshotIds.map((id) => {
      const s = byId.get(id.toLowerCase());
      if (!s) throw new ValidationError(`Snapshot ${id} is not an available snapshot of the VM's workload`);
      return s;
    });
  }
  if (req.start > 0 || req.end > 0) return newestFirst.slice(req.start, req.end > 0 ? req.start + req.end : undefined);
  if (req.dateFrom !== undefined || req.dateTo !== undefined) {
    return newestFirst.filter((s) => (req.dateFrom === undefined || s.created_at >= req.dateFrom) && (req.dateTo === undefined || s.created_at <= req.dateTo));
  }
  return newestFirst;
}

/**
 * File search use cases (F11): a search is a durable job over the chosen snapshots of one VM,
 * with progress, cancel and the vendor's result shape. One search per VM at a time.
 */
export class FileSearchService {
  constructor(private readonly d: FileSearchDeps) {}

  private now(): number {
    return toSecond(this.d.clock.now());
  }

  async start(ctx: RequestContext, req: FileSearchRequest): Promise<FileSearch> {
    if (!SEARCH_PATH.test(req.filepath)) throw new ValidationError('Provide valid linux filepath to search');
    if (!isUuid(req.vmId)) throw new ValidationError('vm_id must be a VM id (UUID)');
    const vmId = req.vmId.toLowerCase();
    const all = await listSnapshots(this.d.db, ownScope(ctx), {});
    const ofVm = all.filter((s) => s.instances.some((i) => i.id === vmId));
    if (ofVm.length === 0) throw NotFoundError.of('VM', req.vmId);
    const workloadId = [...ofVm].sort((a, b) => b.created_at - a.created_at)[0]!.workload_id;
    const usable = ofVm.filter((s) => s.workload_id === workloadId && (s.status === 'available' || s.status === 'mounted'));
    const chosen = selectSnapshots(req, usable);
    if ((await runningSearchesOfVm(this.d.db, ctx.projectId, vmId)).length > 0) throw new InvalidStateError(`A file search of VM ${vmId} is already running`);
    const now = this.now();
    const base = {
      project_id: ctx.projectId,
      user_id: ctx.userId,
      vm_id: vmId,
      workload_id: workloadId,
      filepath: req.filepath,
      snapshot_ids: chosen.map((s) => s.id),
      progress_percent: 0,
      json_resp: null,
      created_at: now,
      updated_at: null,
      deleted_at: null,
    };
    if (chosen.length === 0) return insertFileSearch(this.d.db, { ...base, status: 'error', error_msg: NO_SNAPSHOTS_MESSAGE }, async () => undefined);
    return insertFileSearch(this.d.db, { ...base, status: 'executing', error_msg: null }, async (tx, id) => {
      await enqueue(tx, FILE_SEARCH_JOBS.run, { searchId: id }, { resourceId: String(id), now: this.d.clock.now() });
    });
  }

  async get(ctx: RequestContext, id: string): Promise<FileSearch> {
    const n = /^\d{1,15}$/.test(id) ? Number(id) : NaN;
    const s = Number.isSafeInteger(n) ? await getFileSearch(this.d.db, ctx.projectId, n) : null;
    if (!s) throw NotFoundError.of('File search', id);
    return s;
  }

  /** Asks a running search to stop (its job sees `cancelling` and ends it as `cancelled`); no-op when it has ended. */
  async cancel(ctx: RequestContext, id: string): Promise<void> {
    const s = await this.get(ctx, id);
    await transitionFileSearch(this.d.db, s.id, RUNNING_SEARCH_STATES, 'cancelling', this.now());
  }
}
