import type { Config } from '../config/config.js';
import { openBackend } from '../backend/open.js';
import { Repository } from '../repository/repository.js';
import { verifyRepository, type VerifyResult } from '../repository/verify.js';
import type { GcReport } from '../repository/gc.js';
import { openStore } from '../store/db.js';
import { committedSnapshotIdsOn } from '../store/snapshot.store.js';
import { recordVerifyResult } from '../jobs/damage.job.js';
import { verifyOutcome, verifyProblemLines } from '../jobs/repo-verify.job.js';
import { insertRepoVerification, transitionRepoVerification } from '../store/repo-verification.store.js';
import { newRepoVerification, type RepoVerification } from '../domain/repo-verification.js';
import { newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { errorMessage, ValidationError } from '../lib/errors.js';
import type { NamedTarget } from '../lib/target.js';
import { openKeyManager } from '../platform/open.js';
import { encryptionKeySource, platformSettings } from './targets.js';

/**
 * Operator tools on the backup target (`lifeboat repo verify|gc`), outside the service. They
 * open the target exactly as the service does (openBackend), but never create it: a tool
 * pointed at a wrong path must fail, not start an empty repository.
 */
async function openRepo(config: Config, t: NamedTarget): Promise<Repository> {
  const backend = await openBackend(t.target, { create: false, connections: config.targetConnections });
  // Encrypted workloads' data keys open as in the service: the key file, and Barbican secrets on OpenStack.
  const km = openKeyManager(platformSettings(config));
  const secretKeys = km ? (secretUuid: string) => km.readKey(secretUuid) : null;
  return Repository.open(backend, { leaseTtlMs: config.repoLease.ttlMs, graceMs: config.repoLease.graceMs, keySource: encryptionKeySource(config), secretKeys });
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
  // The run is recorded in the store (admin API / dashboard history) when the DB can be opened; verify runs regardless.
  let store: Awaited<ReturnType<typeof openStore>> | null = null;
  let storeError: unknown = null;
  const runId = newId();
  let inHistory = false;
  try {
    store = await openStore(config.db);
    await insertRepoVerification(store.db, cliRun(runId, t.name, opts));
    inHistory = true;
  } catch (e) {
    storeError = e;
  }
  try {
    let v: VerifyResult;
    try {
      const db = store?.db;
      const expectedSnapshots = db ? () => committedSnapshotIdsOn(db, onTarget(config, t)) : undefined;
      v = await verifyRepository(await openRepo(config, t), { markBad: opts.markBad, readDataSubset: opts.readDataSubset, ...(expectedSnapshots ? { expectedSnapshots } : {}) });
    } catch (e) {
      if (store && inHistory) await transitionRepoVerification(store.db, runId, ['running'], 'error', { error_msg: `Verify failed: ${errorMessage(e)}`.slice(0, 1000), finished_at: toSecond(Date.now()) }).catch(() => false);
      throw e;
    }
    let recorded: VerifyReport['recorded'];
    if (!store) recorded = { error: `snapshot records not updated: ${errorMessage(storeError)}` };
    else {
      try {
        recorded = await recordVerifyResult(store.db, v, Date.now());
        const out = verifyOutcome(v, Date.now());
        if (inHistory) await transitionRepoVerification(store.db, runId, ['running'], out.status, out.extra);
      } catch (e) {
        recorded = { error: `snapshot records not updated: ${errorMessage(e)}` };
      }
    }
    return { ...v, recorded };
  } finally {
    await store?.close();
  }
}

/** The history row of a CLI run, `running` from the start (no job queues it). */
function cliRun(id: string, target: string, opts: { markBad: boolean; readDataSubset?: number }): RepoVerification {
  return newRepoVerification({
    id,
    target,
    read_data_subset: opts.readDataSubset !== undefined && opts.readDataSubset < 1 ? opts.readDataSubset : null,
    mark_bad: opts.markBad,
    source: 'cli',
    user_id: null,
    created_at: Date.now(),
  });
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
  lines.push(...verifyProblemLines(v));
  if (v.healedChunks > 0) lines.push(`${v.healedChunks} chunks have a bad copy but an intact one too`);
  for (const u of v.encryptedUnchecked) {
    lines.push(`ENCRYPTED workload ${u.scope}: structure checked (${u.snapshots.length} snapshot(s), ${u.sealedObjects} sealed object(s), ${u.packs} pack(s) of ${(u.packBytes / 2 ** 20).toFixed(1)} MiB); ${u.reason}`);
  }
  const unchecked = v.encryptedUnchecked.length > 0 ? `; ${v.encryptedUnchecked.length} encrypted workload(s) checked for structure only: contents not checked: key not available` : '';
  lines.push(v.ok ? `OK: every referenced chunk is present and intact${unchecked}` : `FAILED: ${v.failedSnapshots.length} snapshot(s) affected: ${v.failedSnapshots.join(', ')}${unchecked}`);
  if ('error' in v.recorded) lines.push(v.recorded.error);
  else if (v.recorded.marked.length + v.recorded.cleared > 0) lines.push(`snapshot records: ${v.recorded.marked.length} marked damaged, ${v.recorded.cleared} damage warning(s) cleared`);
  return lines.join('\n');
}
