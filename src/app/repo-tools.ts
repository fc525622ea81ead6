import { existsSync } from 'node:fs';
import type { Config } from '../config/config.js';
import { FsBackend } from '../backend/fs.backend.js';
import { Repository } from '../repository/repository.js';
import { verifyRepository, type VerifyResult } from '../repository/verify.js';
import type { GcReport } from '../repository/gc.js';
import { openStore } from '../store/db.js';
import { committedSnapshotIds } from '../store/snapshot.store.js';

/** Operator tools on the backup target (`lifeboat repo verify|gc`), outside the service. */
async function openRepo(config: Config): Promise<Repository> {
  if (!existsSync(config.target.dir)) throw new Error(`backup target ${config.target.dir} does not exist`);
  return Repository.open(new FsBackend(config.target.dir));
}

export async function verifyTarget(config: Config, opts: { markBad: boolean }): Promise<VerifyResult> {
  return verifyRepository(await openRepo(config), { markBad: opts.markBad });
}

/** `lifeboat repo repair-index`: rebuild unreadable or missing pack indexes from the packs. */
export async function repairIndexTarget(config: Config): Promise<Awaited<ReturnType<Repository['repairIndex']>>> {
  return (await openRepo(config)).repairIndex();
}

/** One line per project: what repair-index found and did. */
export function formatRepairIndex(r: Awaited<ReturnType<Repository['repairIndex']>>): string {
  const lines = r.map(({ projectId, repair, lostPacks }) => {
    const parts = [
      `project ${projectId}: ${repair.unreadableIndexes.length} unreadable pack index(es) removed`,
      `${repair.packsReindexed} pack(s) re-indexed${repair.written ? ` into ${repair.written}` : ''}`,
    ];
    if (repair.unreadablePacks.length > 0) parts.push(`${repair.unreadablePacks.length} pack(s) unreadable: ${repair.unreadablePacks.map((p) => p.pack).join(', ')}`);
    if (lostPacks.length > 0) parts.push(`${lostPacks.length} indexed pack(s) missing or truncated: ${lostPacks.map((p) => p.reason).join('; ')}`);
    return parts.join('; ');
  });
  return lines.length > 0 ? lines.join('\n') : 'no project data on the target';
}

export async function gcTarget(config: Config, opts: { dryRun: boolean }): Promise<GcReport> {
  const repo = await openRepo(config);
  const store = await openStore(config.db);
  try {
    const known = await committedSnapshotIds(store.db);
    return await repo.gc({ knownSnapshotIds: known, allowEmpty: known.length === 0, dryRun: opts.dryRun });
  } finally {
    await store.close();
  }
}

/** Human-readable verify report: one line per problem naming the snapshots and disks it affects. */
export function formatVerify(v: VerifyResult): string {
  const lines = [
    `verified ${v.snapshots} snapshots, ${v.disks} disks, ${v.chunksChecked} chunks in ${v.packsRead} packs (${(v.bytesRead / 2 ** 20).toFixed(1)} MiB read)`,
  ];
  for (const p of v.problems) {
    const aff = p.affected.map((a) => `snapshot ${a.snapshotId} disk ${a.diskKey}`).join(', ');
    lines.push(`${p.kind.toUpperCase()} chunk ${p.chunk} (pack ${p.pack}): ${p.detail}; affects ${aff || 'no snapshot'}`);
  }
  for (const m of v.metadataProblems) lines.push(`BAD METADATA ${JSON.stringify(m)}`);
  if (v.healedChunks > 0) lines.push(`${v.healedChunks} chunks have a bad copy but an intact one too`);
  lines.push(v.ok ? 'OK: every referenced chunk is present and intact' : `FAILED: ${v.failedSnapshots.length} snapshot(s) affected: ${v.failedSnapshots.join(', ')}`);
  return lines.join('\n');
}
