import type { DbOrTx } from './db.js';

/** Removes metadata records of a snapshot by key (mount_vm_id, mounturl after a dismount). */
export async function deleteSnapshotMetadataKeys(db: DbOrTx, snapshotId: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await db.deleteFrom('snapshot_metadata').where('snapshot_id', '=', snapshotId).where('key', 'in', keys).execute();
}

/** Ids of live snapshots in one of `statuses`, any project (start-up reconciliation). */
export async function snapshotIdsInStatus(db: DbOrTx, statuses: string[]): Promise<string[]> {
  const rows = await db.selectFrom('snapshots').select('id').where('deleted', '=', 0).where('status', 'in', statuses).execute();
  return rows.map((r) => r.id);
}

/** Snapshot ids of the project whose metadata `key` equals `value` and whose status is one of `statuses`. */
export async function snapshotsWithMetadata(db: DbOrTx, projectId: string, key: string, value: string, statuses: string[]): Promise<string[]> {
  const rows = await db
    .selectFrom('snapshot_metadata')
    .innerJoin('snapshots', 'snapshots.id', 'snapshot_metadata.snapshot_id')
    .select('snapshots.id')
    .where('snapshots.project_id', '=', projectId)
    .where('snapshots.deleted', '=', 0)
    .where('snapshots.status', 'in', statuses)
    .where('snapshot_metadata.key', '=', key)
    .where('snapshot_metadata.value', '=', value)
    .execute();
  return rows.map((r) => r.id);
}
