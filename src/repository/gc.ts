import { randomBytes } from 'node:crypto';
import { listAll, type Backend } from '../backend/backend.js';
import { ConflictError, errorMessage, IntegrityError, NotFoundError } from '../lib/errors.js';
import { ChunkCodec, ID_LEN, newChunkHasher, ZERO_ID } from './chunk-codec.js';
import { ChunkIndex } from './chunk-index.js';
import { decodeDiskIndex } from './disk-index.format.js';
import { GC_PLAN_KEY, keys, packId, packOwner, parse } from './keys.js';
import { isLive, listLeases, type Lease } from './lease.js';
import { decodeManifest } from './manifest.format.js';
import { decodePackIndex, encodePackIndex, type ChunkLocation, type PackIndexEntry } from './pack-index.format.js';
import { encodePackTrailer } from './pack.format.js';
import type { GcPlan, Repository } from './repository.js';

/**
 * How long a leftover outside the object namespace (an fs `.tmp-*` file of a killed writer)
 * must sit untouched before GC removes it: far beyond any pause of a live writer.
 */
export const LEFTOVER_GRACE_MS = 24 * 3600_000;

export interface GcOptions {
  /** Rewrite a pack whose live bytes are below this fraction of its chunk bytes (default 0.5). */
  repackBelow?: number;
  /** Snapshot ids the caller (the DB) knows: GC refuses to run if any has no manifest. */
  knownSnapshotIds?: readonly string[];
  /** Allow a sweep when the repository has no manifest at all (default false: restic #4619). */
  allowEmpty?: boolean;
  /** Plan and report, delete nothing. */
  dryRun?: boolean;
  /** Age after which backend leftovers are removed (default LEFTOVER_GRACE_MS). */
  leftoverGraceMs?: number;
}

/** What one GC run found and did. */
export interface GcReport {
  /** False when GC refused to sweep (reason set) or ran dry; nothing was deleted then. */
  swept: boolean;
  reason: string | null;
  manifests: number;
  /** Packs deleted outright (no live chunk), or planned to be in a dry run. */
  packsDeleted: number;
  /** Packs rewritten (live chunks copied to new packs, old pack deleted), or planned to be. */
  packsRepacked: number;
  bytesFreed: number;
  packIndexesRewritten: number;
  /** Packs left alone because a live writer/reader of their project may still use them. */
  pendingPacks: number;
  /** Referenced chunks with no intact copy (sweep refused). */
  missingChunks: string[];
  /** Leases of holders dead for longer than ttl + grace. */
  leasesRemoved: number;
  /** Disk indexes of writers that died before their manifest. */
  diskIndexesRemoved: number;
  /** `bad/` markers of copies that went with their pack. */
  badMarkersRemoved: number;
  /** Backend leftovers of killed writers (fs temp files) older than the leftover grace. */
  leftoversRemoved: number;
}

/**
 * Mark-and-sweep GC in three phases — plan (read only), decide (publish the plan, then read
 * leases), execute (crash-safe sweep) — under a 'gc' lease. It never blocks backups: writers
 * keep running; GC only excludes other GCs.
 *
 * PLAN
 * 1. Inventory: list pack indexes and packs, then leases (a writer puts its lease before its
 *    first pack, so every pack seen here has a visible lease if its writer still runs).
 * 2. Mark: list manifests and load every disk index → referenced ids per project. Any listing
 *    or read failure aborts (throws). Zero manifests → refuse unless allowEmpty; a known
 *    snapshot without manifest → refuse. A referenced chunk without an intact indexed copy in
 *    an existing pack → refuse (restic #3239): report, delete nothing.
 * 3. Per project, keep one intact copy of each referenced chunk (the one in the pack with most
 *    live bytes). Packs with no kept copy are condemned; packs whose live bytes are below
 *    `repackBelow` are condemned and their kept copies moved (repack).
 * DECIDE
 * 4. The plan (condemned packs) is put at gc/plan.json BEFORE leases are read again: a writer
 *    that starts later reads the plan and never dedups against condemned packs.
 * 5. A project with a live writer/reader that has not seen this plan is left alone this round
 *    (its condemned packs are pending): it may reuse any chunk. So are packs of live writers.
 *    An unreadable lease, or a manifest committed since the mark, refuses the whole run.
 * EXECUTE, in crash-safe order: write repacked packs → one consolidated pack index per project
 *    (dropping entries of lost packs: every referenced chunk has an intact copy elsewhere, or
 *    the plan refused) → delete the old pack indexes → delete condemned packs and the markers
 *    of condemned and lost packs → dead
 *    leases, orphan disk indexes, backend leftovers → remove the plan. A crash anywhere leaves
 *    duplicates or orphans, never a referenced chunk without a copy; re-running converges.
 *
 * A dead writer's packs, pack indexes and disk indexes are thus collected by the first GC that
 * runs once its lease is older than ttl + grace (see Repository options).
 */
export async function collectGarbage(repo: Repository, opts: GcOptions = {}): Promise<GcReport> {
  const lease = await acquireGcLease(repo);
  try {
    // Encrypted workloads' manifests and indexes are sealed: GC reads them all, so it needs every data key.
    const locked = await repo.unlockAll().then(() => null, (e: unknown) => errorMessage(e));
    if (locked) return { ...emptyReport(0), reason: `cannot read every snapshot: ${locked}` };
    const plan = await planGc(repo, opts);
    if ('refused' in plan) return { ...emptyReport(plan.manifests), reason: plan.refused, missingChunks: plan.missingChunks };
    const report = emptyReport(plan.mark.manifestKeys.length);
    if (opts.dryRun) {
      for (const p of plan.projects) countCondemned(p, report);
      return { ...report, reason: 'dry run' };
    }
    const decision = await decide(repo, plan);
    if ('refused' in decision) return { ...report, reason: decision.refused };
    report.pendingPacks = decision.pendingPacks;
    await executeGc(repo, lease, plan, decision, opts, report);
    return { ...report, swept: true };
  } finally {
    await lease.release().catch(() => {});
  }
}

function emptyReport(manifests: number): GcReport {
  return {
    swept: false,
    reason: null,
    manifests,
    packsDeleted: 0,
    packsRepacked: 0,
    bytesFreed: 0,
    packIndexesRewritten: 0,
    pendingPacks: 0,
    missingChunks: [],
    leasesRemoved: 0,
    diskIndexesRemoved: 0,
    badMarkersRemoved: 0,
    leftoversRemoved: 0,
  };
}

function countCondemned(p: ProjectPlan, report: GcReport): void {
  for (const pack of p.condemned) {
    if (p.repack.has(pack)) report.packsRepacked++;
    else report.packsDeleted++;
  }
}

/** Takes the 'gc' lease; ConflictError when an older live GC holds one (it goes first). */
async function acquireGcLease(repo: Repository): Promise<Lease> {
  const lease = await repo.acquireLease('gc', null, null);
  const now = repo.clock.now();
  const others = (await listLeases(repo.backend)).filter(
    (l) => l.record?.kind === 'gc' && l.record.id !== lease.record.id && isLive(l.record, now, repo.graceMs),
  );
  if (others.some((l) => l.record!.startedAt <= lease.record.startedAt)) {
    await lease.release().catch(() => {});
    throw new ConflictError('another garbage collection is running');
  }
  return lease;
}

// ---------------------------------------------------------------- plan

type LeaseEntry = Awaited<ReturnType<typeof listLeases>>[number];

interface Inventory {
  /** Every pack index listed; `packLengths` as recorded in its header (older indexes lack it). */
  indexes: { key: string; projectId: string; entries: PackIndexEntry[]; packLengths: Map<string, number> }[];
  /** packId → projectId of every pack listed. */
  packs: Map<string, string>;
  /** Leases listed after the packs and before the mark. */
  leases: LeaseEntry[];
}

interface Mark {
  manifestKeys: string[];
  /** projectId → ids some manifest references (a ChunkIndex used as a compact id set). */
  referenced: Map<string, ChunkIndex>;
  snapshotIds: Set<string>;
}

/** What GC intends to do in one project. */
interface ProjectPlan {
  projectId: string;
  /** Packs to delete; those in `repack` have their kept copies moved out first. */
  condemned: Set<string>;
  /** Condemned pack → the chunk copies to move to new packs. */
  repack: Map<string, PackIndexEntry[]>;
  /** Every entry of the project's listed pack indexes, the keys of those indexes, and the pack lengths they record. */
  entries: PackIndexEntry[];
  indexKeys: string[];
  packLengths: Map<string, number>;
  /**
   * Packs the indexes name but the listing lacks (lost: a pack is put before its index). GC
   * sweeps only when every referenced chunk has an intact copy elsewhere, so their entries are
   * dead: the consolidated index drops them, with their `lost-` markers.
   */
  lost: Set<string>;
}

interface Plan {
  inventory: Inventory;
  mark: Mark;
  projects: ProjectPlan[];
}

interface Refusal {
  refused: string;
  manifests: number;
  missingChunks: string[];
}

/** The id-set use of ChunkIndex stores no location; this one marks "referenced". */
const REFERENCED: ChunkLocation = { pack: '', offset: 0, storedLength: 0, rawLength: 0, flags: 0 };

async function planGc(repo: Repository, opts: GcOptions): Promise<Plan | Refusal> {
  const inventory = await takeInventory(repo.backend);
  const mark = await markReferenced(repo.backend);
  const refuse = (refused: string, missingChunks: string[] = []): Refusal => ({ refused, manifests: mark.manifestKeys.length, missingChunks });
  const insane = checkMark(mark, opts);
  if (insane) return refuse(insane);
  const projects: ProjectPlan[] = [];
  const missing: string[] = [];
  const projectIds = new Set([...mark.referenced.keys(), ...inventory.indexes.map((p) => p.projectId), ...inventory.packs.values()]);
  for (const projectId of projectIds) {
    const refs = mark.referenced.get(projectId) ?? new ChunkIndex();
    const planned = await planProject(repo, projectId, inventory, refs, opts.repackBelow ?? 0.5);
    if (planned.keeper.size < refs.size) missing.push(...(await missingIds(repo, mark.manifestKeys, projectId, planned.keeper)));
    else projects.push(planned.plan);
  }
  if (missing.length > 0) return refuse(`${missing.length} referenced chunks have no intact copy; run verify; nothing deleted`, missing);
  return { inventory, mark, projects };
}

/** Pack indexes first, then packs (a pack is put before its index), then leases. */
async function takeInventory(b: Backend): Promise<Inventory> {
  const indexes: Inventory['indexes'] = [];
  for (const key of await listAll(b, 'index/')) {
    const p = parse.packIndex(key);
    if (!p) continue;
    const { header, entries } = decodePackIndex(key, await b.get(key));
    const packLengths = new Map(header.packLengths ? header.packs.map((pack, i) => [pack, header.packLengths![i]!] as const) : []);
    indexes.push({ key, projectId: p.projectId, entries, packLengths });
  }
  const packs = new Map<string, string>();
  for (const key of await listAll(b, 'packs/')) {
    const p = parse.pack(key);
    if (p) packs.set(p.packId, p.projectId);
  }
  // A writer that commits after the mark's manifest listing was live here, so its packs and
  // project are protected in the decide phase.
  return { indexes, packs, leases: await listLeases(b) };
}

async function markReferenced(b: Backend): Promise<Mark> {
  const manifestKeys = (await listAll(b, 'manifests/')).filter((k) => parse.manifest(k));
  const referenced = new Map<string, ChunkIndex>();
  const snapshotIds = new Set<string>();
  for (const mk of manifestKeys) {
    const m = decodeManifest(mk, await b.get(mk));
    snapshotIds.add(m.snapshotId);
    let set = referenced.get(m.projectId);
    if (!set) referenced.set(m.projectId, (set = new ChunkIndex()));
    for (const d of m.disks) {
      const di = decodeDiskIndex(d.index, await b.get(d.index));
      for (let off = 0; off < di.header.chunkCount * ID_LEN; off += ID_LEN) {
        if (di.ids.compare(ZERO_ID, 0, ID_LEN, off, off + ID_LEN) !== 0) set.set(di.ids, REFERENCED, off);
      }
    }
  }
  return { manifestKeys, referenced, snapshotIds };
}

/** A reason not to trust the mark (a listing that looks empty or lost snapshots), or null. */
function checkMark(mark: Mark, opts: GcOptions): string | null {
  if (opts.knownSnapshotIds) {
    const have = new Set(mark.manifestKeys.map((k) => parse.manifest(k)));
    const lost = opts.knownSnapshotIds.filter((id) => !have.has(id));
    if (lost.length > 0) return `snapshots known to the caller have no manifest: ${lost.slice(0, 5).join(', ')}`;
  }
  if (mark.manifestKeys.length === 0 && !opts.allowEmpty) {
    return 'the repository lists no snapshot manifest; refusing to sweep (pass allowEmpty to override)';
  }
  return null;
}

/**
 * Keeps one intact copy of every referenced chunk (preferring the pack with most referenced
 * bytes, so sparse packs empty out) and condemns the packs that keep nothing or too little.
 * `keeper.size < refs.size` tells the caller some referenced chunk has no intact copy.
 */
async function planProject(
  repo: Repository,
  projectId: string,
  inv: Inventory,
  refs: ChunkIndex,
  repackBelow: number,
): Promise<{ plan: ProjectPlan; keeper: ChunkIndex }> {
  const bad = await repo.listBadCopies(projectId);
  const own = inv.indexes.filter((p) => p.projectId === projectId);
  const entries = own.flatMap((p) => p.entries);
  const usable = (e: PackIndexEntry) => inv.packs.has(e.pack) && !bad.has(`${e.id.toString('hex')}.${e.pack}`) && refs.has(e.id);
  const refBytes = sumByPack(entries.filter(usable));
  const keeper = new ChunkIndex();
  for (const e of entries) {
    if (!usable(e)) continue;
    const cur = keeper.get(e.id);
    if (!cur || (refBytes.get(e.pack) ?? 0) > (refBytes.get(cur.pack) ?? 0)) keeper.set(e.id, e, 0, true);
  }
  const kept = (e: PackIndexEntry) => {
    const k = keeper.get(e.id);
    return k !== undefined && k.pack === e.pack && k.offset === e.offset;
  };
  const live = sumByPack(entries.filter(kept));
  const total = sumByPack(entries);
  const packLengths = new Map(own.flatMap((p) => [...p.packLengths]));
  const lost = new Set(entries.filter((e) => !inv.packs.has(e.pack)).map((e) => e.pack));
  const plan: ProjectPlan = { projectId, condemned: new Set(), repack: new Map(), entries, indexKeys: own.map((p) => p.key), packLengths, lost };
  for (const [pack, owner] of inv.packs) {
    if (owner !== projectId) continue;
    const l = live.get(pack) ?? 0;
    // total 0: no pack index lists the pack (a crashed writer's orphan): it keeps nothing.
    if (l === 0) plan.condemned.add(pack);
    else if (l < repackBelow * (total.get(pack) ?? 0)) {
      plan.condemned.add(pack);
      plan.repack.set(pack, entries.filter((e) => e.pack === pack && kept(e)));
    }
  }
  return { plan, keeper };
}

function sumByPack(entries: readonly PackIndexEntry[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of entries) m.set(e.pack, (m.get(e.pack) ?? 0) + e.storedLength);
  return m;
}

/** Hex ids of the project's referenced chunks that have no kept copy (for the refusal report). */
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
      for (let off = 0; off < di.header.chunkCount * ID_LEN; off += ID_LEN) {
        if (di.ids.compare(ZERO_ID, 0, ID_LEN, off, off + ID_LEN) === 0) continue;
        if (!keeper.has(di.ids, off)) out.add(di.ids.subarray(off, off + ID_LEN).toString('hex'));
      }
    }
  }
  return [...out];
}

// ---------------------------------------------------------------- decide

interface Decision {
  /** The plans, minus packs that must wait (they are counted in pendingPacks). */
  projects: ProjectPlan[];
  pendingPacks: number;
  /** Whether gc/plan.json was published (and must be removed at the end). */
  planPublished: boolean;
  /** Leases whose holders are dead (heartbeat older than ttl + grace). */
  deadLeases: LeaseEntry[];
  /** Ids of every live lease seen in either listing. */
  liveLeaseIds: Set<string>;
}

/**
 * Publishes the plan, then reads leases again and removes from the plan whatever a live
 * holder may still use. Refuses when a lease is unreadable or a snapshot was committed since
 * the mark (it may reference condemned packs: the next run will see it).
 */
async function decide(repo: Repository, plan: Plan): Promise<Decision | Refusal> {
  const b = repo.backend;
  // A refused run deletes nothing: its plan must not outlive it. Left published, it would make
  // every later writer shun packs that stay (in a race, packs a snapshot committed meanwhile
  // references: incrementals re-read and re-store those chunks until the next GC).
  const refuse = async (refused: string): Promise<Refusal> => {
    if (planPublished) await b.delete(GC_PLAN_KEY);
    return { refused, manifests: plan.mark.manifestKeys.length, missingChunks: [] };
  };
  const published: GcPlan = {
    planId: randomBytes(16).toString('hex'),
    createdAt: repo.clock.now(),
    condemned: Object.fromEntries(plan.projects.filter((p) => p.condemned.size > 0).map((p) => [p.projectId, [...p.condemned]])),
  };
  const planPublished = Object.keys(published.condemned).length > 0;
  if (planPublished) await b.put(GC_PLAN_KEY, Buffer.from(JSON.stringify(published)));

  const now = repo.clock.now();
  const leasesNow = await listLeases(b);
  const liveOf = (ls: LeaseEntry[]) => ls.filter((l) => !l.record || isLive(l.record, now, repo.graceMs));
  const before = liveOf(plan.inventory.leases);
  const after = liveOf(leasesNow);
  if ([...before, ...after].some((l) => l.record === null)) return await refuse('an unreadable lease exists; refusing to sweep');
  const marked = new Set(plan.mark.manifestKeys);
  if ((await listAll(b, 'manifests/')).some((k) => parse.manifest(k) && !marked.has(k))) {
    return await refuse('snapshots were committed during GC; run it again');
  }
  const liveLeaseIds = new Set([...before, ...after].map((l) => l.record!.id));
  // Holders that may reuse any chunk: everyone live before the plan existed, and everyone
  // live now that has not read this plan. GC leases hold nothing.
  const holders = [...before, ...after.filter((l) => l.record!.gcPlanSeen !== published.planId)].map((l) => l.record!).filter((r) => r.kind !== 'gc');
  const blockAll = holders.some((r) => r.projectId === null);
  const blocked = new Set(holders.map((r) => r.projectId));
  let pendingPacks = 0;
  for (const p of plan.projects) {
    if (blockAll || blocked.has(p.projectId)) p.lost.clear(); // its index is rewritten next round
    for (const pack of [...p.condemned]) {
      if (blockAll || blocked.has(p.projectId) || liveLeaseIds.has(packOwner(pack))) {
        p.condemned.delete(pack);
        p.repack.delete(pack);
        pendingPacks++;
      }
    }
  }
  // What is held back is not condemned this round: writers that start from now on may dedup
  // against it (same planId: holders that saw the plan stay 'seen').
  if (planPublished && pendingPacks > 0) await republish(b, published, plan.projects);
  const deadLeases = leasesNow.filter((l) => l.record !== null && !isLive(l.record, now, repo.graceMs));
  return { projects: plan.projects, pendingPacks, planPublished, deadLeases, liveLeaseIds };
}

/** Puts the plan again with only what will be swept (the plan is removed when nothing is). */
async function republish(b: Repository['backend'], published: GcPlan, projects: ProjectPlan[]): Promise<void> {
  const condemned = Object.fromEntries(projects.filter((p) => p.condemned.size > 0).map((p) => [p.projectId, [...p.condemned]]));
  if (Object.keys(condemned).length === 0) await b.delete(GC_PLAN_KEY);
  else await b.put(GC_PLAN_KEY, Buffer.from(JSON.stringify({ ...published, condemned } satisfies GcPlan)));
}

// ---------------------------------------------------------------- execute

async function executeGc(repo: Repository, lease: Lease, plan: Plan, d: Decision, opts: GcOptions, report: GcReport): Promise<void> {
  const b = repo.backend;
  // One sequence for every object this run writes: ids `<gc lease id>-<seq>` never collide.
  let seq = 0;
  const nextId = () => packId(lease.record.id, seq++);
  for (const p of d.projects) {
    if (p.condemned.size > 0 || p.lost.size > 0) await sweepProject(repo, lease, p, nextId, report);
  }
  for (const l of d.deadLeases) {
    await b.delete(l.key);
    report.leasesRemoved++;
  }
  report.diskIndexesRemoved = await removeOrphanDiskIndexes(repo, plan.mark.snapshotIds);
  report.leftoversRemoved = (await b.sweepLeftovers?.(opts.leftoverGraceMs ?? LEFTOVER_GRACE_MS)) ?? 0;
  if (d.planPublished) await b.delete(GC_PLAN_KEY);
}

/**
 * Repack → consolidated index (without condemned or lost packs) → delete old indexes → delete
 * condemned packs → delete the markers of condemned and lost packs.
 */
async function sweepProject(repo: Repository, lease: Lease, p: ProjectPlan, nextId: () => string, report: GcReport): Promise<void> {
  const b = repo.backend;
  const moved = await repackProject(repo, lease, p, nextId, report);
  const survivors = p.entries.filter((e) => !p.condemned.has(e.pack) && !p.lost.has(e.pack)).concat(moved);
  if (survivors.length > 0) {
    const lengths = await survivorLengths(b, p, survivors);
    lease.assertValid();
    await b.put(keys.packIndex(p.projectId, nextId()), encodePackIndex(p.projectId, repo.clock.now(), survivors, lengths));
    report.packIndexesRewritten++;
  }
  for (const k of p.indexKeys) await b.delete(k);
  for (const pack of p.condemned) {
    lease.assertValid();
    const k = keys.pack(p.projectId, pack);
    report.bytesFreed += (await b.stat(k)) ?? 0;
    await b.delete(k);
    if (!p.repack.has(pack)) report.packsDeleted++;
  }
  for (const k of await listAll(b, `bad/${p.projectId}/`)) {
    const pack = parse.bad(k)?.packId ?? parse.lostPack(k)?.packId;
    if (pack !== undefined && (p.condemned.has(pack) || p.lost.has(pack))) {
      await b.delete(k);
      report.badMarkersRemoved++;
    }
  }
}

/**
 * Exact length of every pack the consolidated index names (writers check packs against it):
 * as recorded by the old indexes and by the repack, else one stat per pack.
 */
async function survivorLengths(b: Backend, p: ProjectPlan, survivors: readonly PackIndexEntry[]): Promise<Map<string, number>> {
  const lengths = new Map(p.packLengths);
  for (const pack of new Set(survivors.map((e) => e.pack))) {
    if (lengths.has(pack)) continue;
    const n = await b.stat(keys.pack(p.projectId, pack));
    if (n !== null) lengths.set(pack, n);
  }
  return lengths;
}

/**
 * Copies the kept chunks of the packs in `p.repack` into new packs (each chunk verified
 * first: a damaged copy stops the run rather than spreading) and returns their new entries.
 */
async function repackProject(repo: Repository, lease: Lease, p: ProjectPlan, nextId: () => string, report: GcReport): Promise<PackIndexEntry[]> {
  const b = repo.backend;
  const hasher = newChunkHasher(repo.projectKey(p.projectId));
  const codec = new ChunkCodec();
  const moved: PackIndexEntry[] = [];
  let open: { id: string; parts: Uint8Array[]; entries: PackIndexEntry[]; size: number } | null = null;
  const flush = async () => {
    if (!open) return;
    lease.assertValid();
    const trailer = encodePackTrailer(p.projectId, open.entries);
    await b.put(keys.pack(p.projectId, open.id), [...open.parts, trailer]);
    p.packLengths.set(open.id, open.size + trailer.length);
    moved.push(...open.entries);
    open = null;
  };
  for (const [pack, keep] of p.repack) {
    if (keep.length === 0) continue;
    const data = await b.get(keys.pack(p.projectId, pack));
    for (const e of keep) {
      const stored = data.subarray(e.offset, e.offset + e.storedLength);
      const err = stored.length === e.storedLength ? codec.decodeVerify(stored, e.flags, Buffer.allocUnsafe(e.rawLength), hasher, e.id) : 'truncated';
      if (err) throw new IntegrityError(`GC: chunk ${e.id.toString('hex')} in pack ${pack} is damaged (${err}); run verify`);
      open ??= { id: nextId(), parts: [], entries: [], size: 0 };
      open.entries.push({ ...e, pack: open.id, offset: open.size });
      open.parts.push(stored);
      open.size += stored.length;
      if (open.size >= repo.config.packSize) await flush();
    }
    report.packsRepacked++;
  }
  await flush();
  return moved;
}

/** Disk indexes of snapshots that have no manifest and whose writer is not live (it died). */
/**
 * Removes disk indexes of snapshots that have no manifest and no live writer: neither the one
 * that wrote the index nor another writer of its snapshot (a per-host part's indexes wait for
 * the snapshot's committing writer, which adopts them). Leases are listed after the indexes:
 * every writer puts its lease before its first index and keeps it until its manifest exists,
 * so an index listed here whose snapshot has a writer still running is always seen as held.
 * An unreadable lease removes nothing this round.
 */
async function removeOrphanDiskIndexes(repo: Repository, snapshotIds: ReadonlySet<string>): Promise<number> {
  const b = repo.backend;
  const indexes = (await listAll(b, 'disks/')).flatMap((k) => {
    const p = parse.diskIndex(k);
    return p && !snapshotIds.has(p.snapshotId) ? [{ key: k, ...p }] : [];
  });
  if (indexes.length === 0) return 0;
  const now = repo.clock.now();
  const leases = await listLeases(b);
  if (leases.some((l) => l.record === null)) return 0;
  const live = leases.map((l) => l.record!).filter((r) => isLive(r, now, repo.graceMs));
  const liveIds = new Set(live.map((r) => r.id));
  const liveSnapshots = new Set(live.flatMap((r) => (r.kind === 'writer' && r.snapshotId ? [r.snapshotId] : [])));
  let n = 0;
  for (const x of indexes) {
    if (liveIds.has(x.writerId) || liveSnapshots.has(x.snapshotId) || (await b.stat(keys.manifest(x.snapshotId))) !== null) continue;
    await b.delete(x.key);
    n++;
  }
  return n;
}

export type { Lease };
