import type { Config } from '../config/config.js';
import { openBackend } from '../backend/open.js';
import { Repository } from '../repository/repository.js';
import { verifyRepository, type VerifyResult } from '../repository/verify.js';
import type { GcReport } from '../repository/gc.js';
import { openStore } from '../store/db.js';
import { committedSnapshotIdsOn } from '../store/snapshot.store.js';
import { recordVerifyResult } from '../jobs/damage.job.js';
import { errorMessage, ValidationError } from '../lib/errors.js';
import type { NamedTarget } from '../lib/target.js';

/**
 * Operator tools on the backup target (`lifeboat repo verify|gc`), outside the service. They
 * open the target exactly as the service does (openBackend), but never create it: a tool
 * pointed at a wrong path must fail, not start an empty repository.
 */
async function openRepo(config: Config, t: NamedTarget): Promise<Repository> {
  const backend = await openBackend(t.target, { create: false, connections: config.targetConnections });
  return Repository.open(backend, { leaseTtlMs: config.repoLease.ttlMs, graceMs: config.repoLease.graceMs });
}

/** The targets a tool acts on: the one named by `--target`, else every configured one. */
export function toolTargets(config: Config, name: string | undefined): NamedTarget[] {
  if (name === undefined) return config.targets;
  const t = config.targets.find((x) => x.name === name);
  if (!t) throw new ValidationError(`--target: no backup target named ${JSON.stringify(name.slice(0, 64))}; configured: ${config.targets.map((x) => x.name).join(', ')}`);
  return [t];
}

/** GC and verify of one target consider only the snapshots recorded on it. */
function onTarget(config: Config, t: NamedTarget): { name: string; isDefault: boolean } {
  return { name: t.name, isDefault: t.name === config.defaultTarget };
}

/**
 * Prints one result per target: as before when the tool ran on one target; with several,
 * text sections headed by the target's name, or one JSON object keyed by name.
 */
export function formatPerTarget<T>(results: { name: string; result: T }[], json: boolean, text: (r: T) => string): string {
  if (results.length === 1) return json ? JSON.stringify(results[0]!.result, null, 2) : text(results[0]!.result);
  if (json) return JSON.stringify(Object.fromEntries(results.map((r) => [r.name, r.result])), null, 2);
  return results.map((r) => `== backup target ${r.name} ==\n${text(r.result)}`).join('\n');
}

export interface VerifyReport extends VerifyResult {
  /** Snapshots whose API record now names the damage, damage warnings cleared; or why the DB could not be updated. */
  recorded: { marked: string[]; cleared: number } | { error: string };
}

/**
 * `lifeboat repo verify`: checks the target, then records the outcome on the snapshots in the
 * DB (warning_msg names the damaged disks; a complete verify clears older damage warnings).
 */
export async function verifyTarget(config: Config, opts: { markBad: boolean; readDataSubset?: number }, t: NamedTarget = config.targets[0]!): Promise<VerifyReport> {
  const v = await verifyRepository(await openRepo(config, t), { markBad: opts.markBad, readDataSubset: opts.readDataSubset });
  let recorded: VerifyReport['recorded'];
  try {
    const store = await openStore(config.db);
    try {
      recorded = await recordVerifyResult(store.db, v, Date.now());
    } finally {
      await store.close();
    }
  } catch (e) {
    recorded = { error: `snapshot records not updated: ${errorMessage(e)}` };
  }
  return { ...v, recorded };
}

/** `--read-data-subset=N%` → N/100 (0 < N ≤ 100). */
export function parseDataSubset(text: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!(n > 0 && n <= 100)) throw new ValidationError(`--read-data-subset must be a percentage in (0, 100], e.g. 10%; got ${JSON.stringify(text).slice(0, 40)}`);
  return n / 100;
}


/** `lifeboat repo repair-index`: rebuild unreadable or missing pack indexes from the packs. */
export async function repairIndexTarget(config: Config, t: NamedTarget = config.targets[0]!): Promise<Awaited<ReturnType<Repository['repairIndex']>>> {
  return (await openRepo(config, t)).repairIndex();
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

export async function gcTarget(config: Config, opts: { dryRun: boolean }, t: NamedTarget = config.targets[0]!): Promise<GcReport> {
  const repo = await openRepo(config, t);
  const store = await openStore(config.db);
  try {
    const known = await committedSnapshotIdsOn(store.db, onTarget(config, t));
    return await repo.gc({ knownSnapshotIds: known, allowEmpty: known.length === 0, dryRun: opts.dryRun });
  } finally {
    await store.close();
  }
}

/** Human-readable verify report: one line per problem naming the snapshots and disks it affects. */
export function formatVerify(v: VerifyReport): string {
  const lines = [
    `verified ${v.snapshots} snapshots, ${v.disks} disks, ${v.chunksChecked} chunks in ${v.packsRead} packs (${(v.bytesRead / 2 ** 20).toFixed(1)} MiB read)`,
  ];
  if (v.sampled !== null) lines.push(`sampled ${(v.sampled * 100).toFixed(1)}% of the packs: ${v.chunksSkipped} chunks in unread packs were checked for presence and length only`);
  for (const p of v.problems) {
    const aff = p.affected.map((a) => `snapshot ${a.snapshotId} disk ${a.diskKey}`).join(', ');
    lines.push(`${p.kind.toUpperCase()} chunk ${p.chunk} (pack ${p.pack}): ${p.detail}; affects ${aff || 'no snapshot'}`);
  }
  for (const m of v.metadataProblems) lines.push(`BAD METADATA ${JSON.stringify(m)}`);
  if (v.healedChunks > 0) lines.push(`${v.healedChunks} chunks have a bad copy but an intact one too`);
  lines.push(v.ok ? 'OK: every referenced chunk is present and intact' : `FAILED: ${v.failedSnapshots.length} snapshot(s) affected: ${v.failedSnapshots.join(', ')}`);
  if ('error' in v.recorded) lines.push(v.recorded.error);
  else if (v.recorded.marked.length + v.recorded.cleared > 0) lines.push(`snapshot records: ${v.recorded.marked.length} marked damaged, ${v.recorded.cleared} damage warning(s) cleared`);
  return lines.join('\n');
}
