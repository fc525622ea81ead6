import type { Kysely } from 'kysely';

/**
 * File searches (workloadmgr-api §2.6, §4.4): integer ids (the vendor's are auto-increment;
 * assigned as max + 1 inside the insert's transaction, the primary key settles races).
 * `snapshot_ids` is the JSON list the search selected, `json_resp` the vendor's result text.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('file_searches')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('project_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('vm_id', 'text', (c) => c.notNull())
    .addColumn('workload_id', 'text', (c) => c.notNull())
    .addColumn('filepath', 'text', (c) => c.notNull())
    .addColumn('snapshot_ids', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('progress_percent', 'integer', (c) => c.notNull())
    .addColumn('error_msg', 'text')
    .addColumn('json_resp', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint')
    .addColumn('deleted_at', 'bigint')
    .execute();
  await db.schema.createIndex('file_searches_project').on('file_searches').columns(['project_id', 'vm_id', 'status']).execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported');
}
