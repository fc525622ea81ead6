import { sql } from 'kysely';
import type { Db } from './db.js';

/** Store reads for operations: readiness and the jobs gauge of /metrics. */

/** Resolves when the store answers a trivial query; throws what the driver threw otherwise. */
export async function pingStore(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}

/** Jobs of the shared queue grouped by kind and status (one row per pair that has any). */
export async function countJobsByKindAndStatus(db: Db): Promise<{ kind: string; state: string; count: number }[]> {
  const rows = await db
    .selectFrom('jobs')
    .select((eb) => ['kind', 'status', eb.fn.countAll<number | string | bigint>().as('n')])
    .groupBy(['kind', 'status'])
    .execute();
  return rows.map((r) => ({ kind: r.kind, state: r.status, count: Number(r.n) }));
}
