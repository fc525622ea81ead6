import type { DbOrTx } from './db.js';
import type { ProjectAllowedQuotasTable } from './schema.js';

/**
 * Project allowed quotas (workloadmgr-api §2.8) and the usage counts they limit. At most one
 * quota per (project, type) — a unique index enforces it.
 */
export type AllowedQuota = ProjectAllowedQuotasTable;

export async function getQuota(db: DbOrTx, id: string): Promise<AllowedQuota | null> {
  return (await db.selectFrom('project_allowed_quotas').selectAll().where('id', '=', id).executeTakeFirst()) ?? null;
}

export async function getQuotaOfType(db: DbOrTx, projectId: string, typeId: string): Promise<AllowedQuota | null> {
  return (await db.selectFrom('project_allowed_quotas').selectAll().where('project_id', '=', projectId).where('quota_type_id', '=', typeId).executeTakeFirst()) ?? null;
}

export async function listQuotas(db: DbOrTx, projectId: string): Promise<AllowedQuota[]> {
  return db.selectFrom('project_allowed_quotas').selectAll().where('project_id', '=', projectId).orderBy('created_at').orderBy('quota_type_id').execute();
}

export async function insertQuota(db: DbOrTx, q: AllowedQuota): Promise<void> {
  await db.insertInto('project_allowed_quotas').values(q).execute();
}

export async function updateQuotaValues(db: DbOrTx, id: string, v: { allowed_value: number; high_watermark: number }, now: number): Promise<void> {
  await db.updateTable('project_allowed_quotas').set({ ...v, updated_at: now }).where('id', '=', id).execute();
}

export async function deleteQuota(db: DbOrTx, id: string): Promise<boolean> {
  const r = await db.deleteFrom('project_allowed_quotas').where('id', '=', id).executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

/**
 * The project's quotas of these types, locked for the rest of the transaction (a no-op update
 * takes the row locks on PostgreSQL and the write lock on SQLite). Two concurrent creates in
 * one project then check-and-insert one after the other, so neither can slip past the limit.
 */
export async function lockQuotas(db: DbOrTx, projectId: string, typeIds: string[]): Promise<AllowedQuota[]> {
  if (typeIds.length === 0) return [];
  const res = await db
    .updateTable('project_allowed_quotas')
    .set((eb) => ({ updated_at: eb.ref('updated_at') }))
    .where('project_id', '=', projectId)
    .where('quota_type_id', 'in', typeIds)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) return [];
  return db.selectFrom('project_allowed_quotas').selectAll().where('project_id', '=', projectId).where('quota_type_id', 'in', typeIds).execute();
}

// ---- usage -------------------------------------------------------------------------------

export async function countProjectWorkloads(db: DbOrTx, projectId: string): Promise<number> {
  const r = await db.selectFrom('workloads').select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).where('deleted', '=', 0).executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Protected VMs of the project: member ids of its live workloads, except `exceptWorkload`'s. */
export async function protectedInstanceIds(db: DbOrTx, projectId: string, exceptWorkload: string | null): Promise<string[]> {
  let q = db
    .selectFrom('workload_instances as wi')
    .innerJoin('workloads as w', 'w.id', 'wi.workload_id')
    .select('wi.instance_id')
    .where('w.project_id', '=', projectId)
    .where('w.deleted', '=', 0);
  if (exceptWorkload !== null) q = q.where('wi.workload_id', '!=', exceptWorkload);
  return (await q.execute()).map((r) => r.instance_id);
}

/** Member ids of one workload. */
export async function workloadInstanceIds(db: DbOrTx, workloadId: string): Promise<string[]> {
  return (await db.selectFrom('workload_instances').select('instance_id').where('workload_id', '=', workloadId).execute()).map((r) => r.instance_id);
}

/** Live (not deleted) snapshots of the project and the bytes they hold on the target. */
export async function projectSnapshotUsage(db: DbOrTx, projectId: string): Promise<{ count: number; bytes: number }> {
  const r = await db
    .selectFrom('snapshots')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('size').as('bytes')])
    .where('project_id', '=', projectId)
    .where('deleted', '=', 0)
    .executeTakeFirstOrThrow();
  return { count: Number(r.n), bytes: Number(r.bytes ?? 0) };
}
