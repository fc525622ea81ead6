import type { Db } from '../store/db.js';
import { getSnapshotCheckpoints, latestAvailableSnapshot } from '../store/snapshot.store.js';
import type { Checkpoint } from '../platform/platform.js';
import type { Repository } from '../repository/repository.js';
import type { Manifest } from '../repository/manifest.format.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';

/**
 * The base of an incremental: the newest available snapshot's manifest (its disk indexes are
 * reused) and the platform checkpoints it recorded (handed back to the platform at begin).
 */
export interface SnapshotBase {
  snapshotId: string;
  manifest: Manifest;
  /** By instance id; only checkpoints the DB row and the manifest agree on. */
  checkpoints: Map<string, Checkpoint>;
}

/** Checkpoints as stored in the snapshot row and the manifest meta: `{instanceId: Checkpoint}`. */
export type CheckpointRecord = Record<string, Checkpoint>;

export function checkpointRecord(entries: Iterable<[string, Checkpoint | null]>): CheckpointRecord | null {
  const out: CheckpointRecord = {};
  let any = false;
  for (const [id, c] of entries) {
    if (!c) continue;
    out[id] = c.state === undefined ? { name: c.name } : { name: c.name, state: c.state };
    any = true;
  }
  return any ? out : null;
}

/** Reads a stored record leniently: a malformed entry is dropped (its instance then reads in full). */
export function parseCheckpoints(v: unknown): Map<string, Checkpoint> {
  const out = new Map<string, Checkpoint>();
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return out;
  for (const [id, c] of Object.entries(v as Record<string, unknown>)) {
    if (typeof c !== 'object' || c === null) continue;
    const { name, state } = c as { name?: unknown; state?: unknown };
    if (typeof name !== 'string' || name === '' || (state !== undefined && typeof state !== 'string')) continue;
    out.set(id, state === undefined ? { name } : { name, state });
  }
  return out;
}

function sameCheckpoint(a: Checkpoint, b: Checkpoint): boolean {
  return a.name === b.name && a.state === b.state;
}

/**
 * Loads the base of an incremental of `workloadId`; null when there is none or its manifest is
 * unreadable (then every disk is read in full). A checkpoint is trusted only when the DB row
 * and the manifest carry the same one: a mismatch means one of them is not what the platform
 * saw, and a wrong base would silently miss changes.
 */
export async function loadSnapshotBase(db: Db, repo: Repository, workloadId: string, log: Logger): Promise<SnapshotBase | null> {
  const prev = await latestAvailableSnapshot(db, workloadId);
  if (!prev) return null;
  let manifest: Manifest;
  try {
    manifest = await repo.readManifest(prev.id);
  } catch (e) {
    log.warn({ err: errorMessage(e), base: prev.id }, 'previous snapshot manifest unreadable; reading every disk in full');
    return null;
  }
  const fromDb = parseCheckpoints(parseJson(await getSnapshotCheckpoints(db, prev.id)));
  const meta = manifest.meta as { checkpoints?: unknown } | null;
  const fromManifest = parseCheckpoints(meta?.checkpoints);
  const checkpoints = new Map<string, Checkpoint>();
  for (const [id, c] of fromDb) {
    const m = fromManifest.get(id);
    if (m && sameCheckpoint(c, m)) checkpoints.set(id, c);
    else log.warn({ base: prev.id, instance: id }, 'base checkpoint differs between database and manifest; not using it');
  }
  return { snapshotId: prev.id, manifest, checkpoints };
}

function parseJson(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
