import type { DiskSink } from '../platform/platform.js';
import { IntegrityError, NotFoundError, ValidationError } from '../lib/errors.js';
import { ID_LEN, isZeroId, type ChunkIdKey } from '../repository/chunk-codec.js';
import type { ChunkIndex } from '../repository/chunk-index.js';
import type { ChunkLocation } from '../repository/pack-index.format.js';
import type { Repository } from '../repository/repository.js';
import { DataDamageError } from '../repository/damage.js';
import type { Progress } from './backup.js';
import { sharedChunkPool, type ChunkPool } from './chunk-pool.js';
import { RestoreSlots } from './restore-slots.js';
import type { WorkerResponse } from './worker-protocol.js';

export interface RestoreDiskOptions {
  repo: Repository;
  snapshotId: string;
  diskKey: string;
  sink: DiskSink;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  pool?: ChunkPool;
  /**
   * Groups being read or decoded at once, and compressed groups being decoded or written at
   * once (default: as many slots of max(chunk size, readBytes) as SLOT_MEMORY holds, half each:
   * 10 and 10 with 64 KiB chunks; restore-slots.ts): restore speed comes from parallel fetches
   * (PBS lesson), and with more groups queued the two decode workers never wait on a read or a
   * write. Memory: SLOT_MEMORY whatever the disk size.
   */
  maxInFlight?: number;
  /**
   * Largest single read from a pack (default 2 MiB). Groups break at holes and at pack ends,
   * so on the bench's disks they average under 1 MiB of raw data: in the same memory (then a
   * stored and a raw slot per group in two 32 MiB buffers), 16 slots of 2 MiB kept more reads,
   * decodes and writes going than 8 of 4 MiB. 1 GiB restores (the
   * sweep's mixes, engine-step, 4 interleaved pairs, 3 Dec): text median 1.60 → 1.48 s and db
   * 1.62 → 1.48 s (16 × 2 MiB faster in every pair), random 1.59 → 1.61 s (its groups are the
   * large ones); 32 × 1 MiB and 12 × 4 MiB were in between.
   */
  readBytes?: number;
}

export interface RestoreDiskSummary {
  diskKey: string;
  size: number;
  bytesWritten: number;
  bytesFetched: number;
  chunks: number;
  holes: number;
}

/** Bytes of a restore's slots (stored bytes in, raw bytes out): what a backup's batch slots take (5 × (4 + 4) MiB, backup.ts). */
const SLOT_MEMORY = 40 << 20;
const DEFAULT_READ_BYTES = 2 << 20;

interface Group {
  first: number; // chunk number
  locs: ChunkLocation[];
}

/** Holes of the disk, and the first chunk the index cannot serve (missing, or an impossible location). */
function checkLocations(ids: Buffer, count: number, chunks: ChunkIndex, cs: number, maxRead: number): { holes: number; problem: { chunk: number; why: string } | null } {
  let holes = 0;
  for (let i = 0; i < count; i++) {
    const off = i * ID_LEN;
    if (isZeroId(ids, off)) {
      holes++;
      continue;
    }
    const loc = chunks.get(ids, off);
    if (!loc) return { holes, problem: { chunk: i, why: 'is missing from the repository (no intact copy)' } };
    if (loc.rawLength > cs || loc.storedLength > Math.max(cs, maxRead)) return { holes, problem: { chunk: i, why: `has a bad location (${loc.storedLength}/${loc.rawLength} bytes)` } };
  }
  return { holes, problem: null };
}

/**
 * Consecutive chunks stored back to back in one pack, grouped into one read of at most maxRead
 * stored bytes that decodes to at most maxRead raw bytes; yielded one group at a time (after
 * checkLocations: every non-hole chunk has a location).
 */
function* groupsOf(ids: Buffer, count: number, chunks: ChunkIndex, maxRead: number): Generator<Group> {
  let cur: Group | null = null;
  let curRaw = 0;
  for (let i = 0; i < count; i++) {
    const off = i * ID_LEN;
    if (isZeroId(ids, off)) {
      if (cur) yield cur;
      cur = null;
      continue;
    }
    const loc = chunks.get(ids, off)!;
    const last = cur?.locs[cur.locs.length - 1];
    const contiguous =
      cur && last && last.pack === loc.pack && last.offset + last.storedLength === loc.offset && loc.offset + loc.storedLength - cur.locs[0]!.offset <= maxRead && curRaw + loc.rawLength <= maxRead;
    if (cur && contiguous) {
      cur.locs.push(loc);
      curRaw += loc.rawLength;
    } else {
      if (cur) yield cur;
      cur = { first: i, locs: [loc] };
      curRaw = loc.rawLength;
    }
  }
  if (cur) yield cur;
}

/**
 * A group's read span in its pack and its decode request items (offset in the span, stored
 * length, raw length, flags per chunk). All raw: every chunk stored as the disk's bytes.
 */
function planGroup(g: Group): { start: number; end: number; items: Uint32Array; rawTotal: number; allRaw: boolean } {
  const start = g.locs[0]!.offset;
  const last = g.locs[g.locs.length - 1]!;
  const items = new Uint32Array(g.locs.length * 4);
  let rawTotal = 0;
  let allRaw = true;
  for (let k = 0; k < g.locs.length; k++) {
    const l = g.locs[k]!;
    items[k * 4] = l.offset - start;
    items[k * 4 + 1] = l.storedLength;
    items[k * 4 + 2] = l.rawLength;
    items[k * 4 + 3] = l.flags;
    rawTotal += l.rawLength;
    if (l.flags !== 0) allRaw = false;
  }
  return { start, end: last.offset + last.storedLength, items, rawTotal, allRaw };
}

/**
 * Restores one disk of a committed snapshot into `sink`: disk index → chunk locations →
 * parallel range reads → decode + verify on workers → positional writes. Holes are never
 * written. A missing or corrupt chunk fails the disk with an IntegrityError naming the disk and
 * the chunk id (never zero-filled); the sink is committed only on success and aborted otherwise.
 * Holds a reader lease for the duration, so GC does not move or delete chunks under it.
 */
export async function restoreDisk(opts: RestoreDiskOptions): Promise<RestoreDiskSummary> {
  const { repo, sink, diskKey, signal } = opts;
  let lease: Awaited<ReturnType<Repository['acquireLease']>> | null = null;
  try {
    const manifest = await repo.readManifest(opts.snapshotId);
    const disk = manifest.disks.find((d) => d.diskKey === diskKey);
    if (!disk) throw new NotFoundError(`Disk ${diskKey} is not part of snapshot ${opts.snapshotId}`);
    lease = await repo.acquireLease('reader', manifest.projectId, manifest.snapshotId);
    const { header, ids } = await repo.readDiskIndex(disk.index);
    if (header.projectId !== manifest.projectId || header.diskKey !== diskKey) {
      throw new IntegrityError(`disk index ${disk.index} does not belong to disk ${diskKey} of snapshot ${opts.snapshotId}`);
    }
    if (sink.size !== header.size) throw new ValidationError(`restore target for disk ${diskKey} has size ${sink.size}, expected ${header.size}`);
    const chunks = await repo.loadChunkIndex(manifest.projectId);
    const run = new DiskRestore(opts, manifest.projectId, { ids, chunkCount: header.chunkCount, chunkSize: header.chunkSize, size: header.size });
    const summary = await run.copy(chunks);
    signal?.throwIfAborted();
    await sink.commit();
    opts.onProgress?.({ bytesDone: header.size, bytesTotal: header.size });
    return summary;
  } catch (e) {
    await sink.abort().catch(() => {});
    if (signal?.aborted) throw abortError(signal);
    throw e;
  } finally {
    await lease?.release().catch(() => {});
  }
}

/** The error an aborted restore ends with: the signal's reason when it is an Error. */
function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const err = new Error('The operation was aborted');
  err.name = 'AbortError';
  return err;
}

/** The disk index's part a restore reads. */
interface DiskLayout {
  ids: Buffer;
  chunkCount: number;
  chunkSize: number;
  size: number;
}

/**
 * One disk's copy from the repository into its sink (the sink is neither committed nor aborted
 * here): the groups are read, decoded and written with at most the slots' count in flight.
 */
class DiskRestore {
  private readonly pool: ChunkPool;
  private readonly maxRead: number;
  /** Own buffers: cheap to post. `dek`: an encrypted workload's chunks are opened on the workers. */
  private readonly key: ChunkIdKey;
  private slots: RestoreSlots | null = null;
  private bytesDone = 0;
  private bytesWritten = 0;
  private bytesFetched = 0;

  constructor(
    private readonly opts: RestoreDiskOptions,
    private readonly projectId: string,
    private readonly disk: DiskLayout,
  ) {
    const projectKey = opts.repo.projectKey(projectId);
    this.key = { hash: projectKey.hash, key: new Uint8Array(projectKey.key), ...(projectKey.dek ? { dek: new Uint8Array(projectKey.dek) } : {}) };
    this.pool = opts.pool ?? sharedChunkPool();
    this.maxRead = opts.readBytes ?? DEFAULT_READ_BYTES;
  }

  /**
   * Every chunk must have a usable copy before anything is written; the groups (reads) are then
   * planned lazily, so memory does not grow with the disk.
   */
  async copy(chunks: ChunkIndex): Promise<RestoreDiskSummary> {
    const { ids, chunkCount, chunkSize: cs, size } = this.disk;
    const { holes, problem } = checkLocations(ids, chunkCount, chunks, cs, this.maxRead);
    if (problem) throw this.fail(problem.chunk, problem.why);
    this.bytesDone = holes * cs; // holes count as done (approximate for a partial last hole)
    this.progress();
    // Slots: one shared buffer, allocated once per disk (restore-slots.ts): memory = SLOT_MEMORY
    // whatever the disk size, taken from what a backup in this process left idle when it fits.
    const slotBytes = Math.max(cs, this.maxRead);
    const inFlight = this.opts.maxInFlight;
    const slots = new RestoreSlots(slotBytes, inFlight ? { stored: inFlight, raw: inFlight } : RestoreSlots.counts(slotBytes, SLOT_MEMORY, chunkCount - holes));
    this.slots = slots;
    try {
      await this.runGroups(groupsOf(ids, chunkCount, chunks, this.maxRead), slots);
    } finally {
      slots.close(); // every worker request has been answered: the memory is free
    }
    return { diskKey: this.opts.diskKey, size, bytesWritten: this.bytesWritten, bytesFetched: this.bytesFetched, chunks: chunkCount - holes, holes };
  }

  /** Starts each group once a stored slot is free; stops starting at the first failure or abort, and waits for the started ones. */
  private async runGroups(groups: Iterable<Group>, slots: RestoreSlots): Promise<void> {
    const signal = this.opts.signal;
    let failure: unknown = null;
    const running = new Set<Promise<void>>();
    for (const g of groups) {
      if (failure || signal?.aborted) break;
      const slot = await slots.takeStored(); // a failing group gives its slot back too
      if (failure || signal?.aborted) {
        slots.releaseStored(slot);
        break;
      }
      const p: Promise<void> = this.processGroup(g, slot)
        .catch((e) => {
          failure ??= e;
        })
        .finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.all(running);
    if (failure) throw failure;
  }

  /** Owns its stored slot (given back once decoded, or once written when all raw) and its raw slot. */
  private async processGroup(g: Group, storedSlot: number): Promise<void> {
    const slots = this.slots!;
    const { signal, sink } = this.opts;
    const { start, end, items, rawTotal, allRaw } = planGroup(g);
    let stored: number | null = storedSlot;
    let raw: number | null = null;
    try {
      // Every group's bytes start at its slot's start (page-aligned): an all-raw group is
      // written to the disk from there, with O_DIRECT only from page-aligned memory.
      const storedOff = slots.offset(storedSlot);
      await this.readGroup(g, new Uint8Array(slots.mem, storedOff, end - start));
      this.bytesFetched += end - start;
      signal?.throwIfAborted();
      // The chunks are consecutive on disk: one positional write.
      const { chunkSize: cs, size } = this.disk;
      const expected = Math.min(size, (g.first + g.locs.length) * cs) - g.first * cs;
      if (rawTotal !== expected) throw this.fail(g.first, `has a wrong length (${rawTotal} bytes for ${expected})`);
      // An all-raw group is verified in place and written from its stored slot.
      if (!allRaw) raw = await slots.takeRaw();
      const outOff = slots.offset(raw ?? storedSlot);
      await this.decodeGroup(g, storedOff, items, outOff);
      if (raw !== null) {
        slots.releaseStored(storedSlot); // decoded: the worker is done with the pack bytes
        stored = null;
      }
      signal?.throwIfAborted();
      await sink.write(Buffer.from(slots.mem, outOff, rawTotal), g.first * cs);
      this.bytesWritten += rawTotal;
      this.bytesDone += rawTotal;
      this.progress();
    } finally {
      if (stored !== null) slots.releaseStored(stored);
      if (raw !== null) slots.releaseRaw(raw);
    }
  }

  /** The group's stored bytes, in one range read from its pack. */
  private async readGroup(g: Group, into: Uint8Array): Promise<void> {
    try {
      await this.opts.repo.readStoredInto(this.projectId, { ...g.locs[0]!, storedLength: into.length }, into);
    } catch (e) {
      if (e instanceof NotFoundError || e instanceof IntegrityError) throw this.fail(g.first, `cannot be read: ${e.message}`, g.locs[0]!.pack);
      throw e;
    }
  }

  /** Decodes and verifies the group's chunks on a worker, from its stored bytes into `outOff`. */
  private async decodeGroup(g: Group, storedOff: number, items: Uint32Array, outOff: number): Promise<void> {
    const mem = this.slots!.mem;
    // A copy: posting a view would clone the whole disk index buffer.
    const gIds = new Uint8Array(this.disk.ids.subarray(g.first * ID_LEN, (g.first + g.locs.length) * ID_LEN));
    const pool = this.pool;
    const r = await pool.call<Extract<WorkerResponse, { op: 'decode' }>>(pool.pick(), { op: 'decode', task: pool.newTask(), stored: mem, storedOff, items, ids: gIds, key: this.key, out: mem, outOff });
    if (r.error) throw await this.corrupt(g.first + r.error[0], g.locs[r.error[0]]!.pack, r.error[1]);
  }

  private progress(): void {
    const total = this.disk.size;
    this.opts.onProgress?.({ bytesDone: Math.min(this.bytesDone, total), bytesTotal: total });
  }

  private chunkName(i: number): string {
    return this.disk.ids.subarray(i * ID_LEN, i * ID_LEN + ID_LEN).toString('hex');
  }

  private fail(i: number, why: string, pack: string | null = null, kind: 'missing' | 'corrupt' = 'missing'): DataDamageError {
    const chunk = this.chunkName(i);
    return new DataDamageError(`Restore of disk ${this.opts.diskKey} failed: chunk ${chunk} at offset ${i * this.disk.chunkSize} ${why}`, { projectId: this.projectId, chunk, pack, kind });
  }

  /** A corrupt copy is marked bad, so the next backup uploads the chunk again (self-heal). */
  private async corrupt(i: number, pack: string, why: string): Promise<DataDamageError> {
    await this.opts.repo.markBadCopy(this.projectId, this.chunkName(i), pack, `restore: ${why}`).catch(() => undefined);
    return this.fail(i, `is corrupt: ${why}`, pack, 'corrupt');
  }
}
