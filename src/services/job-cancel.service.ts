import type { DbOrTx } from '../store/db.js';
import { cancelJob, type Job } from '../store/job.store.js';
import { listSnapshots, setSnapshotMetadata, transitionSnapshot } from '../store/snapshot.store.js';
import { getRestore, transitionRestore } from '../store/restore.store.js';
import { transitionFileSearch } from '../store/file-search.store.js';
import { transitionRepoVerification } from '../store/repo-verification.store.js';
import { isJobKind, type JobKind } from '../jobs/kinds.js';
import { RUNNING_SNAPSHOT_STATES } from '../domain/snapshot.js';
import { RUNNING_RESTORE_STATES } from '../domain/restore.js';

/** What a job in flight works on, for messages: `snapshot.take of snapshot <id>`. */
export function describeJob(job: Job): string {
  const on = isJobKind(job.kind) ? RESOURCE_OF[job.kind] : 'resource';
  return `${job.kind} of ${on} ${job.resourceId}`;
}

const RESOURCE_OF: Record<JobKind, string> = {
  'workload.create': 'workload',
  'workload.reset': 'workload',
  'workload.delete': 'workload',
  'snapshot.take': 'snapshot',
  'snapshot.part': 'snapshot',
  'snapshot.delete': 'snapshot',
  'retention.delete': 'workload',
  'restore.run': 'restore',
  'file_search.run': 'file search',
  'repo.verify': 'repo verification',
};

/**
 * Cancels jobs in flight (an admin forcing a workload's lock open) and puts what each was
 * doing into a final state, in the caller's transaction: a snapshot → `cancelled`, a restore →
 * `cancelled` with its snapshot `available` again, a snapshot being deleted → `error` (delete
 * it again). Workload-level jobs need nothing more: the caller moves the workload itself.
 * A running worker notices at its next heartbeat and aborts; its own final updates are
 * conditional on the states left here, so they change nothing. `why` ends the messages:
 * "workload unlocked by admin".
 */
export async function cancelJobsInFlight(tx: DbOrTx, jobs: Job[], why: string, now: number): Promise<void> {
  for (const job of jobs) {
    if (!(await cancelJob(tx, job.id, `Cancelled: ${why}`, now))) continue; // it ended meanwhile
    if (isJobKind(job.kind)) await settleResource(tx, job.kind, job.resourceId, why, now);
  }
}

async function settleResource(tx: DbOrTx, kind: JobKind, resourceId: string, why: string, now: number): Promise<void> {
  switch (kind) {
    case 'snapshot.take':
    case 'snapshot.part': // a part of a split snapshot: the whole snapshot is cancelled (its parent and other parts stop)
      if (await transitionSnapshot(tx, resourceId, [...RUNNING_SNAPSHOT_STATES, 'cancelling'], 'cancelled', now, { progress_msg: `Snapshot cancelled: ${why}`, finished_at: now })) {
        await setSnapshotMetadata(tx, resourceId, { cancel_requested: '1' }, now);
      }
      return;
    case 'snapshot.delete':
      await failDelete(tx, resourceId, why, now);
      return;
    case 'retention.delete':
      for (const s of await listSnapshots(tx, { admin: true }, { workloadId: resourceId, status: 'deleting' })) await failDelete(tx, s.id, why, now);
      return;
    case 'restore.run': {
      const r = await getRestore(tx, { admin: true }, resourceId);
      if (r && (await transitionRestore(tx, r.id, [...RUNNING_RESTORE_STATES, 'cancelling'], 'cancelled', now, { progress_msg: `Restore cancelled: ${why}`, finished_at: now }))) {
        await transitionSnapshot(tx, r.snapshot_id, ['restoring'], 'available', now);
      }
      return;
    }
    case 'file_search.run':
      await transitionFileSearch(tx, Number(resourceId), ['executing', 'searching', 'cancelling'], 'cancelled', now, { error_msg: `File search cancelled: ${why}` });
      return;
    case 'repo.verify':
      await transitionRepoVerification(tx, resourceId, ['queued', 'running'], 'error', { error_msg: `Verify cancelled: ${why}`, finished_at: now });
      return;
    case 'workload.create':
    case 'workload.reset':
    case 'workload.delete':
      return;
  }
}

/** A delete cut short may have removed part of the snapshot: it is an error the user deletes again. */
async function failDelete(tx: DbOrTx, snapshotId: string, why: string, now: number): Promise<void> {
  const msg = `Snapshot delete cancelled (${why}); delete the snapshot again`;
  await transitionSnapshot(tx, snapshotId, ['deleting'], 'error', now, { error_msg: msg, progress_msg: msg });
}
