import { sql, type Kysely } from 'kysely';

/**
 * Scheduler state (workloadmgr-api §2.2, §4.5; reliability D17).
 *
 * `workload_schedule_state`: one row per workload the scheduler has seen. `next_run_at` is the
 * claim token: a run fires only through `UPDATE ... SET next_run_at = <next> WHERE
 * workload_id = ? AND next_run_at = <due> AND schedule_key = <key>`, so any number of worker
 * processes fire a due slot at most once. `schedule_key` fingerprints the timing fields of the
 * workload's jobschedule; when it differs the row is re-planned from "now" (no burst of old
 * slots after an edit, a resume or downtime). `note` is the last skip reason (busy workload,
 * missed slot, global scheduler off), cleared by the next scheduled snapshot.
 *
 * `job_scheduler_global`: the global job scheduler switch, one row (id = 'global'). It
 * persists across restarts (tempest F13). Seeded enabled.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('workload_schedule_state')
    .addColumn('workload_id', 'text', (c) => c.primaryKey())
    .addColumn('schedule_key', 'text', (c) => c.notNull())
    .addColumn('next_run_at', 'bigint')
    .addColumn('last_due_at', 'bigint')
    .addColumn('last_snapshot_id', 'text')
    .addColumn('note', 'text')
    .addColumn('note_at', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('workload_schedule_state_next').on('workload_schedule_state').column('next_run_at').execute();

  await db.schema
    .createTable('job_scheduler_global')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('updated_by', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await sql`INSERT INTO job_scheduler_global (id, enabled, updated_by, updated_at) VALUES ('global', 1, NULL, 0)`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported');
}
