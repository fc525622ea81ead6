import type { Kysely } from 'kysely';

/**
 * `repo_verifications`: one row per `repo verify` run on a backup target, started from the
 * admin API (a durable `repo.verify` job) or the CLI (`lifeboat repo verify`), so the admin
 * pages show when each target was last checked and what was found. Counts are the verify
 * report's; `problems` is the JSON list of its problem lines (capped), `failed_snapshots` the
 * JSON list of affected snapshot ids. Rows are history: never updated after they finish.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('repo_verifications')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('read_data_subset', 'real')
    .addColumn('mark_bad', 'integer', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('progress_percent', 'integer', (c) => c.notNull())
    .addColumn('snapshots', 'integer', (c) => c.notNull())
    .addColumn('disks', 'integer', (c) => c.notNull())
    .addColumn('packs_read', 'integer', (c) => c.notNull())
    .addColumn('chunks_checked', 'bigint', (c) => c.notNull())
    .addColumn('bytes_read', 'bigint', (c) => c.notNull())
    .addColumn('problem_count', 'integer', (c) => c.notNull())
    .addColumn('problems', 'text', (c) => c.notNull())
    .addColumn('failed_snapshots', 'text', (c) => c.notNull())
    .addColumn('error_msg', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('started_at', 'bigint')
    .addColumn('finished_at', 'bigint')
    .execute();
  await db.schema.createIndex('repo_verifications_created').on('repo_verifications').columns(['created_at']).execute();
  await db.schema.createIndex('repo_verifications_target_status').on('repo_verifications').columns(['target', 'status']).execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported');
}
