import type { Kysely } from 'kysely';

/**
 * The platform checkpoints a snapshot established, by instance id (JSON text, null when the
 * platform tracks no changes): the next incremental hands them back to the platform as its
 * base (platform/platform.ts BackupSession). The manifest carries the same record.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('snapshots').addColumn('checkpoints', 'text').execute();
}

export async function down(): Promise<void> {
  throw new Error('downgrades are not supported');
}
