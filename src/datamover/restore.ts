import type { DiskSink } from '../platform/platform.js';
import { IntegrityError, NotFoundError, ValidationError } from '../lib/errors.js';
import { ID_LEN, isZeroId } from '../repository/chunk-codec.js';
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
    const index = await repo.readDiskIndex(disk.index);
    const { header, ids } = index;
    if (header.projectId !== manifest.projectId || header.diskKey !== diskKey) {
      throw new IntegrityError(`disk index ${disk.index} does not belong to disk ${diskKey} of snapshot ${opts.snapshotId}`);
    }
    if (sink.size !== header.size) throw new ValidationError(`restore target for disk ${diskKey} has size ${sink.size}, expected ${header.size}`);
    const chunks = await repo.loadChunkIndex(manifest.projectId);
    const projectKey = repo.projectKey(manifest.projectId);
    // Own buffers: cheap to post. `dek`: an encrypted workload's chunks are opened on the workers.
    const key = { hash: projectKey.hash, key: new Uint8Array(projectKey.key), ...(projectKey.dek ? { dek: new Uint8Array(projectKey.dek) } : {}) };
    const pool = opts.pool ?? sharedChunkPool();
    const cs = header.chunkSize;
    const maxRead = opts.readBytes ?? DEFAULT_READ_BYTES;

    const chunkName = (i: number) => ids.subarray(i * ID_LEN, i * ID_LEN + ID_LEN).toString('hex');
    const fail = (i: number, why: string, pack: string | null = null, kind: 'missing' | 'corrupt' = 'missing') =>
      new DataDamageError(`Restore of disk ${diskKey} failed: chunk ${chunkName(i)} at offset ${i * cs} ${why}`, {
        projectId: manifest.projectId,
        chunk: chunkName(i),
        pack,
        kind,
      });
    // A corrupt copy is marked bad, so the next backup uploads the chunk again (self-heal).
    const corrupt = async (i: number, pack: string, why: string) => {
      await repo.markBadCopy(manifest.projectId, chunkName(i), pack, `restore: ${why}`).catch(() => undefined);
      return fail(i, `is corrupt: ${why}`, pack, 'corrupt');
    };

    // Every chunk must have a usable copy before anything is written; the groups (reads) are
    // then planned lazily, so memory does not grow with the disk.
    const { holes, problem } = checkLocations(ids, header.chunkCount, chunks, cs, maxRead);
    if (problem) throw fail(problem.chunk, problem.why);
    const groups = groupsOf(ids, header.chunkCount, chunks, maxRead);

    let bytesDone = 0;
    const total = header.size;
    let bytesWritten = 0;
    let bytesFetched = 0;
    bytesDone = holes * cs; // holes count as done (approximate for a partial last hole)
    opts.onProgress?.({ bytesDone: Math.min(bytesDone, total), bytesTotal: total });

    // Slots: one shared buffer, allocated once per disk (restore-slots.ts): memory = SLOT_MEMORY
    // whatever the disk size, taken from what a backup in this process left idle when it fits.
    const slotBytes = Math.max(cs, maxRead);
    const counts = opts.maxInFlight ? { stored: opts.maxInFlight, raw: opts.maxInFlight } : RestoreSlots.counts(slotBytes, SLOT_MEMORY, header.chunkCount - holes);
    const slots = new RestoreSlots(slotBytes, counts);
    const mem = slots.mem;

    // Owns its stored slot (given back once decoded, or once written when all raw) and its raw slot.
    const processGroup = async (g: Group, storedSlot: number): Promise<void> => {
      const { start, end, items, rawTotal, allRaw } = planGroup(g);
      let stored: number | null = storedSlot;
      let raw: number | null = null;
      try {
        // Every group's bytes start at its slot's start (page-aligned): an all-raw group is
        // written to the disk from there, with O_DIRECT only from page-aligned memory.
        const storedOff = slots.offset(storedSlot);
        try {
          await repo.readStoredInto(manifest.projectId, { ...g.locs[0]!, storedLength: end - start }, new Uint8Array(mem, storedOff, end - start));
        } catch (e) {
          if (e instanceof NotFoundError || e instanceof IntegrityError) throw fail(g.first, `cannot be read: ${e.message}`, g.locs[0]!.pack);
          throw e;
        }
        bytesFetched += end - start;
        signal?.throwIfAborted();
        // The chunks are consecutive on disk: one positional write.
        const expected = Math.min(total, (g.first + g.locs.length) * cs) - g.first * cs;
        if (rawTotal !== expected) throw fail(g.first, `has a wrong length (${rawTotal} bytes for ${expected})`);
        // An all-raw group is verified in place and written from its stored slot.
        if (!allRaw) raw = await slots.takeRaw();
        const outOff = raw === null ? slots.offset(storedSlot) : slots.offset(raw);
        // A copy: posting a view would clone the whole disk index buffer.
        const gIds = new Uint8Array(ids.subarray(g.first * ID_LEN, (g.first + g.locs.length) * ID_LEN));
        const r = await pool.call<Extract<WorkerResponse, { op: 'decode' }>>(pool.pick(), { op: 'decode', task: pool.newTask(), stored: mem, storedOff, items, ids: gIds, key, out: mem, outOff });
        if (r.error) throw await corrupt(g.first + r.error[0], g.locs[r.error[0]]!.pack, r.error[1]);
        if (raw !== null) {
          slots.releaseStored(storedSlot); // decoded: the worker is done with the pack bytes
          stored = null;
        }
        signal?.throwIfAborted();
        await sink.write(Buffer.from(mem, outOff, rawTotal), g.first * cs);
        bytesWritten += rawTotal;
        bytesDone += rawTotal;
        opts.onProgress?.({ bytesDone: Math.min(bytesDone, total), bytesTotal: total });
      } finally {
        if (stored !== null) slots.releaseStored(stored);
        if (raw !== null) slots.releaseRaw(raw);
      }
    };

    let failure: unknown = null;
    const running = new Set<Promise<void>>();
    for (const g of groups) {
      if (failure || signal?.aborted) break;
      const slot = await slots.takeStored(); // a failing group gives its slot back too
      if (failure || signal?.aborted) {
        slots.releaseStored(slot);
        break;
      }
      const p: Promise<void> = processGroup(g, slot)
        .catch((e) => {
          failure ??= e;
        })
        .finally(() => running.delete(p));
      running.add(p);
    }
    await Promise.all(running); // every worker request has been answered: the memory is free
    slots.close();
    if (failure) throw failure;
    signal?.throwIfAborted();
    await sink.commit();
    opts.onProgress?.({ bytesDone: total, bytesTotal: total });
    return { diskKey, size: total, bytesWritten, bytesFetched, chunks: header.chunkCount - holes, holes };
  } catch (e) {
    await sink.abort().catch(() => {});
    if (signal?.aborted) {
      const r: unknown = signal.reason;
      if (r instanceof Error) throw r;
      const err = new Error('The operation was aborted');
      err.name = 'AbortError';
      throw err;
    }
    throw e;
  } finally {
    await lease?.release().catch(() => {});
  }
}
