import type { Kysely } from 'kysely';

/** Restores (workloadmgr-api §2.5). Options, instances and metadata are JSON text. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('restores')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('snapshot_id', 'text', (c) => c.notNull())
    .addColumn('workload_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('options', 'text', (c) => c.notNull())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('uploaded_size', 'bigint', (c) => c.notNull())
    .addColumn('progress_percent', 'integer', (c) => c.notNull())
    .addColumn('progress_msg', 'text')
    .addColumn('warning_msg', 'text')
    .addColumn('error_msg', 'text')
    .addColumn('time_taken', 'integer', (c) => c.notNull())
    .addColumn('instances', 'text', (c) => c.notNull())
    .addColumn('metadata', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint')
    .addColumn('finished_at', 'bigint')
    .addColumn('deleted', 'integer', (c) => c.notNull())
    .addColumn('deleted_at', 'bigint')
    .execute();
  await db.schema.createIndex('restores_project').on('restores').columns(['project_id', 'deleted', 'created_at']).execute();
  await db.schema.createIndex('restores_snapshot').on('restores').columns(['snapshot_id', 'deleted']).execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported');
}
