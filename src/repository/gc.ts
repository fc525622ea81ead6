import { randomBytes } from 'node:crypto';
import { listAll } from '../backend/backend.js';
import { ConflictError, NotFoundError } from '../lib/errors.js';
import { ChunkCodec, ID_LEN, ZERO_ID } from './chunk-codec.js';
import { ChunkIndex } from './chunk-index.js';
import { decodeDiskIndex } from './disk-index.format.js';
import { GC_PLAN_KEY, keys, packId, packOwner, parse } from './keys.js';
import { isLive, listLeases, type Lease } from './lease.js';
import { decodeManifest } from './manifest.format.js';
import { decodePackIndex, encodePackIndex, type PackIndexEntry } from './pack-index.format.js';
import { encodePackTrailer } from './pack.format.js';
import type { GcPlan, Repository } from './repository.js';

export interface GcOptions {
  /** Rewrite a pack whose live bytes are below this fraction of its chunk bytes (default 0.5). */
  repackBelow?: number;
  /** Snapshot ids the caller (the DB) knows: GC refuses to run if any has no manifest. */
  knownSnapshotIds?: readonly string[];
  /** Allow a sweep when the repository has no manifest at all (default false: restic #4619). */
  allowEmpty?: boolean;
  /** Compute and report, delete nothing. */
  dryRun?: boolean;
}

export interface GcReport {
  /** False when GC refused to sweep (reason set); nothing was deleted then. */
  swept: boolean;
  reason: string | null;
  manifests: number;
  packsDeleted: number;
  packsRepacked: number;
  bytesFreed: number;
  packIndexesRewritten: number;
  /** Packs left alone because a live writer/reader of their project may still use them. */
  pendingPacks: number;
  /** Referenced chunks with no intact copy (sweep refused). */
  missingChunks: string[];
  leasesRemoved: number;
}

/**
 * Mark-and-sweep GC. Never blocks backups: writers keep running; GC only excludes other GCs.
 *
 * 1. Take a 'gc' lease; refuse (ConflictError) if another live GC lease is older.
 * 2. LIST packs and pack indexes (before leases: a writer puts its lease before its first pack,
 *    so every pack seen here has a visible lease if its writer still runs).
 * 3. MARK: list manifests and load every disk index → referenced ids per project. Any listing
 *    or read failure aborts (throws). Zero manifests → refuse unless allowEmpty; a known
 *    snapshot without manifest → refuse. A referenced chunk without an intact indexed copy in
 *    an existing pack → refuse (restic #3239): report, delete nothing.
 * 4. PLAN: per pack, live bytes = referenced chunks whose kept copy is in it. Dead packs are
 *    deleted, sparse ones (live < repackBelow) rewritten. Packs of live writers are never
 *    touched. The plan (condemned packs) is put at gc/plan.json BEFORE leases are read:
 *    a writer that starts later reads the plan and never dedups against condemned packs.
 * 5. LEASES: a project with a live writer/reader that has not seen this plan is left alone
 *    this round (its condemned packs are reported as pending): it may reuse any chunk.
 * 6. SWEEP, in crash-safe order: write repacked packs + their pack index → write one
 *    consolidated pack index per project (all surviving entries) → delete the old pack
 *    indexes → delete condemned packs → delete dead leases and stale bad-markers → remove plan.
 *    A crash anywhere leaves duplicates or orphans, never a referenced chunk without a copy;
 *    re-running GC converges (resumable).
 */
export async function collectGarbage(repo: Repository, opts: GcOptions = {}): Promise<GcReport> {
  const report: GcReport = {
    swept: false,
    reason: null,
    manifests: 0,
    packsDeleted: 0,
    packsRepacked: 0,
    bytesFreed: 0,
    packIndexesRewritten: 0,
    pendingPacks: 0,
    missingChunks: [],
    leasesRemoved: 0,
  };
  const b = repo.backend;
  const lease = await repo.acquireLease('gc', null, null);
  try {
    const now0 = repo.clock.now();
    const others = (await listLeases(b)).filter(
      (l) => l.record?.kind === 'gc' && l.record.id !== lease.record.id && isLive(l.record, now0, repo.graceMs),
    );
    if (others.some((l) => l.record!.startedAt <= lease.record.startedAt)) throw new ConflictError('another garbage collection is running');

    // 2. Inventory: pack indexes first, then packs (a pack is put before its index).
    const pidx: { key: string; projectId: string; entries: PackIndexEntry[] }[] = [];
    for (const key of await listAll(b, 'index/')) {
      const p = parse.packIndex(key);
      if (!p) continue;
      const { entries } = decodePackIndex(key, await b.get(key));
      pidx.push({ key, projectId: p.projectId, entries });
    }

    const packKeys = new Map<string, { projectId: string; key: string; size: number | null }>();
    for (const key of await listAll(b, 'packs/')) {
      const p = parse.pack(key);
      if (p) packKeys.set(p.packId, { projectId: p.projectId, key, size: null });
    }
    // Leases seen between the inventory and the manifest listing: a writer that committed after
    // the manifest listing was live here, so its packs and project are protected.
    const leases1 = await listLeases(b);

    // 3. Mark.
    const manifestKeys = (await listAll(b, 'manifests/')).filter((k) => parse.manifest(k));
    report.manifests = manifestKeys.length;
    if (opts.knownSnapshotIds) {
      const have = new Set(manifestKeys.map((k) => parse.manifest(k)));
      const lost = opts.knownSnapshotIds.filter((id) => !have.has(id));
      if (lost.length > 0) return refuse(report, `snapshots known to the caller have no manifest: ${lost.slice(0, 5).join(', ')}`);
    }
    if (manifestKeys.length === 0 && !opts.allowEmpty) {
      return refuse(report, 'the repository lists no snapshot manifest; refusing to sweep (pass allowEmpty to override)');
    }
    const referenced = new Map<string, ChunkIndex>(); // projectId → set of ids (location unused)
    const liveManifests = new Set<string>();
    for (const mk of manifestKeys) {
      const m = decodeManifest(mk, await b.get(mk));
      liveManifests.add(m.snapshotId);
      let set = referenced.get(m.projectId);
      if (!set) referenced.set(m.projectId, (set = new ChunkIndex()));
      for (const d of m.disks) {
        const di = decodeDiskIndex(d.index, await b.get(d.index));
        for (let i = 0; i < di.header.chunkCount; i++) {
          const off = i * ID_LEN;
          if (di.ids.compare(ZERO_ID, 0, ID_LEN, off, off + ID_LEN) === 0) continue;
          set.set(di.ids, { pack: '', offset: 0, storedLength: 0, rawLength: 0, flags: 0 }, off);
        }
      }
    }

    // 4. Keep one intact copy of every referenced chunk; prefer the pack with most live data.
    const projects = new Set<string>([...referenced.keys(), ...pidx.map((p) => p.projectId), ...[...packKeys.values()].map((p) => p.projectId)]);
    const condemned = new Map<string, Set<string>>(); // projectId → packs to delete or rewrite
    const repackKeep = new Map<string, PackIndexEntry[]>(); // pack → live entries to copy out
    const entriesByProject = new Map<string, PackIndexEntry[]>();
    for (const projectId of projects) {
      const bad = await repo.listBadCopies(projectId);
      const refs = referenced.get(projectId) ?? new ChunkIndex();
      const entries = pidx.filter((p) => p.projectId === projectId).flatMap((p) => p.entries);
      entriesByProject.set(projectId, entries);
      const usable = (e: PackIndexEntry) => packKeys.has(e.pack) && !bad.has(`${e.id.toString('hex')}.${e.pack}`);
      const refBytes = new Map<string, number>();
      for (const e of entries) if (usable(e) && refs.has(e.id)) refBytes.set(e.pack, (refBytes.get(e.pack) ?? 0) + e.storedLength);
      const keeper = new ChunkIndex(); // id → kept copy
      for (const e of entries) {
        if (!usable(e) || !refs.has(e.id)) continue;
        const cur = keeper.get(e.id);
        if (!cur || (refBytes.get(e.pack) ?? 0) > (refBytes.get(cur.pack) ?? 0)) keeper.set(e.id, e, 0, true);
      }
      if (keeper.size < refs.size) {
        // Some referenced chunk has no intact copy: find which, report, refuse.
        report.missingChunks.push(...(await missingIds(repo, manifestKeys, projectId, keeper)));
        continue;
      }
      const live = new Map<string, number>();
      const total = new Map<string, number>();
      for (const e of entries) {
        total.set(e.pack, (total.get(e.pack) ?? 0) + e.storedLength);
        const k = keeper.get(e.id);
        if (k && k.pack === e.pack && k.offset === e.offset) live.set(e.pack, (live.get(e.pack) ?? 0) + e.storedLength);
      }
      const cond = new Set<string>();
      for (const [pack, info] of packKeys) {
        if (info.projectId !== projectId) continue;
        const l = live.get(pack) ?? 0;
        const t = total.get(pack) ?? 0; // 0: no pack index lists it (crashed writer's orphan)
        if (l === 0) cond.add(pack);
        else if (l < (opts.repackBelow ?? 0.5) * t) {
          cond.add(pack);
          repackKeep.set(pack, entries.filter((e) => e.pack === pack && keeper.get(e.id)?.pack === pack && keeper.get(e.id)?.offset === e.offset));
        }
      }
      if (cond.size > 0) condemned.set(projectId, cond);
    }
    if (report.missingChunks.length > 0) {
      return refuse(report, `${report.missingChunks.length} referenced chunks have no intact copy; run verify; nothing deleted`);
    }

    // 4b. Publish the plan before reading leases (see contract above).
    const plan: GcPlan = {
      planId: randomBytes(16).toString('hex'),
      createdAt: repo.clock.now(),
      condemned: Object.fromEntries([...condemned].map(([p, s]) => [p, [...s]])),
    };
    if (opts.dryRun) {
      report.packsDeleted = [...condemned.values()].reduce((n, s) => n + s.size, 0);
      return refuse(report, 'dry run');
    }
    if (condemned.size > 0) await b.put(GC_PLAN_KEY, Buffer.from(JSON.stringify(plan)));

    // 5. Leases: protect live holders' packs, and projects whose holders may reuse condemned packs.
    const now = repo.clock.now();
    const leases2 = await listLeases(b);
    const live = (ls: typeof leases2) => ls.filter((l) => !l.record || isLive(l.record, now, repo.graceMs)).map((l) => l.record);
    const live1 = live(leases1);
    const live2 = live(leases2);
    if ([...live1, ...live2].some((l) => l === null)) return refuse(report, 'an unreadable lease exists; refusing to sweep');
    // A snapshot committed since the mark phase may reference condemned packs: try again later.
    const manifestsNow = (await listAll(b, 'manifests/')).filter((k) => parse.manifest(k));
    const marked = new Set(manifestKeys);
    if (manifestsNow.some((k) => !marked.has(k))) return refuse(report, 'snapshots were committed during GC; run it again');
    const liveIds = new Set([...live1, ...live2].map((l) => l!.id));
    const holders = [...live1.map((l) => l!), ...live2.filter((l) => l!.gcPlanSeen !== plan.planId).map((l) => l!)].filter((l) => l.kind !== 'gc');
    const blockAll = holders.some((l) => l.projectId === null);
    const blockedProjects = new Set(holders.map((l) => l.projectId));
    for (const [projectId, cond] of condemned) {
      for (const pack of [...cond]) {
        if (blockAll || blockedProjects.has(projectId) || liveIds.has(packOwner(pack))) {
          cond.delete(pack);
          repackKeep.delete(pack);
          report.pendingPacks++;
        }
      }
    }

    // 6. Sweep.
    const codec = new ChunkCodec();
    for (const [projectId, cond] of condemned) {
      if (cond.size === 0) continue;
      const key = repo.projectKey(projectId);
      const moved: PackIndexEntry[] = [];
      let seq = 0;
      let parts: Uint8Array[] = [];
      let partEntries: PackIndexEntry[] = [];
      let size = 0;
      const flushPack = async () => {
        if (partEntries.length === 0) return;
        lease.assertValid();
        await b.put(keys.pack(projectId, packId(lease.record.id, seq++)), [...parts, encodePackTrailer(projectId, partEntries)]);
        moved.push(...partEntries);
        parts = [];
        partEntries = [];
        size = 0;
      };
      for (const pack of cond) {
        const keep = repackKeep.get(pack);
        if (!keep || keep.length === 0) continue;
        const data = await b.get(keys.pack(projectId, pack));
        for (const e of keep) {
          const stored = data.subarray(e.offset, e.offset + e.storedLength);
          // Repack only copies verified data; a bad copy keeps its pack alive (verify reports it).
          const err = stored.length === e.storedLength ? codec.decodeVerify(stored, e.flags, Buffer.allocUnsafe(e.rawLength), key, e.id) : 'truncated';
          if (err) throw new Error(`GC: chunk ${e.id.toString('hex')} in pack ${pack} is damaged (${err}); run verify`);
          partEntries.push({ ...e, pack: packId(lease.record.id, seq), offset: size });
          parts.push(stored);
          size += stored.length;
          if (size >= repo.config.packSize) await flushPack();
        }
        report.packsRepacked++;
      }
      await flushPack();
      // Consolidated pack index: every surviving entry of this project's listed indexes, plus moved ones.
      const survivors = (entriesByProject.get(projectId) ?? []).filter((e) => !cond.has(e.pack)).concat(moved);
      const oldKeys = pidx.filter((p) => p.projectId === projectId).map((p) => p.key);
      if (survivors.length > 0) {
        lease.assertValid();
        await b.put(keys.packIndex(projectId, packId(lease.record.id, 999999)), encodePackIndex(projectId, repo.clock.now(), survivors));
        report.packIndexesRewritten++;
      }
      for (const k of oldKeys) if (k !== keys.packIndex(projectId, packId(lease.record.id, 999999))) await b.delete(k);
      for (const pack of cond) {
        lease.assertValid();
        const k = keys.pack(projectId, pack);
        report.bytesFreed += (await b.stat(k)) ?? 0;
        await b.delete(k);
        if (!repackKeep.has(pack)) report.packsDeleted++;
      }
      for (const k of await listAll(b, `bad/${projectId}/`)) {
        const p = parse.bad(k);
        if (p && cond.has(p.packId)) await b.delete(k);
      }
    }
    // Dead leases (crashed holders) and orphan disk indexes of crashed writers.
    for (const l of leases2) {
      if (l.record && !isLive(l.record, now, repo.graceMs)) {
        await b.delete(l.key);
        report.leasesRemoved++;
      }
    }
    for (const k of await listAll(b, 'disks/')) {
      const p = parse.diskIndex(k);
      if (p && !liveManifests.has(p.snapshotId) && !liveIds.has(p.writerId) && (await b.stat(keys.manifest(p.snapshotId))) === null) {
        await b.delete(k);
      }
    }
    if (condemned.size > 0) await b.delete(GC_PLAN_KEY);
    report.swept = true;
    return report;
  } finally {
    await lease.release().catch(() => {});
  }
}

function refuse(report: GcReport, reason: string): GcReport {
  report.swept = false;
  report.reason = reason;
  return report;
}

async function missingIds(repo: Repository, manifestKeys: string[], projectId: string, keeper: ChunkIndex): Promise<string[]> {
  const out = new Set<string>();
  for (const mk of manifestKeys) {
    let m;
    try {
      m = decodeManifest(mk, await repo.backend.get(mk));
    } catch (e) {
      if (e instanceof NotFoundError) continue;
      throw e;
    }
    if (m.projectId !== projectId) continue;
    for (const d of m.disks) {
      const di = decodeDiskIndex(d.index, await repo.backend.get(d.index));
      for (let i = 0; i < di.header.chunkCount; i++) {
        const off = i * ID_LEN;
        if (di.ids.compare(ZERO_ID, 0, ID_LEN, off, off + ID_LEN) === 0) continue;
        if (!keeper.has(di.ids, off)) out.add(di.ids.subarray(off, off + ID_LEN).toString('hex'));
      }
    }
  }
  return [...out];
}

export type { Lease };
