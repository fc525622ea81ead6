import type { DiskSource, Extent } from '../platform/platform.js';
import { CorruptMetadataError, ValidationError } from '../lib/errors.js';
import { FLAG_COMPRESSED, ID_LEN, isZeroId, type ChunkIdKey } from '../repository/chunk-codec.js';
import { chunkCountFor, type DiskIndex } from '../repository/disk-index.format.js';
import type { ManifestDisk } from '../repository/manifest.format.js';
import type { NewChunk, SnapshotWriter } from '../repository/snapshot-writer.js';
import { acquireSlotMemory, releaseSlotMemory, sharedChunkPool, type ChunkPool } from './chunk-pool.js';
import { ReuseProof, type ReuseProofStats } from './reuse-proof.js';

/**
 * Default read batch: 64 chunks of 64 KiB. Halving the messages, wake-ups and reads of 2 MiB
 * batches costs ~6 % less CPU on a re-read incremental (which is CPU-bound on small boxes).
 */
const DEFAULT_BATCH_BYTES = 4 << 20;
const ZERO_CHUNK = Buffer.alloc(4 << 20); // largest chunk size the repository allows

export interface Progress {
  bytesDone: number;
  bytesTotal: number;
}

export interface BackupDiskOptions {
  writer: SnapshotWriter;
  /** The caller's name for the disk, unique within the snapshot (any text; never a path). */
  diskKey: string;
  source: DiskSource;
  /** Opaque per-disk metadata stored in the manifest. */
  meta?: unknown;
  /**
   * Read and hash everything and trust no earlier index (chunks are still deduplicated against
   * intact stored chunks). Default false.
   */
  full?: boolean;
  /** The same disk's index in the previous snapshot (from repo.findDiskIndex), for incrementals. */
  base?: DiskIndex | null;
  /** Platform checkpoint of the base snapshot, passed to source.changedExtentsSince. */
  cbtBase?: string | null;
  onProgress?: (p: Progress) => void;
  /**
   * Called once, when the last read of the source has returned (or at once when nothing is
   * read): the source is not needed any more although the disk's data and index are still
   * being stored. Not called when the backup fails before that.
   */
  onReadsDone?: () => void;
  signal?: AbortSignal;
  pool?: ChunkPool;
  /** Bytes per read batch (a multiple of the chunk size; default 4 MiB). */
  batchBytes?: number;
  /**
   * Batches in flight (default 1 per worker + 3, or + 1 on a target whose uploads are buffered):
   * bounds memory whatever the disk size. With two workers the slots are 5 × (4 + 4) MiB, the
   * same memory a restore's slots take.
   */
  maxInFlight?: number;
}

export type BackupMode = 'full' | 'read-all' | 'change-token' | 'changed-extents';

export interface BackupDiskSummary {
  diskKey: string;
  mode: BackupMode;
  size: number;
  bytesRead: number;
  /** New (compressed) chunk bytes this disk added to the repository. */
  bytesStored: number;
  newChunks: number;
  reusedChunks: number;
  holes: number;
  /** Full snapshots: earlier copies read back before reuse (see reuse-proof.ts). */
  reuseProof: ReuseProofStats | null;
  /** Manifest entry (includes the disk index key). */
  disk: ManifestDisk;
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error('The operation was aborted');
  e.name = 'AbortError';
  return e;
}

/** Chunk numbers touched by the extents. */
function markExtents(need: Uint8Array, extents: readonly Extent[], chunkSize: number): void {
  for (const e of extents) {
    if (e.length <= 0) continue;
    const first = Math.floor(e.offset / chunkSize);
    const last = Math.min(need.length - 1, Math.floor((e.offset + e.length - 1) / chunkSize));
    for (let i = first; i <= last; i++) need[i] = 1;
  }
}

/**
 * Backs up one disk into a running snapshot: read → zero check → keyed hash → (only for new
 * chunks) zstd → pack, then the disk index. Hash and compression run on the worker pool; the
 * main thread reads, deduplicates and packs. Memory is bounded by maxInFlight × batchBytes plus
 * two packs, independent of the disk size.
 *
 * Incremental rules (never skip data on a guess):
 * - equal, non-empty changeToken on source and base (same size) → reuse the base ids, read nothing;
 * - base + cbtBase + changedExtentsSince() → read the changed chunks, reuse the rest of the base;
 * - otherwise read and hash everything, store only chunks the project lacks.
 * In every mode a reused id must still have an intact stored copy (not marked bad by verify,
 * not condemned by GC); if not, that chunk is re-read and re-uploaded (self-heal).
 *
 * The writer may still be loading its chunk index (Repository.startSnapshot): the disk is read
 * and hashed meanwhile, and its index is awaited before the first id is looked up.
 *
 * On failure or abort the writer is marked failed (it cannot commit) and the error is thrown;
 * an abort throws the signal's reason (an AbortError by default). The caller owns the source
 * and closes it.
 */
export async function backupDisk(opts: BackupDiskOptions): Promise<BackupDiskSummary> {
  const { writer, diskKey, signal } = opts;
  try {
    return await run(opts);
  } catch (e) {
    writer.fail(signal?.aborted ? 'aborted' : `disk ${diskKey} failed: ${e instanceof Error ? e.message : String(e)}`);
    if (signal?.aborted) throw abortReason(signal);
    throw e;
  }
}

/** Planning → batching → dispatch → index. */
async function run(opts: BackupDiskOptions): Promise<BackupDiskSummary> {
  const { source, diskKey } = opts;
  if (!Number.isSafeInteger(source.size) || source.size < 0) throw new ValidationError(`disk ${diskKey}: bad size ${source.size}`);
  const plan = await planDisk(opts);
  opts.signal?.throwIfAborted();
  const batchChunks = Math.max(1, Math.floor((opts.batchBytes ?? DEFAULT_BATCH_BYTES) / opts.writer.chunkSize));
  const batches = planBatches(plan.need, batchChunks, plan.chunkSize, plan.size);
  const stats = await dispatchBatches(opts, plan, batches, batchChunks);
  return writeIndex(opts, plan, stats);
}

// ---- planning: which chunks to read, which ids to reuse ---------------------------------------

interface DiskPlan {
  mode: BackupMode;
  size: number;
  chunkSize: number;
  count: number;
  /** Chunk ids of the new index (reused ones filled in by planning, read ones by dispatch). */
  ids: Buffer;
  /** 1 = read this chunk. */
  need: Uint8Array;
  /** True when a base index is in play (steers compression speculation). */
  hasBase: boolean;
  /**
   * True while the reused base ids are not checked against the chunk index (checkReusedIds).
   * The check runs while the first batches are read: it is CPU on the main thread (7-12 ms for
   * a 2 GiB disk on the libvirt bench) that stood before the first read of an incremental.
   */
  reuseUnchecked: boolean;
}

async function planDisk(opts: BackupDiskOptions): Promise<DiskPlan> {
  const { writer, source, diskKey } = opts;
  const chunkSize = writer.chunkSize;
  const size = source.size;
  const count = chunkCountFor(size, chunkSize);
  const plan: DiskPlan = { mode: opts.full ? 'full' : 'read-all', size, chunkSize, count, ids: Buffer.alloc(count * ID_LEN), need: new Uint8Array(count), hasBase: false, reuseUnchecked: false };
  const base = opts.full ? null : (opts.base ?? null);
  if (base) {
    if (base.header.projectId !== writer.projectId) throw new CorruptMetadataError(`disk ${diskKey}: base index belongs to another project`);
    if (base.header.chunkSize !== chunkSize) throw new CorruptMetadataError(`disk ${diskKey}: base index has another chunk size`);
    plan.hasBase = true;
  }
  opts.signal?.throwIfAborted();
  const reuse = base ? await reuseMode(opts, base, plan) : null;
  if (reuse && base) {
    plan.mode = reuse;
    reuseBaseIds(base, plan);
    plan.reuseUnchecked = true;
  } else if (source.allocatedExtents) {
    // Chunks outside every allocated extent are holes without reading them.
    markExtents(plan.need, await source.allocatedExtents(), chunkSize);
  } else {
    plan.need.fill(1);
  }
  return plan;
}

/** How much of the base can be trusted: all of it (same change token), all but the changed extents, or nothing. */
async function reuseMode(opts: BackupDiskOptions, base: DiskIndex, plan: DiskPlan): Promise<BackupMode | null> {
  const { source } = opts;
  if (source.changeToken && base.header.changeToken === source.changeToken && base.header.size === plan.size) return 'change-token';
  if (!opts.cbtBase || !source.changedExtentsSince) return null;
  const changed = await source.changedExtentsSince(opts.cbtBase);
  if (!changed) return null;
  markExtents(plan.need, changed, plan.chunkSize);
  return 'changed-extents';
}

/**
 * Copies base ids for every chunk not marked for reading. Base chunks are reusable only where
 * the chunk covers the same byte range: a disk that grew or shrank re-reads its (old or new)
 * partial last chunk and everything past the base. Whether each reused id still has an intact
 * stored copy is checked later (checkReusedIds).
 */
function reuseBaseIds(base: DiskIndex, plan: DiskPlan): void {
  const { count, chunkSize, size, need, ids } = plan;
  const sameLen = (i: number) => (i + 1) * chunkSize <= Math.min(size, base.header.size) || (i === count - 1 && size === base.header.size);
  // Every base id in one copy (a copy per chunk costs ~0.1-0.5 µs each: 3-18 ms for 2 GiB);
  // a chunk to be read gets its id back to zero, because dispatch writes only the ids of the
  // non-zero chunks it reads and a chunk that reads as zeros must stay a hole.
  const shared = Math.min(count, base.header.chunkCount);
  base.ids.copy(ids, 0, 0, shared * ID_LEN);
  for (let i = 0; i < count; i++) {
    if (!need[i] && (i >= base.header.chunkCount || !sameLen(i))) need[i] = 1;
    if (need[i] && i < shared) ids.fill(0, i * ID_LEN, (i + 1) * ID_LEN);
  }
}

/**
 * The reused chunks whose base id has no intact stored copy any more (marked bad by verify,
 * condemned by GC, or gone): marked in a new need array (null when there are none), their ids
 * back to zero, to be read again (self-heal). Chunks already being read are not touched.
 */
async function checkReusedIds(writer: SnapshotWriter, plan: DiskPlan): Promise<Uint8Array | null> {
  plan.reuseUnchecked = false;
  await writer.ready(); // the check looks every reused id up in the index
  let extra: Uint8Array | null = null;
  for (let i = 0; i < plan.count; i++) {
    const off = i * ID_LEN;
    if (plan.need[i] || isZeroId(plan.ids, off) || writer.hasChunk(plan.ids, off)) continue;
    extra ??= new Uint8Array(plan.count);
    extra[i] = 1;
    plan.need[i] = 1;
    plan.ids.fill(0, off, off + ID_LEN);
  }
  return extra;
}

// ---- batching: runs of needed chunks, packed into slots ---------------------------------------

/** Consecutive chunks `first … first + n - 1`. */
interface Run {
  first: number;
  n: number;
}

/**
 * What one slot reads and stores at once: at most batchChunks chunks from one or more runs, in
 * ascending order and back to back in the slot (the batch's chunk k is the k-th chunk over its
 * runs). Scattered short runs (changed extents of an incremental) share a batch: 300 runs of
 * one or two chunks cost a few worker round trips and pack appends instead of 300 each. Only
 * the disk's last chunk may be short, and it is then the batch's last chunk.
 */
interface Batch {
  runs: Run[];
  /** Chunks in the batch. */
  n: number;
  /** Bytes in the batch. */
  length: number;
}

/** The needed chunks in batches of at most batchChunks chunks (see Batch). */
function planBatches(need: Uint8Array, batchChunks: number, chunkSize: number, size: number): Batch[] {
  const batches: Batch[] = [];
  let cur: Batch | null = null;
  for (let i = 0; i < need.length; ) {
    if (!need[i]) {
      i++;
      continue;
    }
    if (!cur || cur.n === batchChunks) {
      cur = { runs: [], n: 0, length: 0 };
      batches.push(cur);
    }
    let n = 1;
    while (i + n < need.length && need[i + n] && cur.n + n < batchChunks) n++;
    cur.runs.push({ first: i, n });
    cur.n += n;
    cur.length += runLength({ first: i, n }, chunkSize, size);
    i += n;
  }
  return batches;
}

function runLength(r: Run, chunkSize: number, size: number): number {
  return Math.min(size, (r.first + r.n) * chunkSize) - r.first * chunkSize;
}

/** The chunk number of each of the batch's chunks. */
function chunkNumbers(b: Batch): number[] {
  const out: number[] = [];
  for (const r of b.runs) for (let i = 0; i < r.n; i++) out.push(r.first + i);
  return out;
}

// ---- dispatch: bounded concurrency over shared slot memory ------------------------------------

interface CopyStats {
  bytesRead: number;
  bytesStored: number;
  newChunks: number;
  reuseProof: ReuseProofStats | null;
}

/**
 * One shared buffer for the batches in flight, allocated once per disk and laid out as
 * [data slots | output slots | id slots | meta slots]. Memory = maxInFlight × (2 × batchBytes +
 * small), whatever the disk size.
 */
class SlotMemory {
  readonly buf: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly words: Uint32Array;
  private readonly outBase: number;
  private readonly idsBase: number;
  private readonly metaBase: number;

  constructor(
    readonly slots: number,
    readonly batchBytes: number,
    readonly batchChunks: number,
  ) {
    this.outBase = slots * batchBytes;
    this.idsBase = 2 * this.outBase;
    this.metaBase = this.idsBase + slots * batchChunks * ID_LEN; // a multiple of 4
    this.buf = acquireSlotMemory(this.metaBase + slots * batchChunks * 8);
    this.bytes = new Uint8Array(this.buf);
    this.words = new Uint32Array(this.buf);
  }

  dataOff(slot: number): number {
    return slot * this.batchBytes;
  }
  outOff(slot: number): number {
    return this.outBase + slot * this.batchBytes;
  }
  idsOff(slot: number): number {
    return this.idsBase + slot * this.batchChunks * ID_LEN;
  }
  /** In u32 elements: two per chunk (stored length, flags). */
  metaOff(slot: number): number {
    return this.metaBase / 4 + slot * this.batchChunks * 2;
  }
  release(): void {
    releaseSlotMemory(this.buf);
  }
}

/**
 * Batches in flight beyond one per chunk worker. Three keep the workers fed while a batch is read
 * and one waits on a direct write (fs). On a target that buffers its uploads (S3's part pool) a
 * batch beyond the one being read would only wait on the writer while a pack goes up: measured
 * with bench/scaleout.bench.ts (2 GiB to s3rver), 3 slots instead of 5 took the service's peak
 * RSS from 253-256 to 241-244 MiB at the same speed within the noise (4.2 vs 4.4 s median).
 */
function readAhead(writer: SnapshotWriter): number {
  return writer.uploadsBuffered ? 1 : 3;
}

/** Runs every batch with at most maxInFlight at once; the first failure stops new batches and is thrown once all settled. */
async function dispatchBatches(opts: BackupDiskOptions, plan: DiskPlan, batches: Batch[], batchChunks: number): Promise<CopyStats> {
  const stats: CopyStats = { bytesRead: 0, bytesStored: 0, newChunks: 0, reuseProof: null };
  const bytesOf = (bs: readonly Batch[]) => bs.reduce((s, b) => s + b.length, 0);
  const progress = new ProgressFeed(plan.size, plan.size - bytesOf(batches), opts.onProgress); // reused and unallocated ranges count as processed at once
  // The reused ids' check: its re-reads become more batches (onReadsDone waits for it).
  const checkReuse = async (): Promise<Batch[]> => {
    const extra = plan.reuseUnchecked ? await checkReusedIds(opts.writer, plan) : null;
    const more = extra ? planBatches(extra, batchChunks, plan.chunkSize, plan.size) : [];
    progress.reclaim(bytesOf(more));
    return more;
  };
  if (batches.length === 0) batches.push(...(await checkReuse()));
  if (batches.length === 0) {
    opts.onReadsDone?.();
    return stats;
  }
  const pool = opts.pool ?? sharedChunkPool();
  const maxInFlight = Math.max(1, Math.min(opts.maxInFlight ?? pool.size + readAhead(opts.writer), batches.length));
  const mem = new SlotMemory(maxInFlight, batchChunks * plan.chunkSize, batchChunks);
  const { hash, key: k } = opts.writer.projectKey;
  const key: ChunkIdKey = { hash, key: new Uint8Array(k) }; // own buffer: posting a pooled view would clone the pool
  // A full snapshot trusts no stored copy it has not read back (the heal for bit flips).
  const proof = opts.full ? new ReuseProof(opts.writer, pool, key, mem.batchBytes, maxInFlight) : null;
  // One more than the batches until the reused ids are checked: the reads are not done before.
  let readsLeft = batches.length + (plan.reuseUnchecked ? 1 : 0);
  const batchRead = () => {
    if (--readsLeft === 0) opts.onReadsDone?.();
  };
  // Checked once every slot is busy (or every batch started): the first reads are then in flight.
  const checkReuseNow = async () => {
    const more = await checkReuse();
    batches.push(...more);
    readsLeft += more.length;
    batchRead();
  };
  const worker = new BatchWorker(opts, plan, pool, mem, key, proof, stats, progress, batchRead);
  const freeSlots = Array.from({ length: maxInFlight }, (_, i) => maxInFlight - 1 - i);
  let failure: unknown = null;
  const running = new Set<Promise<void>>();
  const signal = opts.signal;
  try {
    for (let i = 0; ; i++) {
      if (plan.reuseUnchecked && (freeSlots.length === 0 || i === batches.length)) await checkReuseNow();
      const b = batches[i];
      if (!b || failure || signal?.aborted) break;
      while (freeSlots.length === 0) await Promise.race(running);
      if (failure || signal?.aborted) break;
      const slot = freeSlots.pop()!;
      const p: Promise<void> = worker
        .process(b, slot)
        .catch((e: unknown) => {
          failure ??= e;
        })
        .finally(() => {
          running.delete(p);
          freeSlots.push(slot);
        });
      running.add(p);
    }
  } finally {
    await Promise.all(running); // every worker request has been answered: the memory is free
    mem.release();
    proof?.close();
  }
  stats.reuseProof = proof?.stats ?? null;
  if (failure) throw failure;
  signal?.throwIfAborted();
  return stats;
}

class ProgressFeed {
  constructor(
    private readonly total: number,
    private done: number,
    private readonly cb?: (p: Progress) => void,
  ) {
    this.emit();
  }
  add(bytes: number): void {
    this.done += bytes;
    this.emit();
  }
  /** Bytes counted as processed that are to be read after all (reported again by add). */
  reclaim(bytes: number): void {
    this.done -= bytes;
  }
  private emit(): void {
    this.cb?.({ bytesDone: this.done, bytesTotal: this.total });
  }
}

/**
 * What happens to one batch: read it into its slot, skip all-zero chunks (holes never cross to
 * a worker), hash on the pool, claim the new ids, compress and store only the claimed chunks.
 */
class BatchWorker {
  // Compress together with hashing while most chunks turn out new (a full backup; the changed
  // extents the platform reported), hash first and compress only the new ones while most are
  // known (an incremental that re-reads the whole disk). Until 64 chunks were seen the mode
  // decides: the first batches all start before any is done.
  private seenNew = 0;
  private seenKnown = 0;

  constructor(
    private readonly opts: BackupDiskOptions,
    private readonly plan: DiskPlan,
    private readonly pool: ChunkPool,
    private readonly mem: SlotMemory,
    private readonly key: ChunkIdKey,
    private readonly proof: ReuseProof | null,
    private readonly stats: CopyStats,
    private readonly progress: ProgressFeed,
    /** Told after each batch's read returned. */
    private readonly batchRead: () => void,
  ) {}

  private speculate(): boolean {
    if (this.seenNew + this.seenKnown < 64) return !this.plan.hasBase || this.plan.mode === 'changed-extents';
    return this.seenNew > this.seenKnown;
  }

  async process(b: Batch, slot: number): Promise<void> {
    const { length } = b;
    const buf = await this.read(b, slot);
    this.batchRead();
    this.opts.signal?.throwIfAborted();
    const nz = this.nonZeroChunks(buf, b.n, length);
    if (nz.length > 0) await this.storeChunks(b, slot, length, nz);
    this.progress.add(length);
  }

  /** Reads every run of the batch into its slot, all at once. */
  private async read(b: Batch, slot: number): Promise<Buffer> {
    const buf = Buffer.from(this.mem.buf, this.mem.dataOff(slot), b.length);
    const { chunkSize, size } = this.plan;
    let at = 0;
    const reads = b.runs.map((r) => {
      const length = runLength(r, chunkSize, size);
      const done = this.readRun(buf, at, length, r.first * chunkSize);
      at += length;
      return done;
    });
    // All settle before a failure is thrown: the slot is reused once this batch is done.
    const failed = (await Promise.allSettled(reads)).find((x) => x.status === 'rejected');
    if (failed) throw failed.reason;
    this.stats.bytesRead += b.length;
    return buf;
  }

  private async readRun(buf: Buffer, at: number, length: number, pos: number): Promise<void> {
    let got = 0;
    while (got < length) {
      const n = await this.opts.source.read(buf, at + got, length - got, pos + got);
      if (n <= 0) throw new Error(`disk ${this.opts.diskKey}: source ended at byte ${pos + got}, expected ${this.plan.size} bytes`);
      got += n;
    }
  }

  /** Positions (within the batch) of chunks that are not all zero (tens of GB/s on the main thread). */
  private nonZeroChunks(buf: Buffer, n: number, length: number): number[] {
    const cs = this.plan.chunkSize;
    const nz: number[] = [];
    for (let k = 0; k < n; k++) {
      const s = k * cs;
      const e = Math.min(s + cs, length);
      if (ZERO_CHUNK.compare(buf, s, e, 0, e - s) !== 0) nz.push(k);
    }
    return nz;
  }

  private async storeChunks(b: Batch, slot: number, length: number, nz: number[]): Promise<void> {
    const { mem, pool, opts } = this;
    const idsOff = mem.idsOff(slot);
    const metaOff = mem.metaOff(slot);
    const outOff = mem.outOff(slot);
    const common = { data: mem.buf, dataOff: mem.dataOff(slot), length, chunkSize: this.plan.chunkSize, key: this.key, ids: mem.buf, idsOff, out: mem.buf, outOff, meta: mem.buf, metaOff };
    const spec = this.speculate();
    const level = opts.writer.zstdLevel;
    await pool.call(pool.pick(), { op: 'chunks', task: pool.newTask(), ...common, which: Uint32Array.from(nz), hash: true, level: spec ? level : null });
    opts.signal?.throwIfAborted();
    if (!opts.writer.isReady) await opts.writer.ready(); // the first batches are read and hashed while the index loads
    if (this.proof) await this.proof.check(slot, mem.bytes, nz.map((k) => idsOff + k * ID_LEN));
    const claimed = this.claim(b, idsOff, nz); // positions in nz
    if (claimed.length === 0) return;
    let encodedOrder = nz.map((_, j) => j); // which nz positions the output holds, in order
    if (!spec) {
      await pool.call(pool.pick(), { op: 'chunks', task: pool.newTask(), ...common, which: Uint32Array.from(claimed, (j) => nz[j]!), hash: false, level });
      encodedOrder = claimed;
    }
    await this.addEncoded(nz, claimed, encodedOrder, { idsOff, metaOff, outOff, dataOff: mem.dataOff(slot), length });
  }

  /** Records every id of the batch in the new index and claims the new ones; returns their positions in nz. */
  private claim(b: Batch, idsOff: number, nz: number[]): number[] {
    const bytes = this.mem.bytes;
    const claimed: number[] = [];
    const chunkNo = b.runs.length === 1 ? null : chunkNumbers(b);
    for (let j = 0; j < nz.length; j++) {
      const off = idsOff + nz[j]! * ID_LEN;
      this.plan.ids.set(bytes.subarray(off, off + ID_LEN), (chunkNo ? chunkNo[nz[j]!]! : b.runs[0]!.first + nz[j]!) * ID_LEN);
      if (this.opts.writer.claim(bytes, off)) claimed.push(j);
    }
    this.seenNew += claimed.length;
    this.seenKnown += nz.length - claimed.length;
    return claimed;
  }

  /**
   * Hands the claimed chunks to the writer. Compressed chunks lie back to back in the slot's
   * output, in `encodedOrder` (positions in nz); raw ones (flags 0) are stored from the data
   * slot itself. Only the claimed ones are stored.
   */
  private async addEncoded(nz: number[], claimed: number[], encodedOrder: number[], at: { idsOff: number; metaOff: number; outOff: number; dataOff: number; length: number }): Promise<void> {
    const { bytes, words, buf } = this.mem;
    const want = new Set(claimed);
    const items: NewChunk[] = [];
    let off = at.outOff;
    for (const [e, j] of encodedOrder.entries()) {
      const len = words[at.metaOff + e * 2]!;
      const flags = words[at.metaOff + e * 2 + 1]!;
      const k = nz[j]!;
      if (want.has(j)) {
        const rawLength = Math.min(this.plan.chunkSize, at.length - k * this.plan.chunkSize);
        const from = flags & FLAG_COMPRESSED ? off : at.dataOff + k * this.plan.chunkSize;
        items.push({ id: bytes, idOff: at.idsOff + k * ID_LEN, stored: new Uint8Array(buf, from, len), rawLength, flags });
        this.stats.bytesStored += len;
        this.stats.newChunks++;
      }
      if (flags & FLAG_COMPRESSED) off += len;
    }
    await this.opts.writer.addChunks(items); // resolves once the bytes left the slot
  }
}

// ---- the disk index ----------------------------------------------------------------------------

async function writeIndex(opts: BackupDiskOptions, plan: DiskPlan, stats: CopyStats): Promise<BackupDiskSummary> {
  const { writer, diskKey, source } = opts;
  let holes = 0;
  for (let i = 0; i < plan.count; i++) {
    if (isZeroId(plan.ids, i * ID_LEN)) holes++;
  }
  const disk = await writer.writeDiskIndex(
    {
      header: {
        projectId: writer.projectId,
        snapshotId: writer.snapshotId,
        diskKey,
        size: plan.size,
        chunkSize: plan.chunkSize,
        chunkCount: plan.count,
        holes,
        changeToken: source.changeToken ?? null,
        createdAt: Date.now(),
      },
      ids: plan.ids,
    },
    { storedBytes: stats.bytesStored, meta: opts.meta },
  );
  return {
    diskKey,
    mode: plan.mode,
    size: plan.size,
    bytesRead: stats.bytesRead,
    bytesStored: stats.bytesStored,
    newChunks: stats.newChunks,
    reusedChunks: plan.count - holes - stats.newChunks,
    holes,
    reuseProof: stats.reuseProof,
    disk,
  };
}
