import type { Kysely } from 'kysely';

/**
 * `snapshot_parts`: the per-host child tasks of a snapshot whose VMs sit on several compute
 * hosts (jobs/snapshot-part.job.ts). One row per host part: the parent job inserts it with the
 * part's targeted job; states and who moves them: store/snapshot-part.store.ts. `result` is
 * the JSON of what the part wrote (disk indexes, checkpoints, instances); `error_msg` why it
 * failed; `bytes_total` (once its sessions are open) and `bytes_done` its progress, which the
 * parent folds into the snapshot's.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('snapshot_parts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('snapshot_id', 'text', (c) => c.notNull())
    .addColumn('node', 'text', (c) => c.notNull())
    .addColumn('instance_ids', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('result', 'text')
    .addColumn('error_msg', 'text')
    .addColumn('bytes_total', 'bigint')
    .addColumn('bytes_done', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('snapshot_parts_snapshot').on('snapshot_parts').columns(['snapshot_id']).execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported');
}
