import type { DbOrTx } from './db.js';
import type { SnapshotPartsTable } from './schema.js';

/**
 * The per-host parts of a snapshot (migration 0012), each moving
 *   queued → running → written (its disks durable, `result` set) → committed (the parent's
 *   manifest names them) → done (its backup sessions ended as committed),
 * or to failed from any state before done. Every change is conditional on the state it
 * leaves, so a part settled once is never settled again.
 */
export type SnapshotPartStatus = 'queued' | 'running' | 'written' | 'committed' | 'done' | 'failed';

export interface SnapshotPart {
  id: string;
  snapshotId: string;
  node: string;
  instanceIds: string[];
  status: SnapshotPartStatus;
  /** What the part wrote (jobs/snapshot-part.job.ts `PartResult`), when done. */
  result: unknown;
  error: string | null;
  /** The bytes of its disks once its sessions are open (null before), and how many are copied. */
  bytesTotal: number | null;
  bytesDone: number;
}

function toPart(r: SnapshotPartsTable): SnapshotPart {
  return {
    id: r.id,
    snapshotId: r.snapshot_id,
    node: r.node,
    instanceIds: JSON.parse(r.instance_ids) as string[],
    status: r.status as SnapshotPartStatus,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
    error: r.error_msg,
    bytesTotal: r.bytes_total === null ? null : Number(r.bytes_total),
    bytesDone: Number(r.bytes_done),
  };
}

export async function insertSnapshotPart(db: DbOrTx, p: { id: string; snapshotId: string; node: string; instanceIds: string[] }, now: number): Promise<void> {
  await db
    .insertInto('snapshot_parts')
    .values({ id: p.id, snapshot_id: p.snapshotId, node: p.node, instance_ids: JSON.stringify(p.instanceIds), status: 'queued', result: null, error_msg: null, bytes_total: null, bytes_done: 0, created_at: now, updated_at: now })
    .execute();
}

export async function getSnapshotPart(db: DbOrTx, id: string): Promise<SnapshotPart | null> {
  const r = await db.selectFrom('snapshot_parts').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toPart(r) : null;
}

export async function listSnapshotParts(db: DbOrTx, snapshotId: string): Promise<SnapshotPart[]> {
  const rows = await db.selectFrom('snapshot_parts').selectAll().where('snapshot_id', '=', snapshotId).orderBy('node').execute();
  return rows.map(toPart);
}

/** queued → running; false when the part was settled meanwhile (e.g. failed by the parent's end). */
export async function startSnapshotPart(db: DbOrTx, id: string, now: number): Promise<boolean> {
  return move(db, id, ['queued'], { status: 'running', updated_at: now });
}

/** A running part's progress: `total` bytes to copy, `done` of them copied. */
export async function reportSnapshotPartProgress(db: DbOrTx, id: string, done: number, total: number, now: number): Promise<void> {
  await move(db, id, ['running'], { bytes_done: done, bytes_total: total, updated_at: now });
}

/** running → written with what the part wrote (all its `bytes` copied); false when it was settled meanwhile. */
export async function recordSnapshotPartResult(db: DbOrTx, id: string, result: unknown, bytes: number, now: number): Promise<boolean> {
  return move(db, id, ['running'], { status: 'written', result: JSON.stringify(result), bytes_done: bytes, bytes_total: bytes, updated_at: now });
}

/** written → committed, for every part of the snapshot (its manifest is durable). */
export async function commitSnapshotParts(db: DbOrTx, snapshotId: string, now: number): Promise<void> {
  await db.updateTable('snapshot_parts').set({ status: 'committed', updated_at: now }).where('snapshot_id', '=', snapshotId).where('status', '=', 'written').execute();
}

/** committed → done (the part's sessions ended); false when it was not committed. */
export async function endSnapshotPart(db: DbOrTx, id: string, now: number): Promise<boolean> {
  return move(db, id, ['committed'], { status: 'done', updated_at: now });
}

/** Any state before done → failed with `error`; false when already done or failed. */
export async function failSnapshotPart(db: DbOrTx, id: string, error: string, now: number): Promise<boolean> {
  return move(db, id, ['queued', 'running', 'written', 'committed'], { status: 'failed', error_msg: error, updated_at: now });
}

async function move(db: DbOrTx, id: string, from: SnapshotPartStatus[], set: Partial<SnapshotPartsTable>): Promise<boolean> {
  const r = await db.updateTable('snapshot_parts').set(set).where('id', '=', id).where('status', 'in', from).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}
