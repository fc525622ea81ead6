import type { Kysely } from 'kysely';

/**
 * `jobs.target_node`: the node name of the only worker that may claim the job (per-host
 * routing: a snapshot of a VM whose disks are readable on one compute host only). NULL, the
 * value of every existing and most new jobs, means any worker.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('jobs').addColumn('target_node', 'text').execute();
}
