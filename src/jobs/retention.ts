import { inTransaction, type Db, type DbOrTx } from '../store/db.js';
import type { Repository } from '../repository/repository.js';
import { RepositorySet } from '../repository/repository-set.js';
import { getWorkload, transitionWorkload } from '../store/workload.store.js';
import { getSnapshot, markSnapshotDeleted, transitionSnapshot } from '../store/snapshot.store.js';
import { retentionCandidates } from '../store/scheduler.store.js';
import { retentionVictims } from '../domain/jobschedule.js';
import { DELETABLE_SNAPSHOT_STATES } from '../domain/snapshot.js';
import type { Clock } from '../lib/clock.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import { toSecond } from '../lib/time.js';
import type { AnyJobHandler } from './runner.js';
import { RETENTION_JOBS, type JobPayloads } from './kinds.js';
import { enqueue } from './queue.js';

/**
 * Retention (workloadmgr-api §3.2, tempest F12): after a snapshot of a workload completes, the
 * snapshots beyond its jobschedule's retention policy are deleted, oldest first, through the
 * normal delete path: snapshot → `deleting`, workload → `locked_for_delete`, a durable job
 * removes each snapshot from the repository and marks the row deleted, the workload returns to
 * `available` and GC reclaims the space. Victims are chosen by domain/jobschedule
 * retentionVictims (never the snapshot just taken, a pinned one or one being restored).
 */
export type RetentionDeleteJobPayload = JobPayloads['retention.delete'];

/**
 * Moves the workload's retention victims to `deleting` and enqueues the job that deletes them.
 * Run inside the caller's transaction; returns the victims (empty: nothing written). The caller
 * must leave the workload in `locked_for_delete` when victims were returned (see
 * releaseWorkloadWithRetention and applyRetention).
 */
export async function planRetention(tx: DbOrTx, workloadId: string, keepSnapshotId: string | null, nowMs: number): Promise<string[]> {
  const w = await getWorkload(tx, { admin: true }, workloadId);
  if (!w) return [];
  const candidates = await retentionCandidates(tx, workloadId);
  const wanted = retentionVictims(candidates, { type: w.jobschedule.retention_policy_type, value: w.jobschedule.retention_policy_value }, nowMs, keepSnapshotId);
  const now = toSecond(nowMs);
  const victims: string[] = [];
  for (const id of wanted) {
    if (await transitionSnapshot(tx, id, DELETABLE_SNAPSHOT_STATES, 'deleting', now, { progress_msg: 'Deleting snapshot (retention policy)' })) victims.push(id);
  }
  if (victims.length > 0) {
    await enqueue(tx, RETENTION_JOBS.delete, { workloadId, snapshotIds: victims }, { resourceId: workloadId, now });
  }
  return victims;
}

/**
 * Drop-in for the last step of a completed snapshot (jobs/snapshot.job.ts, inside the completing
 * transaction): instead of `locked → available`, the workload goes `locked → locked_for_delete`
 * when retention found victims (their delete job is enqueued in the same transaction), else
 * `locked → available`. So a client that waits for the workload to be `available` after a
 * snapshot then sees the retained list (tempest F12). Returns the victims.
 */
export async function releaseWorkloadWithRetention(tx: DbOrTx, workloadId: string, snapshotId: string, nowMs: number): Promise<string[]> {
  const victims = await planRetention(tx, workloadId, snapshotId, nowMs);
  await transitionWorkload(tx, workloadId, { admin: true }, ['locked'], victims.length > 0 ? 'locked_for_delete' : 'available', toSecond(nowMs));
  return victims;
}

/**
 * Applies retention to an idle workload on its own (e.g. after its retention policy changed):
 * `available → locked_for_delete` with the victims' job, in one transaction. Returns the
 * victims; empty when there are none or the workload is busy (it is applied after its next
 * snapshot anyway).
 */
export async function applyRetention(db: Db, workloadId: string, nowMs: number): Promise<string[]> {
  return inTransaction(db, async (tx) => {
    const w = await getWorkload(tx, { admin: true }, workloadId);
    if (!w || w.status !== 'available') return [];
    const candidates = await retentionCandidates(tx, workloadId);
    const wanted = retentionVictims(candidates, { type: w.jobschedule.retention_policy_type, value: w.jobschedule.retention_policy_value }, nowMs, null);
    if (wanted.length === 0) return [];
    if (!(await transitionWorkload(tx, workloadId, { admin: true }, ['available'], 'locked_for_delete', toSecond(nowMs)))) return [];
    const victims = await planRetention(tx, workloadId, null, nowMs);
    // Nothing changed after all (a race on the snapshots): give the lock back in the same commit.
    if (victims.length === 0) await transitionWorkload(tx, workloadId, { admin: true }, ['locked_for_delete'], 'available', toSecond(nowMs));
    return victims;
  });
}

export interface RetentionJobDeps {
  db: Db;
  /** The target repositories, or one repository (only its snapshot delete is needed): each snapshot is deleted from its own target. */
  repo: Pick<Repository, 'deleteSnapshot'> | RepositorySet;
  clock: Clock;
  /** Called after snapshots were deleted so space can be reclaimed (GC runs outside the job). */
  onSnapshotDeleted?: () => void;
}

/**
 * Deletes the victims one by one like the snapshot.delete job (manifest first, then the row),
 * then unlocks the workload. Idempotent: a snapshot no longer `deleting` is skipped, so the
 * reconciler simply runs it again when its worker died. A snapshot the repository refuses to
 * delete becomes `error` (retention retries it after the next snapshot) and the rest go on.
 */
export async function runRetentionDelete(d: RetentionJobDeps, p: RetentionDeleteJobPayload, log: Logger): Promise<void> {
  let deleted = 0;
  for (const id of p.snapshotIds) {
    const s = await getSnapshot(d.db, { admin: true }, id);
    if (!s || s.status !== 'deleting') continue;
    try {
      await (d.repo instanceof RepositorySet ? d.repo.get(s.backup_target) : d.repo).deleteSnapshot(s.id);
      await markSnapshotDeleted(d.db, s.id, toSecond(d.clock.now()));
      deleted++;
    } catch (e) {
      const msg = `Retention delete failed: ${errorMessage(e)}`;
      log.warn({ snapshotId: s.id, err: errorMessage(e) }, 'retention could not delete a snapshot');
      await transitionSnapshot(d.db, s.id, ['deleting'], 'error', toSecond(d.clock.now()), { error_msg: msg, progress_msg: msg });
    }
  }
  await transitionWorkload(d.db, p.workloadId, { admin: true }, ['locked_for_delete'], 'available', toSecond(d.clock.now()));
  if (deleted > 0) {
    log.info({ workloadId: p.workloadId, deleted }, 'retention deleted snapshots');
    d.onSnapshotDeleted?.();
  }
}

export function retentionJobHandlers(d: RetentionJobDeps): AnyJobHandler[] {
  return [
    {
      kind: RETENTION_JOBS.delete,
      run: (job, ctx) => runRetentionDelete(d, job.payload, ctx.log),
      onLost: (job) => runRetentionDelete(d, job.payload, silentLogger),
    },
  ];
}
