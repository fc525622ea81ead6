import type { TargetCatalog } from '../lib/target.js';
import { inTransaction, type Db } from '../store/db.js';
import { getWorkload, transitionWorkload, type Scope } from '../store/workload.store.js';
import {
  getSnapshot,
  getTask,
  insertTask,
  listSnapshots,
  setSnapshotMetadata,
  snapshotMetadata,
  transitionSnapshot,
} from '../store/snapshot.store.js';
import type { SnapshotFilter } from '../domain/snapshot.js';
import { SNAPSHOT_JOBS } from '../jobs/kinds.js';
import { enqueue } from '../jobs/queue.js';
import type { Clock } from '../lib/clock.js';
import type { RequestContext } from '../domain/context.js';
import {
  DELETABLE_SNAPSHOT_STATES,
  RUNNING_SNAPSHOT_STATES,
  type Snapshot,
  type SnapshotMetadataRecord,
  type SnapshotType,
  type Task,
} from '../domain/snapshot.js';
import { InvalidStateError, NotFoundError } from '../lib/errors.js';
import { isUuid, newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { ownScope } from './workload.service.js';
import { startSnapshot } from './snapshot-start.service.js';
import type { PageRequest } from '../domain/page.js';
import { pageWindow } from './page.js';

export interface SnapshotServiceDeps {
  db: Db;
  clock: Clock;
  /** Where snapshots are stored, for the backup_media_target record. */
  targets: TargetCatalog;
}

/** A take-snapshot request, checked for shape by http/ (snapshot.commands.ts). */
export interface TakeSnapshotCommand {
  name: string;
  description: string;
  /** What the caller asked for; the start service may still force a full. */
  type: SnapshotType;
  isScheduled: boolean;
}

export interface SnapshotWithMetadata {
  snapshot: Snapshot;
  metadata: SnapshotMetadataRecord[];
}

/**
 * Snapshot use cases. Taking a snapshot locks the workload with a conditional update and
 * enqueues the job in the same transaction, so two requests (even to two API processes)
 * cannot both start one.
 */
export class SnapshotService {
  constructor(private readonly deps: SnapshotServiceDeps) {}

  private now(): number {
    return toSecond(this.deps.clock.now());
  }

  async take(ctx: RequestContext, workloadId: string, cmd: TakeSnapshotCommand): Promise<Snapshot> {
    const scope = ownScope(ctx);
    const w = isUuid(workloadId) ? await getWorkload(this.deps.db, scope, workloadId.toLowerCase()) : null;
    if (!w) throw NotFoundError.of('Workload', workloadId);
    const createdAt = this.deps.clock.now();
    return inTransaction(this.deps.db, async (tx) => {
      const snap = await startSnapshot(tx, { workload: w, userId: ctx.userId, name: cmd.name, description: cmd.description, type: cmd.type, isScheduled: cmd.isScheduled, createdAt, targets: this.deps.targets });
      if (!snap) throw new InvalidStateError("Workload must be in the 'available' state to take a snapshot");
      return snap;
    });
  }

  async list(ctx: RequestContext, opts: { all: boolean; filter: SnapshotFilter; page?: PageRequest }): Promise<Snapshot[]> {
    const scope: Scope = opts.all ? { admin: true } : ownScope(ctx);
    if (opts.filter.workloadId !== undefined) {
      const wid = opts.filter.workloadId;
      const w = isUuid(wid) ? await getWorkload(this.deps.db, scope, wid.toLowerCase()) : null;
      if (!w) throw NotFoundError.of('Workload', wid);
      opts.filter.workloadId = w.id;
    }
    return listSnapshots(this.deps.db, scope, opts.filter, await pageWindow(this.deps.db, 'snapshots', scope, opts.page));
  }

  async listDetail(ctx: RequestContext, opts: { all: boolean; filter: SnapshotFilter; page?: PageRequest }): Promise<SnapshotWithMetadata[]> {
    const list = await this.list(ctx, opts);
    const md = await snapshotMetadata(this.deps.db, list.map((s) => s.id));
    return list.map((s) => ({ snapshot: s, metadata: md.get(s.id) ?? [] }));
  }

  /** `workloadId` set for the nested routes: the snapshot must belong to that workload. */
  async get(ctx: RequestContext, id: string, workloadId?: string): Promise<Snapshot> {
    const s = isUuid(id) ? await getSnapshot(this.deps.db, ownScope(ctx), id.toLowerCase()) : null;
    if (!s || (workloadId !== undefined && s.workload_id !== workloadId.toLowerCase())) throw NotFoundError.of('Snapshot', id);
    return s;
  }

  async getDetail(ctx: RequestContext, id: string, workloadId?: string): Promise<SnapshotWithMetadata> {
    const s = await this.get(ctx, id, workloadId);
    const md = await snapshotMetadata(this.deps.db, [s.id]);
    return { snapshot: s, metadata: md.get(s.id) ?? [] };
  }

  /**
   * Starts deleting a snapshot: snapshot → deleting and workload → locked_for_delete in one
   * transaction, with the delete job and its task. The job removes the manifest; GC frees space.
   */
  async delete(ctx: RequestContext, id: string, workloadId?: string): Promise<Task> {
    const s = await this.get(ctx, id, workloadId);
    const now = this.now();
    const task: Task = {
      id: newId(),
      project_id: s.project_id,
      display_name: 'Snapshot Delete',
      resource_id: s.id,
      status: 'starting',
      status_messages: [`Deleting snapshot ${s.id}`],
      created_at: now,
      updated_at: null,
      finished_at: null,
    };
    await inTransaction(this.deps.db, async (tx) => {
      const ok = await transitionSnapshot(tx, s.id, DELETABLE_SNAPSHOT_STATES, 'deleting', now);
      if (!ok) throw new InvalidStateError("Snapshot status must be 'available' or 'error' or 'cancelled'");
      const locked = await transitionWorkload(tx, s.workload_id, ownScope(ctx), ['available'], 'locked_for_delete', now);
      if (!locked) throw new InvalidStateError("Workload must be in the 'available' state to delete a snapshot");
      await insertTask(tx, task);
      await enqueue(tx, SNAPSHOT_JOBS.delete, { snapshotId: s.id, taskId: task.id }, { resourceId: s.id, now });
    });
    return task;
  }

  /** Requests cancellation of a running snapshot; a no-op on final states. */
  async cancel(ctx: RequestContext, id: string): Promise<void> {
    const s = await this.get(ctx, id);
    if (!RUNNING_SNAPSHOT_STATES.includes(s.status)) return;
    const now = this.now();
    await inTransaction(this.deps.db, async (tx) => {
      if (await transitionSnapshot(tx, s.id, RUNNING_SNAPSHOT_STATES, 'cancelling', now, { progress_msg: 'Snapshot is being cancelled' })) {
        await setSnapshotMetadata(tx, s.id, { cancel_requested: '1' }, now);
      }
    });
  }

  async getTask(ctx: RequestContext, id: string): Promise<Task> {
    const t = isUuid(id) ? await getTask(this.deps.db, ctx.projectId, id.toLowerCase()) : null;
    if (!t) throw NotFoundError.of('Task', id);
    return t;
  }
}
