import type { Kysely } from 'kysely';

/**
 * Several backup targets: the target a workload chose at create time
 * (`backup_target_types`) and the one each snapshot was written to. Names of configured
 * targets (config LIFEBOAT_TARGETS); NULL, the value of every row from before, means the
 * default target.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('workloads').addColumn('backup_target', 'text').execute();
  await db.schema.alterTable('snapshots').addColumn('backup_target', 'text').execute();
}
