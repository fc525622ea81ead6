import type { DbOrTx } from './db.js';
import type { NodesTable } from './schema.js';

/**
 * The node registry's rows (migration 0008): one per running process, heartbeated. Liveness
 * is decided by the reader from `heartbeat_at` (services/node.service.ts), never stored.
 */
export type NodeRow = NodesTable;

export type NodeStatus = 'up' | 'draining' | 'stopped';

export async function insertNode(db: DbOrTx, row: NodeRow): Promise<void> {
  await db.insertInto('nodes').values(row).execute();
}

/** One heartbeat: load and status now. False when the row is gone (pruned as dead). */
export async function heartbeatNode(db: DbOrTx, id: string, f: { status: NodeStatus; running_jobs: number; loadavg: number; heartbeat_at: number }): Promise<boolean> {
  const r = await db.updateTable('nodes').set(f).where('id', '=', id).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function listNodes(db: DbOrTx): Promise<NodeRow[]> {
  return db.selectFrom('nodes').selectAll().orderBy('node_name').orderBy('started_at').execute();
}

/** Removes rows whose last heartbeat is older than `before` (stopped or dead long ago). */
export async function pruneNodes(db: DbOrTx, before: number): Promise<number> {
  const r = await db.deleteFrom('nodes').where('heartbeat_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/**
 * Node names of the workers alive now: a row that runs jobs (concurrency > 0), says `up` (not
 * draining or stopped) and heartbeated at or after `since`. Per-host routing hands a job only
 * to one of these (jobs/routing.ts).
 */
export async function liveWorkerNodeNames(db: DbOrTx, since: number): Promise<Set<string>> {
  const rows = await db.selectFrom('nodes').select('node_name').where('status', '=', 'up').where('concurrency', '>', 0).where('heartbeat_at', '>=', since).execute();
  return new Set(rows.map((r) => r.node_name));
}
