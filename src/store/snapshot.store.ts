import type { DbOrTx } from './db.js';
import type { PageWindow } from '../domain/page.js';
import { inWindow } from './page.js';
import type { Database, SnapshotsTable } from './schema.js';
import type { ExpressionBuilder } from 'kysely';
import type { Snapshot, SnapshotFilter, SnapshotInstance, SnapshotMetadataRecord, SnapshotStatus, SnapshotType, Task } from '../domain/snapshot.js';
import type { Scope } from './workload.store.js';
import { newId } from '../lib/ids.js';

/** Snapshots, their metadata records and tasks. Reads are scoped like workloads. */

function toSnapshot(r: SnapshotsTable): Snapshot {
  return {
    id: r.id,
    workload_id: r.workload_id,
    project_id: r.project_id,
    user_id: r.user_id,
    name: r.name,
    description: r.description,
    status: r.status as SnapshotStatus,
    snapshot_type: r.snapshot_type as SnapshotType,
    is_scheduled: r.is_scheduled === 1,
    host: r.host,
    size: r.size,
    restore_size: r.restore_size,
    uploaded_size: r.uploaded_size,
    progress_percent: r.progress_percent,
    progress_msg: r.progress_msg,
    warning_msg: r.warning_msg,
    error_msg: r.error_msg,
    time_taken: r.time_taken,
    pinned: r.pinned === 1,
    instances: JSON.parse(r.instances) as SnapshotInstance[],
    backup_target: r.backup_target,
    created_at: r.created_at,
    updated_at: r.updated_at,
    finished_at: r.finished_at,
  };
}

export async function insertSnapshot(db: DbOrTx, s: Snapshot): Promise<void> {
  await db
    .insertInto('snapshots')
    .values({
      id: s.id,
      workload_id: s.workload_id,
      project_id: s.project_id,
      user_id: s.user_id,
      name: s.name,
      description: s.description,
      status: s.status,
      snapshot_type: s.snapshot_type,
      is_scheduled: s.is_scheduled ? 1 : 0,
      host: s.host,
      size: s.size,
      restore_size: s.restore_size,
      uploaded_size: s.uploaded_size,
      progress_percent: s.progress_percent,
      progress_msg: s.progress_msg,
      warning_msg: s.warning_msg,
      error_msg: s.error_msg,
      time_taken: s.time_taken,
      pinned: s.pinned ? 1 : 0,
      instances: JSON.stringify(s.instances),
      backup_target: s.backup_target,
      created_at: s.created_at,
      updated_at: s.updated_at,
      finished_at: s.finished_at,
      deleted: 0,
      deleted_at: null,
    })
    .execute();
}

export async function getSnapshot(db: DbOrTx, scope: Scope, id: string): Promise<Snapshot | null> {
  let q = db.selectFrom('snapshots').selectAll().where('id', '=', id).where('deleted', '=', 0);
  if ('projectId' in scope) q = q.where('project_id', '=', scope.projectId);
  const r = await q.executeTakeFirst();
  return r ? toSnapshot(r) : null;
}


/** Ascending created_at (the view order tempest relies on). */
export async function listSnapshots(db: DbOrTx, scope: Scope, f: SnapshotFilter, w: PageWindow = {}): Promise<Snapshot[]> {
  let q = db.selectFrom('snapshots').selectAll().where('deleted', '=', 0);
  if ('projectId' in scope) q = q.where('project_id', '=', scope.projectId);
  if (f.workloadId) q = q.where('workload_id', '=', f.workloadId);
  if (f.host !== undefined) q = q.where('host', '=', f.host);
  if (f.dateFrom !== undefined) q = q.where('created_at', '>=', f.dateFrom);
  if (f.dateTo !== undefined) q = q.where('created_at', '<=', f.dateTo);
  if (f.status !== undefined) {
    if (f.status === 'running') q = q.where('status', 'in', ['creating', 'executing', 'uploading', 'cancelling']);
    else if (f.status === 'available') q = q.where('status', 'in', ['available', 'mounted']);
    else q = q.where('status', '=', f.status);
  }
  const rows = await inWindow(q, w, 'asc').execute();
  return rows.map(toSnapshot);
}

/** The newest available snapshot of a workload (the incremental base). */
export async function latestAvailableSnapshot(db: DbOrTx, workloadId: string): Promise<Snapshot | null> {
  const r = await db
    .selectFrom('snapshots')
    .selectAll()
    .where('workload_id', '=', workloadId)
    .where('deleted', '=', 0)
    .where('status', '=', 'available')
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return r ? toSnapshot(r) : null;
}

/** The platform checkpoints a snapshot recorded (JSON text, see schema.ts), or null. */
export async function getSnapshotCheckpoints(db: DbOrTx, id: string): Promise<string | null> {
  const r = await db.selectFrom('snapshots').select('checkpoints').where('id', '=', id).executeTakeFirst();
  return r?.checkpoints ?? null;
}

/** Snapshots that still exist (not deleted) for a workload. */
export async function countLiveSnapshots(db: DbOrTx, workloadId: string): Promise<number> {
  const r = await db
    .selectFrom('snapshots')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('workload_id', '=', workloadId)
    .where('deleted', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Conditional state change; false when the snapshot is not in one of `from`. */
export async function transitionSnapshot(
  db: DbOrTx,
  id: string,
  from: SnapshotStatus[],
  to: SnapshotStatus,
  now: number,
  extra: Partial<Omit<SnapshotsTable, 'id' | 'status'>> = {},
): Promise<boolean> {
  const res = await db.updateTable('snapshots').set({ status: to, updated_at: now, ...extra }).where('id', '=', id).where('deleted', '=', 0).where('status', 'in', from).executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Progress and other non-state fields; only while the snapshot is in one of `onlyIn`. */
export async function updateSnapshotFields(db: DbOrTx, id: string, fields: Partial<Omit<SnapshotsTable, 'id'>>, onlyIn?: SnapshotStatus[]): Promise<boolean> {
  let q = db.updateTable('snapshots').set(fields).where('id', '=', id);
  if (onlyIn) q = q.where('status', 'in', onlyIn);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/**
 * Records damage found on the backup target in `warning_msg` (the status is left alone: the
 * snapshot's other disks may still restore). False when the snapshot does not exist.
 */
export async function setSnapshotDamage(db: DbOrTx, id: string, message: string, now: number): Promise<boolean> {
  const res = await db.updateTable('snapshots').set({ warning_msg: message, updated_at: now }).where('id', '=', id).where('deleted', '=', 0).executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Clears a damage warning (prefix `prefix`) from snapshots a full verify found whole. */
export async function clearSnapshotDamage(db: DbOrTx, ids: readonly string[], prefix: string, now: number): Promise<number> {
  if (ids.length === 0) return 0;
  const res = await db
    .updateTable('snapshots')
    .set({ warning_msg: null, updated_at: now })
    .where('id', 'in', [...ids])
    .where('deleted', '=', 0)
    .where('warning_msg', 'like', `${prefix}%`)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

export async function markSnapshotDeleted(db: DbOrTx, id: string, now: number): Promise<void> {
  await db.updateTable('snapshots').set({ deleted: 1, deleted_at: now, updated_at: now }).where('id', '=', id).execute();
}

export async function snapshotMetadata(db: DbOrTx, snapshotIds: string[]): Promise<Map<string, SnapshotMetadataRecord[]>> {
  const out = new Map<string, SnapshotMetadataRecord[]>();
  if (snapshotIds.length === 0) return out;
  const rows = await db.selectFrom('snapshot_metadata').selectAll().where('snapshot_id', 'in', snapshotIds).orderBy('key').execute();
  for (const r of rows) {
    const list = out.get(r.snapshot_id) ?? [];
    list.push({ ...r });
    out.set(r.snapshot_id, list);
  }
  return out;
}

/** Inserts or updates metadata records by key (updated_at set on change). */
export async function setSnapshotMetadata(db: DbOrTx, snapshotId: string, kv: Record<string, string>, now: number): Promise<void> {
  const existing = (await snapshotMetadata(db, [snapshotId])).get(snapshotId) ?? [];
  for (const [key, value] of Object.entries(kv)) {
    const cur = existing.find((e) => e.key === key);
    if (!cur) {
      await db.insertInto('snapshot_metadata').values({ id: newId(), snapshot_id: snapshotId, key, value, created_at: now, updated_at: null }).execute();
    } else if (cur.value !== value) {
      await db.updateTable('snapshot_metadata').set({ value, updated_at: now }).where('id', '=', cur.id).execute();
    }
  }
}

export interface StorageUsage {
  usage: number;
  full: { snap_count: number; usage: number };
  incremental: { snap_count: number; usage: number };
}

/** Bytes stored on the target by the workload's available snapshots, by type. */
export async function workloadStorageUsage(db: DbOrTx, workloadId: string): Promise<StorageUsage> {
  const rows = await db
    .selectFrom('snapshots')
    .select(['snapshot_type', (eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.sum<number>('size').as('bytes')])
    .where('workload_id', '=', workloadId)
    .where('deleted', '=', 0)
    .where('status', '=', 'available')
    .groupBy('snapshot_type')
    .execute();
  const out: StorageUsage = { usage: 0, full: { snap_count: 0, usage: 0 }, incremental: { snap_count: 0, usage: 0 } };
  for (const r of rows) {
    const part = r.snapshot_type === 'full' ? out.full : out.incremental;
    part.snap_count = Number(r.n);
    part.usage = Number(r.bytes ?? 0);
    out.usage += part.usage;
  }
  return out;
}

export async function insertTask(db: DbOrTx, t: Task): Promise<void> {
  await db
    .insertInto('tasks')
    .values({ ...t, status_messages: JSON.stringify(t.status_messages) })
    .execute();
}

export async function getTask(db: DbOrTx, projectId: string | null, id: string): Promise<Task | null> {
  let q = db.selectFrom('tasks').selectAll().where('id', '=', id);
  if (projectId) q = q.where('project_id', '=', projectId);
  const r = await q.executeTakeFirst();
  return r ? { ...r, status_messages: JSON.parse(r.status_messages) as string[] } : null;
}

export async function finishTask(db: DbOrTx, id: string, status: string, message: string, now: number): Promise<void> {
  const t = await getTask(db, null, id);
  if (!t) return;
  await db
    .updateTable('tasks')
    .set({ status, status_messages: JSON.stringify([...t.status_messages, message]), updated_at: now, finished_at: now })
    .where('id', '=', id)
    .execute();
}

/** Ids of snapshots the DB says are committed on the target (GC refuses if one lacks a manifest). */
export async function committedSnapshotIds(db: DbOrTx): Promise<string[]> {
  const rows = await db.selectFrom('snapshots').select('id').where('deleted', '=', 0).where('status', 'in', ['available', 'restoring', 'mounting', 'mounted']).execute();
  return rows.map((r) => r.id);
}

/** committedSnapshotIds of one target (its GC and verify); rows naming no target are on the default. */
export async function committedSnapshotIdsOn(db: DbOrTx, target: { name: string; isDefault: boolean }): Promise<string[]> {
  const onTarget = new Set((await db.selectFrom('snapshots').select('id').where(onTargetFilter(target)).execute()).map((r) => r.id));
  return (await committedSnapshotIds(db)).filter((id) => onTarget.has(id));
}

function onTargetFilter(target: { name: string; isDefault: boolean }) {
  return (eb: ExpressionBuilder<Database, 'snapshots'>) => (target.isDefault ? eb.or([eb('backup_target', '=', target.name), eb('backup_target', 'is', null)]) : eb('backup_target', '=', target.name));
}

/** Bytes stored by the live snapshots on one target (the `used` of the backup-target list). */
export async function storedBytesOnTarget(db: DbOrTx, target: { name: string; isDefault: boolean }): Promise<{ bytes: number; full: number; incremental: number }> {
  const rows = await db
    .selectFrom('snapshots')
    .select(['snapshot_type', (eb) => eb.fn.sum<number>('size').as('bytes')])
    .where('deleted', '=', 0)
    .where(onTargetFilter(target))
    .groupBy('snapshot_type')
    .execute();
  const of = (t: string) => Number(rows.find((r) => r.snapshot_type === t)?.bytes ?? 0);
  return { bytes: of('full') + of('incremental'), full: of('full'), incremental: of('incremental') };
}
