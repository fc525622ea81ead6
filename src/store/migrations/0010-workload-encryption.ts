import type { Kysely } from 'kysely';
import { sql } from 'kysely';

/**
 * Encrypted workloads (issue 17): `encryption` 1 when the workload's snapshots are sealed under
 * its own data key, `secret_uuid` the Barbican secret named at create (recorded; null: the
 * default key source). Rows from before are plain workloads.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('workloads')
    .addColumn('encryption', 'integer', (c) => c.notNull().defaultTo(sql`0`))
    .execute();
  await db.schema.alterTable('workloads').addColumn('secret_uuid', 'text').execute();
}
