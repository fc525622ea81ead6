import { listAll, type Backend } from '../backend/backend.js';
import { errorMessage, IntegrityError, NotFoundError } from '../lib/errors.js';
import { mapLimit } from '../lib/map-limit.js';
import { ChunkIndex } from './chunk-index.js';
import { keys, packId, parse } from './keys.js';
import { ID_LEN } from './chunk-codec.js';
import { decodePackIndexRecords, encodePackIndex, minPackLength, PACK_INDEX_RECORD, packIndexRecords, recordLocation, recordPack, type ChunkLocation, type PackIndexEntry, type PackIndexRecords } from './pack-index.format.js';
import { decodePackTrailer } from './pack.format.js';

/**
 * Loading a project's chunk index (every copy its pack indexes list), with the two checks that
 * keep a backup from deduplicating against data that is not there:
 *
 * - **pack check** (`checkPacks`): ONE listing of `packs/<project>/`, which gives the sizes on
 *   S3, plus one stat per pack where a listing has none (never per chunk): every pack an index
 *   references must exist with the indexed length (exact when the index records it, else at
 *   least `minPackLength`). Copies in a lost pack are left out, so the writer re-uploads those
 *   chunks. Condemned packs (GC plan) are not checked: GC may delete them at any time and the
 *   writer ignores them anyway.
 * - **index repair**: an unreadable (truncated, corrupt) pack index no longer blocks the
 *   project. Its packs are found by listing (packs no readable index covers) and re-indexed
 *   from their self-describing trailers (`pack.format.ts`), like `restic repair index`. With
 *   `repair: 'write'` the rebuilt index is put (under a fresh id) BEFORE the unreadable ones
 *   are deleted, so a crash in between only leaves a duplicate entry. With 'memory' (readers)
 *   nothing is written.
 *
 * Order matters: indexes are listed before packs, and a pack is always put before its index,
 * so every pack a listed index names was durable before the pack listing started.
 */
export interface LoadIndexOptions {
  /** Packs never to dedup against or check (GC-condemned). */
  excludePacks?: ReadonlySet<string>;
  checkPacks?: boolean;
  /** What to do with unreadable pack indexes: rebuild in memory only, or also write the result. */
  repair?: 'memory' | 'write';
  /** Re-index every pack no readable index covers, even when no index is unreadable (repair-index). */
  reindexUncovered?: boolean;
  /** Fencing for 'write': throws when the caller's lease may be lost. */
  assertCanWrite?: () => void;
  /** Writer id to name a rebuilt index after (`<id>-999998.pidx`). */
  repairId?: string;
  clockNow?: () => number;
}

export interface LostPack {
  pack: string;
  reason: string;
  /** Its loss was already reported on the affected snapshots (`bad/<project>/lost-<pack>`). */
  reported: boolean;
  /** Chunk copies the index lists in it. */
  chunks: number;
}

export interface IndexRepair {
  /** Unreadable pack indexes found (deleted when the repair was written). */
  unreadableIndexes: { key: string; reason: string }[];
  /** Packs re-indexed from their trailers. */
  packsReindexed: number;
  /** Packs no index covers whose trailer could not be read (their chunks stay unusable). */
  unreadablePacks: { pack: string; reason: string }[];
  /** Key of the rebuilt pack index, when one was written. */
  written: string | null;
}

export interface LoadedIndex {
  index: ChunkIndex;
  /** Pack check result (null when not requested). */
  lostPacks: LostPack[] | null;
  /** Hex ids of chunks whose every indexed copy is in a lost pack not reported yet. */
  lostChunks: string[];
  /**
   * Hex ids whose every indexed copy is marked bad (by verify, a restore or a read-back): a
   * writer uploads them again when its disk still holds them (then the damage is healed).
   */
  badOnlyChunks: string[];
  packsChecked: number;
  /** Milliseconds the pack listing + stats took. */
  checkMs: number;
  repair: IndexRepair | null;
}

/** A pack index kept as its stored records (52 bytes per chunk copy, no object per entry). */
type ReadIndex = PackIndexRecords;

/** Small requests (index reads, stats) in flight at once while loading: an object store answers each in tens of ms. */
const REQUESTS_IN_FLIGHT = 16;

/** Lengths of every pack of the project: one listing with sizes (Backend.listSizes), else one listing and a stat per pack. */
export async function packLengths(backend: Backend, projectId: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (backend.listSizes) {
    // One listing tells every length (S3: a request per 1,000 packs, not one per pack).
    for await (const o of backend.listSizes(`packs/${projectId}/`)) {
      const p = parse.pack(o.key);
      if (p) out.set(p.packId, o.size);
    }
    return out;
  }
  const ids: string[] = [];
  for (const k of await listAll(backend, `packs/${projectId}/`)) {
    const p = parse.pack(k);
    if (p) ids.push(p.packId);
  }
  const lengths = await mapLimit(ids, REQUESTS_IN_FLIGHT, (id) => backend.stat(keys.pack(projectId, id)));
  ids.forEach((id, i) => lengths[i] !== null && out.set(id, lengths[i]!));
  return out;
}

/**
 * Reads a pack's trailer (two range reads: the length word, then the trailer) and checks
 * that every entry lies inside the pack's data area. Throws IntegrityError when it cannot.
 */
export async function readPackEntries(backend: Backend, projectId: string, pack: string, size: number): Promise<PackIndexEntry[]> {
  const key = keys.pack(projectId, pack);
  if (size < 4) throw new IntegrityError(`pack ${pack} is truncated (${size} bytes)`);
  const len = (await backend.getRange(key, size - 4, 4)).readUInt32LE(0);
  if (len + 4 > size) throw new IntegrityError(`pack ${pack} has a bad trailer length`);
  const tail = await backend.getRange(key, size - 4 - len, len + 4);
  const entries = decodePackTrailer(`pack ${pack}`, tail, projectId);
  const dataEnd = size - 4 - len;
  for (const e of entries) {
    if (e.offset + e.storedLength > dataEnd) throw new IntegrityError(`pack ${pack} trailer points past its data`);
  }
  return entries.map((e) => ({ ...e, pack }));
}

async function readIndexes(backend: Backend, projectId: string): Promise<{ ok: ReadIndex[]; bad: { key: string; reason: string }[] }> {
  const indexKeys = (await listAll(backend, `index/${projectId}/`)).filter((key) => parse.packIndex(key));
  // Read side by side (a project holds an index per writer until GC consolidates them), kept
  // in listing order.
  const read = await mapLimit(indexKeys, REQUESTS_IN_FLIGHT, async (key) => {
    try {
      return decodePackIndexRecords(key, await backend.get(key));
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e; // NotFound: GC consolidated meanwhile → caller retries
      return { key, reason: errorMessage(e) };
    }
  });
  const ok: ReadIndex[] = [];
  const bad: { key: string; reason: string }[] = [];
  for (const r of read) {
    if ('reason' in r) bad.push(r);
    else ok.push(r);
  }
  return { ok, bad };
}

/** Re-indexes the packs no readable index covers; writes the result when asked. */
async function repairIndexes(
  backend: Backend,
  projectId: string,
  read: { ok: ReadIndex[]; bad: { key: string; reason: string }[] },
  sizes: Map<string, number>,
  opts: LoadIndexOptions,
): Promise<{ repair: IndexRepair; rebuilt: ReadIndex | null }> {
  const covered = new Set(read.ok.flatMap((x) => x.header.packs));
  const repair: IndexRepair = { unreadableIndexes: read.bad, packsReindexed: 0, unreadablePacks: [], written: null };
  const entries: PackIndexEntry[] = [];
  const lengths = new Map<string, number>();
  for (const [pack, size] of sizes) {
    if (covered.has(pack) || opts.excludePacks?.has(pack)) continue;
    try {
      entries.push(...(await readPackEntries(backend, projectId, pack, size)));
      lengths.set(pack, size);
      repair.packsReindexed++;
    } catch (e) {
      if (e instanceof NotFoundError) continue; // deleted meanwhile (GC of an orphan)
      if (!(e instanceof IntegrityError)) throw e;
      repair.unreadablePacks.push({ pack, reason: errorMessage(e) });
    }
  }
  if (opts.repair === 'write') {
    if (!opts.repairId) throw new Error('index repair needs the writer id to name the rebuilt index');
    if (entries.length > 0) {
      opts.assertCanWrite?.();
      const key = keys.packIndex(projectId, packId(opts.repairId, 999998));
      await backend.put(key, encodePackIndex(projectId, opts.clockNow?.() ?? Date.now(), entries, lengths));
      repair.written = key;
    }
    for (const b of read.bad) {
      opts.assertCanWrite?.();
      await backend.delete(b.key);
    }
  }
  if (entries.length === 0) return { repair, rebuilt: null };
  const { packs, body } = packIndexRecords(entries);
  return { repair, rebuilt: { header: { packs, packLengths: packs.map((p) => lengths.get(p)!) }, body, count: entries.length } };
}

/** Why a pack an index references cannot be trusted, or null when it looks whole. */
function packProblem(pack: string, actual: number | undefined, expected: number | undefined, minimum: number): string | null {
  if (actual === undefined) return `pack ${pack} is missing`;
  if (expected !== undefined && actual !== expected) return `pack ${pack} has ${actual} bytes, the index says ${expected}`;
  if (expected === undefined && actual < minimum) return `pack ${pack} has ${actual} bytes, its chunks need at least ${minimum}`;
  return null;
}

/** Packs of `idx` that failed the check (pack → problem). */
function checkIndexPacks(idx: ReadIndex, sizes: Map<string, number>, exclude: ReadonlySet<string> | undefined): Map<string, string> {
  // Only indexes written before packLengths need their locations grouped (for minPackLength).
  const byPack = new Map<string, ChunkLocation[]>();
  if (!idx.header.packLengths) {
    for (let i = 0; i < idx.count; i++) {
      const e = recordLocation(idx, i);
      const l = byPack.get(e.pack);
      if (l) l.push(e);
      else byPack.set(e.pack, [e]);
    }
  }
  const out = new Map<string, string>();
  idx.header.packs.forEach((pack, i) => {
    if (exclude?.has(pack)) return;
    const why = packProblem(pack, sizes.get(pack), idx.header.packLengths?.[i], minPackLength(byPack.get(pack) ?? []));
    if (why) out.set(pack, why);
  });
  return out;
}

/** A copy left out of the index (lost pack or marked bad): reported by id. */
interface CopyRef {
  id: Buffer;
  pack: string;
}

function copyRef(body: Buffer, at: number, pack: string): CopyRef {
  return { id: Buffer.from(body.subarray(at, at + ID_LEN)), pack };
}

/**
 * One pass of loading (see the module comment). `markers.badCopies` = `<chunkHex>.<pack>` copies
 * verify or a restore found bad; they are never in the result. Chunks of lost packs in
 * `markers.reportedLostPacks` are left out of `lostChunks` (their loss was reported before).
 */
export async function loadIndexOnce(
  backend: Backend,
  projectId: string,
  markers: { badCopies: ReadonlySet<string>; reportedLostPacks: ReadonlySet<string> },
  opts: LoadIndexOptions,
): Promise<LoadedIndex> {
  const bad = markers.badCopies;
  const read = await readIndexes(backend, projectId);
  const wantRepair = read.bad.length > 0 || opts.reindexUncovered === true;
  const t0 = performance.now();
  const sizes = opts.checkPacks || wantRepair ? await packLengths(backend, projectId) : null;
  const checkMs = performance.now() - t0;
  let repair: IndexRepair | null = null;
  const all = [...read.ok];
  if (wantRepair && sizes) {
    const r = await repairIndexes(backend, projectId, read, sizes, opts);
    repair = r.repair;
    if (r.rebuilt) all.push(r.rebuilt);
  }
  const lost = new Map<string, LostPack>();
  const lostEntries: CopyRef[] = [];
  const badEntries: CopyRef[] = [];
  const index = new ChunkIndex();
  index.reserve(all.reduce((n, idx) => n + idx.count, 0)); // one table of the final size, no rehash series
  for (const idx of all) {
    const problems = opts.checkPacks && sizes ? checkIndexPacks(idx, sizes, opts.excludePacks) : null;
    const b = idx.body;
    for (let i = 0, at = 0; i < idx.count; i++, at += PACK_INDEX_RECORD) {
      const pack = recordPack(idx, i);
      if (opts.excludePacks?.has(pack)) continue;
      const why = problems?.get(pack);
      if (why) {
        const l = lost.get(pack) ?? { pack, reason: why, reported: markers.reportedLostPacks.has(pack), chunks: 0 };
        l.chunks++;
        lost.set(pack, l);
        lostEntries.push(copyRef(b, at, pack));
        continue;
      }
      if (bad.size > 0 && bad.has(`${b.toString('hex', at, at + ID_LEN)}.${pack}`)) {
        badEntries.push(copyRef(b, at, pack));
        continue;
      }
      index.setFields(b, at, pack, b.readUInt32LE(at + 36), b.readUInt32LE(at + 40), b.readUInt32LE(at + 44), b.readUInt32LE(at + 48));
    }
  }
  const lostChunks = new Set<string>();
  for (const e of lostEntries) if (!index.has(e.id) && !lost.get(e.pack)!.reported) lostChunks.add(e.id.toString('hex'));
  return {
    index,
    lostPacks: opts.checkPacks ? [...lost.values()] : null,
    lostChunks: [...lostChunks],
    badOnlyChunks: [...new Set(badEntries.filter((e) => !index.has(e.id)).map((e) => e.id.toString('hex')))],
    packsChecked: sizes?.size ?? 0,
    checkMs,
    repair,
  };
}
