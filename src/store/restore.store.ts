import type { DbOrTx } from './db.js';
import type { PageWindow } from '../domain/page.js';
import { inWindow } from './page.js';
import type { RestoresTable } from './schema.js';
import type { Restore, RestoreKind, RestoreStatus, RestoredInstance, RestoreMetadataRecord } from '../domain/restore.js';
import type { Scope } from './workload.store.js';

/** Restores; reads are scoped like workloads and snapshots. */
function toRestore(r: RestoresTable): Restore {
  return {
    id: r.id,
    project_id: r.project_id,
    user_id: r.user_id,
    snapshot_id: r.snapshot_id,
    workload_id: r.workload_id,
    name: r.name,
    description: r.description,
    status: r.status as RestoreStatus,
    kind: r.kind as RestoreKind,
    options: JSON.parse(r.options) as Record<string, unknown>,
    host: r.host,
    size: r.size,
    uploaded_size: r.uploaded_size,
    progress_percent: r.progress_percent,
    progress_msg: r.progress_msg,
    warning_msg: r.warning_msg,
    error_msg: r.error_msg,
    time_taken: r.time_taken,
    instances: JSON.parse(r.instances) as RestoredInstance[],
    metadata: JSON.parse(r.metadata) as RestoreMetadataRecord[],
    created_at: r.created_at,
    updated_at: r.updated_at,
    finished_at: r.finished_at,
  };
}

export async function insertRestore(db: DbOrTx, r: Restore): Promise<void> {
  await db
    .insertInto('restores')
    .values({
      ...r,
      options: JSON.stringify(r.options),
      instances: JSON.stringify(r.instances),
      metadata: JSON.stringify(r.metadata),
      deleted: 0,
      deleted_at: null,
    })
    .execute();
}

export async function getRestore(db: DbOrTx, scope: Scope, id: string): Promise<Restore | null> {
  let q = db.selectFrom('restores').selectAll().where('id', '=', id).where('deleted', '=', 0);
  if ('projectId' in scope) q = q.where('project_id', '=', scope.projectId);
  const r = await q.executeTakeFirst();
  return r ? toRestore(r) : null;
}

export async function listRestores(db: DbOrTx, scope: Scope, f: { snapshotId?: string }, w: PageWindow = {}): Promise<Restore[]> {
  let q = db.selectFrom('restores').selectAll().where('deleted', '=', 0);
  if ('projectId' in scope) q = q.where('project_id', '=', scope.projectId);
  if (f.snapshotId) q = q.where('snapshot_id', '=', f.snapshotId);
  const rows = await inWindow(q, w, 'asc').execute();
  return rows.map(toRestore);
}

export async function transitionRestore(
  db: DbOrTx,
  id: string,
  from: RestoreStatus[],
  to: RestoreStatus,
  now: number,
  extra: Partial<Omit<RestoresTable, 'id' | 'status'>> = {},
): Promise<boolean> {
  const res = await db.updateTable('restores').set({ status: to, updated_at: now, ...extra }).where('id', '=', id).where('deleted', '=', 0).where('status', 'in', from).executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function updateRestoreFields(db: DbOrTx, id: string, fields: Partial<Omit<RestoresTable, 'id'>>, onlyIn?: RestoreStatus[]): Promise<boolean> {
  let q = db.updateTable('restores').set(fields).where('id', '=', id);
  if (onlyIn) q = q.where('status', 'in', onlyIn);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Marks the record deleted (restored VMs stay), only from a final state. */
export async function deleteRestoreRecord(db: DbOrTx, id: string, from: RestoreStatus[], now: number): Promise<boolean> {
  const res = await db.updateTable('restores').set({ deleted: 1, deleted_at: now, updated_at: now }).where('id', '=', id).where('deleted', '=', 0).where('status', 'in', from).executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}
