import type { Db } from '../store/db.js';
import { clearSnapshotDamage, getSnapshot, setSnapshotDamage } from '../store/snapshot.store.js';
import type { Repository } from '../repository/repository.js';
import type { SnapshotWriter } from '../repository/snapshot-writer.js';
import { MANIFEST_MISSING, type VerifyResult } from '../repository/verify.js';
import { DataDamageError } from '../repository/damage.js';
import { toSecond } from '../lib/time.js';

/**
 * Makes damage on the backup target visible in the API: every snapshot that references a
 * damaged chunk gets a `warning_msg` naming its disks and the cause (the status stays, so its
 * other disks can still be restored). Called when a restore meets a missing or corrupt chunk,
 * when verify finds one, and after a snapshot that found lost packs or bad copies (then the
 * message says whether that snapshot stored the data again).
 */
export const DAMAGE_PREFIX = 'Backup data';

export interface DamageReport {
  projectId: string;
  /** Hex ids of the damaged chunks. */
  chunks: readonly string[];
  /** What was found, e.g. "pack x is missing" (no paths, no secrets). */
  cause: string;
  /** Chunks (hex) a new snapshot stored again, and its id. */
  healed?: { snapshotId: string; chunks: ReadonlySet<string> };
  /** Snapshots never to mark (the one that just healed the data). */
  skip?: readonly string[];
}

const MAX_MSG = 1000;

/** Marks the snapshots a damage report affects; returns their ids. */
export async function markDamagedSnapshots(db: Db, repo: Repository, report: DamageReport, nowMs: number): Promise<string[]> {
  if (report.chunks.length === 0) return [];
  const lost = report.healed ? report.chunks.filter((c) => !report.healed!.chunks.has(c)) : [...report.chunks];
  const refs = await repo.snapshotsReferencing(report.projectId, report.chunks, lost);
  const marked: string[] = [];
  for (const [snapshotId, disks] of refs) {
    if (report.skip?.includes(snapshotId)) continue;
    if (!(await getSnapshot(db, { admin: true }, snapshotId))) continue; // deleted, or not ours
    const parts = [...disks].map(([disk, n]) =>
      n.lost > 0
        ? `${n.lost} chunk(s) of disk ${disk} are missing or corrupt on the backup target; restoring that disk fails until a new snapshot stores the data again`
        : `${n.total} chunk(s) of disk ${disk} were damaged on the backup target and stored again by snapshot ${report.healed!.snapshotId}`,
    );
    const msg = `${DAMAGE_PREFIX} damaged (${report.cause}): ${parts.join('; ')}`;
    await setSnapshotDamage(db, snapshotId, msg.length > MAX_MSG ? `${msg.slice(0, MAX_MSG - 1)}…` : msg, toSecond(nowMs));
    marked.push(snapshotId);
  }
  return marked;
}

/**
 * After a snapshot committed: what its writer found (lost packs, copies that failed the full
 * snapshot's read-back) is reported on the older snapshots, saying whether this snapshot
 * stored the data again; so are chunks whose copies were marked bad earlier (by verify or a
 * restore) once this snapshot stored them again. Best effort: the new snapshot is already safe.
 */
export async function reportWriterDamage(db: Db, repo: Repository, writer: SnapshotWriter, nowMs: number): Promise<string[]> {
  const lost = (writer.integrity.lostPacks ?? []).filter((p) => !p.reported);
  // Bad-marked chunks this snapshot did not store again trigger nothing (no rescan per snapshot).
  const healedBad = writer.integrity.badOnlyChunks.filter((c) => writer.hasChunk(Buffer.from(c, 'hex')));
  const chunks = [...new Set([...writer.integrity.lostChunks, ...writer.badCopiesFound.keys(), ...healedBad])];
  if (chunks.length === 0) return [];
  const causes = [
    ...(healedBad.length > 0 ? [`${healedBad.length} chunk(s) whose only copies were marked bad`] : []),
    ...lost.slice(0, 3).map((p) => p.reason),
    ...(lost.length > 3 ? [`${lost.length - 3} more pack(s)`] : []),
    ...(writer.badCopiesFound.size > 0 ? [`${writer.badCopiesFound.size} corrupt copy(ies) found by read-back`] : []),
  ];
  const healed = new Set(chunks.filter((c) => writer.hasChunk(Buffer.from(c, 'hex'))));
  const marked = await markDamagedSnapshots(
    db,
    repo,
    { projectId: writer.projectId, chunks, cause: causes.join('; '), healed: { snapshotId: writer.snapshotId, chunks: healed }, skip: [writer.snapshotId] },
    nowMs,
  );
  // Reported once: later snapshots skip the scan of every disk index for the same loss.
  for (const p of lost) await repo.markLostPackReported(writer.projectId, p.pack, p.reason);
  return marked;
}

/** A restore failed on damaged data: mark every snapshot referencing that chunk. */
export async function reportRestoreDamage(db: Db, repo: Repository, e: unknown, nowMs: number): Promise<string[]> {
  if (!(e instanceof DataDamageError)) return [];
  return markDamagedSnapshots(db, repo, { projectId: e.damage.projectId, chunks: [e.damage.chunk], cause: e.summary }, nowMs);
}

/** The warning of a snapshot whose disks verify found damaged (or whose metadata it could not read). */
function verifyDamageMessage(disks: ReadonlyMap<string, { missing: number; corrupt: number }>): string {
  const parts = [...disks].map(([disk, n]) => `disk ${disk}: ${n.missing} chunk(s) missing, ${n.corrupt} corrupt`);
  return `${DAMAGE_PREFIX} damaged (found by verify): ${parts.length > 0 ? parts.join('; ') : 'unreadable snapshot metadata'}; restoring those disks fails until a new snapshot stores the data again`;
}

/**
 * After `repo verify`: each failed snapshot gets a warning naming its damaged disks; with a
 * complete (not sampled) verify, earlier damage warnings of snapshots found whole are cleared.
 */
export async function recordVerifyResult(db: Db, v: VerifyResult, nowMs: number): Promise<{ marked: string[]; cleared: number }> {
  const bySnapshot = new Map<string, Map<string, { missing: number; corrupt: number }>>();
  for (const p of v.problems) {
    for (const a of p.affected) {
      const disks = bySnapshot.get(a.snapshotId) ?? new Map<string, { missing: number; corrupt: number }>();
      const n = disks.get(a.diskKey) ?? { missing: 0, corrupt: 0 };
      n[p.kind]++;
      disks.set(a.diskKey, n);
      bySnapshot.set(a.snapshotId, disks);
    }
  }
  const noManifest = new Set<string>();
  for (const m of v.metadataProblems) {
    if (!m.snapshotId) continue;
    if (!bySnapshot.has(m.snapshotId)) bySnapshot.set(m.snapshotId, new Map());
    if (m.message === MANIFEST_MISSING) noManifest.add(m.snapshotId);
  }
  const now = toSecond(nowMs);
  const marked: string[] = [];
  for (const [snapshotId, disks] of bySnapshot) {
    const msg = noManifest.has(snapshotId) ? `${DAMAGE_PREFIX} damaged (found by verify): the snapshot's manifest is missing on the backup target; it cannot be restored` : verifyDamageMessage(disks);
    if (await setSnapshotDamage(db, snapshotId, msg.length > MAX_MSG ? `${msg.slice(0, MAX_MSG - 1)}…` : msg, now)) marked.push(snapshotId);
  }
  const cleared = v.sampled === null ? await clearSnapshotDamage(db, v.snapshotIds.filter((id) => !bySnapshot.has(id)), DAMAGE_PREFIX, now) : 0;
  return { marked, cleared };
}
