import type { DbOrTx } from '../store/db.js';
import { getWorkload, transitionWorkload } from '../store/workload.store.js';
import { insertSnapshot, latestAvailableSnapshot, setSnapshotMetadata } from '../store/snapshot.store.js';
import { SNAPSHOT_JOBS } from '../jobs/kinds.js';
import { enqueue } from '../jobs/queue.js';
import { newSnapshotRecord, type Snapshot, type SnapshotType } from '../domain/snapshot.js';
import type { Workload } from '../domain/workload.js';
import { newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import type { TargetCatalog } from '../lib/target.js';
import { enforceSnapshotQuotas } from './quota.service.js';

/** What a caller (the API or the scheduler) asks for when it starts a snapshot. */
export interface SnapshotStartRequest {
  workload: Workload;
  userId: string;
  name: string;
  description: string;
  /** The type asked for; the snapshot is `full` anyway when the workload has no base or was reset. */
  type: SnapshotType;
  isScheduled: boolean;
  /** Epoch ms, stored to the millisecond so snapshots started within one second still list in order. */
  createdAt: number;
  /** The configured targets: the snapshot records the workload's (null: the default). */
  targets: TargetCatalog;
}

/**
 * The one "take a snapshot" use case, shared by `POST /workloads/{id}` and the scheduler. Run
 * it inside the caller's transaction (the scheduler claims its slot in the same one), so that
 * either everything below commits or nothing does:
 *
 * 1. the Snapshots and Storage quotas are checked with the quota rows locked (throws
 *    QuotaExceededError / ForbiddenError; the workload stays unlocked);
 * 2. the workload is locked by a conditional update `available → locked` — null, and nothing
 *    written, when it is in any other state (another snapshot, restore, delete...);
 * 3. the type is forced to `full` for the first snapshot and after a reset;
 * 4. the snapshot row (`creating`) and its metadata records are inserted;
 * 5. the snapshot job is enqueued.
 */
export async function startSnapshot(tx: DbOrTx, req: SnapshotStartRequest): Promise<Snapshot | null> {
  const w = req.workload;
  await enforceSnapshotQuotas(tx, w.project_id);
  const at = toSecond(req.createdAt);
  if (!(await transitionWorkload(tx, w.id, { projectId: w.project_id }, ['available'], 'locked', at))) return null;
  // Read under the lock: a reset that committed after the caller's read still forces a full.
  const fresh = await getWorkload(tx, { projectId: w.project_id }, w.id);
  const type: SnapshotType = fresh?.force_full || !(await latestAvailableSnapshot(tx, w.id)) ? 'full' : req.type;
  const snap = newSnapshotRecord({
    id: newId(),
    workload_id: w.id,
    project_id: w.project_id,
    user_id: req.userId,
    name: req.name,
    description: req.description,
    snapshot_type: type,
    is_scheduled: req.isScheduled,
    backup_target: req.targets.resolve(fresh?.backup_target ?? w.backup_target),
    created_at: req.createdAt,
  });
  await insertSnapshot(tx, snap);
  await setSnapshotMetadata(tx, snap.id, initialSnapshotMetadata(w, req.targets.describe(snap.backup_target)), at);
  await enqueue(tx, SNAPSHOT_JOBS.take, { snapshotId: snap.id }, { resourceId: snap.id, now: at });
  return snap;
}

/** The metadata records workloadmgr shows on a snapshot from its start. */
function initialSnapshotMetadata(w: Workload, targetDescription: string): Record<string, string> {
  return {
    backup_media_target: targetDescription,
    cancel_requested: '0',
    data_transfer_time: '0',
    object_store_transfer_time: '0',
    hostnames: JSON.stringify(w.instances.map((i) => i.name)),
    pause_at_snapshot: '0',
    policy_id: w.metadata.policy_id ?? '',
    preferredgroup: '[]',
    topology: JSON.stringify('""'),
    workload_approx_backup_size: '0',
  };
}
