import type { DbOrTx } from './db.js';

/**
 * Store operations of disaster recovery (import from the target, reassign): which ids this
 * database has ever held, and moving a workload's rows to another project and owner.
 */

/** Of `ids`, those that have a workload row here, deleted ones included (an id is never reused). */
export async function knownWorkloadIds(db: DbOrTx, ids: readonly string[]): Promise<Map<string, { deleted: boolean }>> {
  const out = new Map<string, { deleted: boolean }>();
  if (ids.length === 0) return out;
  const rows = await db.selectFrom('workloads').select(['id', 'deleted']).where('id', 'in', [...ids]).execute();
  for (const r of rows) out.set(r.id, { deleted: r.deleted === 1 });
  return out;
}

/** Of `ids`, those that have a snapshot row here (any status, deleted included). */
export async function knownSnapshotIds(db: DbOrTx, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.selectFrom('snapshots').select('id').where('id', 'in', [...ids]).execute();
  return new Set(rows.map((r) => r.id));
}

/** Records the platform checkpoints of an imported snapshot (JSON text, as the snapshot job writes it). */
export async function setSnapshotCheckpoints(db: DbOrTx, snapshotId: string, checkpoints: string | null): Promise<void> {
  await db.updateTable('snapshots').set({ checkpoints }).where('id', '=', snapshotId).execute();
}

/**
 * Moves a workload with its members, snapshots and restores to `projectId`, owned by `userId`.
 * Only while the workload is idle (`available` or `error`); false when it is not (or gone). The
 * caller runs it in a transaction with the other workloads of the request.
 */
export async function moveWorkload(db: DbOrTx, workloadId: string, to: { projectId: string; userId: string }, now: number): Promise<boolean> {
  const r = await db
    .updateTable('workloads')
    .set({ project_id: to.projectId, user_id: to.userId, updated_at: now })
    .where('id', '=', workloadId)
    .where('deleted', '=', 0)
    .where('status', 'in', ['available', 'error'])
    .executeTakeFirst();
  if (Number(r.numUpdatedRows) !== 1) return false;
  await db.updateTable('workload_instances').set({ project_id: to.projectId }).where('workload_id', '=', workloadId).execute();
  await db.updateTable('snapshots').set({ project_id: to.projectId, user_id: to.userId }).where('workload_id', '=', workloadId).execute();
  await db.updateTable('restores').set({ project_id: to.projectId, user_id: to.userId }).where('workload_id', '=', workloadId).execute();
  return true;
}
