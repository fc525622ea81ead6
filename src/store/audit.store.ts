import type { Db } from './db.js';
import type { AuditLogTable } from './schema.js';

/** The audit trail of state-changing requests (migration 0007). Rows are never updated. */
export type AuditEntry = AuditLogTable;

export async function insertAuditEntry(db: Db, e: AuditEntry): Promise<void> {
  await db.insertInto('audit_log').values(e).execute();
}

/** Entries with `from <= at < to`, newest first, at most `limit`. */
export async function listAuditEntries(db: Db, range: { from: number; to: number }, limit: number): Promise<AuditEntry[]> {
  return db
    .selectFrom('audit_log')
    .selectAll()
    .where('at', '>=', range.from)
    .where('at', '<', range.to)
    .orderBy('at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

/** Deletes entries older than `before` (retention); returns how many went. */
export async function purgeAuditEntries(db: Db, before: number): Promise<number> {
  const r = await db.deleteFrom('audit_log').where('at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}
