import type { DbOrTx } from './db.js';
import type { WorkloadScheduleStateTable } from './schema.js';
import type { JobSchedule } from '../domain/workload.js';
import type { SnapshotStatus } from '../domain/snapshot.js';
import type { RetentionCandidate } from '../domain/jobschedule.js';

/**
 * Scheduler state: the global job scheduler switch and the per-workload run plan (migration
 * 0003). The claim of a due run is a conditional update on `next_run_at`, so several worker
 * processes on one PostgreSQL fire a slot at most once (reliability D17).
 */
const GLOBAL_ID = 'global';

/** The global job scheduler switch (true when the row is missing: the default is on). */
export async function getGlobalJobScheduler(db: DbOrTx): Promise<boolean> {
  const r = await db.selectFrom('job_scheduler_global').select('enabled').where('id', '=', GLOBAL_ID).executeTakeFirst();
  return r ? r.enabled === 1 : true;
}

export async function setGlobalJobScheduler(db: DbOrTx, enabled: boolean, now: number, userId: string | null): Promise<void> {
  await db
    .insertInto('job_scheduler_global')
    .values({ id: GLOBAL_ID, enabled: enabled ? 1 : 0, updated_by: userId, updated_at: now })
    .onConflict((oc) => oc.column('id').doUpdateSet({ enabled: enabled ? 1 : 0, updated_by: userId, updated_at: now }))
    .execute();
}

export interface ScheduleState {
  workloadId: string;
  scheduleKey: string;
  nextRunAt: number | null;
  lastDueAt: number | null;
  lastSnapshotId: string | null;
  note: string | null;
  noteAt: number | null;
}

function toState(r: WorkloadScheduleStateTable): ScheduleState {
  return {
    workloadId: r.workload_id,
    scheduleKey: r.schedule_key,
    nextRunAt: r.next_run_at,
    lastDueAt: r.last_due_at,
    lastSnapshotId: r.last_snapshot_id,
    note: r.note,
    noteAt: r.note_at,
  };
}

export async function getScheduleState(db: DbOrTx, workloadId: string): Promise<ScheduleState | null> {
  const r = await db.selectFrom('workload_schedule_state').selectAll().where('workload_id', '=', workloadId).executeTakeFirst();
  return r ? toState(r) : null;
}

export interface ScheduleCandidate {
  workloadId: string;
  status: string;
  jobschedule: JobSchedule;
  state: ScheduleState | null;
}

/** Every live workload with its run plan (if the scheduler has seen it yet). */
export async function listScheduleCandidates(db: DbOrTx): Promise<ScheduleCandidate[]> {
  const rows = await db
    .selectFrom('workloads as w')
    .leftJoin('workload_schedule_state as s', 's.workload_id', 'w.id')
    .select([
      'w.id as id',
      'w.status as status',
      'w.jobschedule as jobschedule',
      's.workload_id as s_workload_id',
      's.schedule_key as schedule_key',
      's.next_run_at as next_run_at',
      's.last_due_at as last_due_at',
      's.last_snapshot_id as last_snapshot_id',
      's.note as note',
      's.note_at as note_at',
    ])
    .where('w.deleted', '=', 0)
    .orderBy('w.id')
    .execute();
  return rows.map((r) => ({
    workloadId: r.id,
    status: r.status,
    jobschedule: JSON.parse(r.jobschedule) as JobSchedule,
    state:
      r.s_workload_id === null || r.schedule_key === null
        ? null
        : {
            workloadId: r.s_workload_id,
            scheduleKey: r.schedule_key,
            nextRunAt: r.next_run_at,
            lastDueAt: r.last_due_at,
            lastSnapshotId: r.last_snapshot_id,
            note: r.note,
            noteAt: r.note_at,
          },
  }));
}

/** First plan for a workload; a concurrent first plan by another process wins silently. */
export async function insertScheduleState(db: DbOrTx, workloadId: string, scheduleKey: string, nextRunAt: number | null, now: number): Promise<void> {
  await db
    .insertInto('workload_schedule_state')
    .values({ workload_id: workloadId, schedule_key: scheduleKey, next_run_at: nextRunAt, last_due_at: null, last_snapshot_id: null, note: null, note_at: null, updated_at: now })
    .onConflict((oc) => oc.column('workload_id').doNothing())
    .execute();
}

/** Re-plans after the schedule changed; conditional on the key this process saw. */
export async function replanSchedule(db: DbOrTx, workloadId: string, oldKey: string, newKey: string, nextRunAt: number | null, now: number): Promise<boolean> {
  const res = await db
    .updateTable('workload_schedule_state')
    .set({ schedule_key: newKey, next_run_at: nextRunAt, updated_at: now })
    .where('workload_id', '=', workloadId)
    .where('schedule_key', '=', oldKey)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/**
 * Claims the run due at `due` by moving the plan to `next`. Exactly one caller gets true for
 * a given (workload, due): on PostgreSQL a concurrent claimer blocks on the row and then
 * re-checks the WHERE against the committed row (READ COMMITTED), finding it moved.
 */
export async function claimScheduledRun(db: DbOrTx, workloadId: string, scheduleKey: string, due: number, next: number | null, now: number): Promise<boolean> {
  const res = await db
    .updateTable('workload_schedule_state')
    .set({ next_run_at: next, last_due_at: due, updated_at: now })
    .where('workload_id', '=', workloadId)
    .where('schedule_key', '=', scheduleKey)
    .where('next_run_at', '=', due)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Records the outcome of a claimed run: a skip note, or the snapshot it started (note cleared). */
export async function recordScheduleOutcome(db: DbOrTx, workloadId: string, outcome: { note: string } | { snapshotId: string }, now: number): Promise<void> {
  await db
    .updateTable('workload_schedule_state')
    .set('note' in outcome ? { note: outcome.note, note_at: now, updated_at: now } : { last_snapshot_id: outcome.snapshotId, note: null, note_at: null, updated_at: now })
    .where('workload_id', '=', workloadId)
    .execute();
}

/** Drops plans of workloads that are gone. */
export async function deleteOrphanScheduleStates(db: DbOrTx): Promise<number> {
  const res = await db
    .deleteFrom('workload_schedule_state')
    .where('workload_id', 'not in', (eb) => eb.selectFrom('workloads').select('id').where('deleted', '=', 0))
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}

/**
 * Successful incrementals newer than the newest successful full, or null when the workload
 * has no successful full (fullbackup_interval counting).
 */
export async function incrementalsSinceFull(db: DbOrTx, workloadId: string): Promise<number | null> {
  const rows = await db
    .selectFrom('snapshots')
    .select(['snapshot_type'])
    .where('workload_id', '=', workloadId)
    .where('deleted', '=', 0)
    .where('status', 'in', ['available', 'restoring', 'deleting', 'mounting', 'mounted'])
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
  let n = 0;
  for (const r of rows) {
    if (r.snapshot_type === 'full') return n;
    n++;
  }
  return null;
}

/** What retention looks at: every live snapshot of the workload. */
export async function retentionCandidates(db: DbOrTx, workloadId: string): Promise<RetentionCandidate[]> {
  const rows = await db.selectFrom('snapshots').select(['id', 'status', 'created_at', 'pinned']).where('workload_id', '=', workloadId).where('deleted', '=', 0).execute();
  return rows.map((r) => ({ id: r.id, status: r.status as SnapshotStatus, created_at: r.created_at, pinned: r.pinned === 1 }));
}


/**
 * Compare-and-swap of the stored jobschedule (pause/resume): false when the row changed since
 * `before` was read (caller re-reads and retries) or the workload is gone.
 */
export async function swapJobSchedule(db: DbOrTx, workloadId: string, before: JobSchedule, after: JobSchedule, now: number): Promise<boolean> {
  const res = await db
    .updateTable('workloads')
    .set({ jobschedule: JSON.stringify(after), updated_at: now })
    .where('id', '=', workloadId)
    .where('deleted', '=', 0)
    .where('jobschedule', '=', JSON.stringify(before))
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}
