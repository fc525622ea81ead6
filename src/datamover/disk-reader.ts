import { IntegrityError, NotFoundError } from '../lib/errors.js';
import { ChunkCodec, ID_LEN, isZeroId, newChunkHasher, type ChunkHasher } from '../repository/chunk-codec.js';
import type { ChunkIndex } from '../repository/chunk-index.js';
import type { DiskIndex } from '../repository/disk-index.format.js';
import type { Lease } from '../repository/lease.js';
import type { ChunkLocation } from '../repository/pack-index.format.js';
import type { Repository } from '../repository/repository.js';
import { DataDamageError } from '../repository/damage.js';

/** A run of the disk that is all holes (`zero`) or all stored chunks. */
export interface DiskExtent {
  length: number;
  zero: boolean;
}

export interface OpenDiskReaderOptions {
  repo: Repository;
  snapshotId: string;
  diskKey: string;
  /** Decoded chunks kept for re-reads (default 128: 8 MiB at 64 KiB chunks). */
  cacheChunks?: number;
}

/** Largest stored range fetched in one backend read when neighbouring chunks sit back to back. */
const MAX_GROUP_BYTES = 4 << 20;

/**
 * Random access to one disk of a committed snapshot, straight from the repository: offset →
 * chunk through the disk index → location through the project's chunk index → range read of
 * the pack → decode and id check. Holes read as zeros without any I/O. No copy of the disk is
 * made: memory is the chunk index plus a small LRU of decoded chunks. Holds a reader lease until
 * close(), so GC neither moves nor deletes the chunks while the disk is open. A missing or
 * corrupt chunk fails the read with a DataDamageError (never zeros).
 */
export class SnapshotDiskReader {
  private readonly codec = new ChunkCodec();
  private readonly hasher: ChunkHasher;
  private readonly cache = new Map<number, Buffer>();
  private readonly pending = new Map<number, Promise<Buffer>>();
  private closed = false;

  private constructor(
    private readonly repo: Repository,
    private readonly projectId: string,
    readonly snapshotId: string,
    readonly diskKey: string,
    private readonly index: DiskIndex,
    private readonly chunks: ChunkIndex,
    private readonly lease: Lease,
    private readonly cacheChunks: number,
  ) {
    this.hasher = newChunkHasher(repo.projectKey(projectId));
  }

  static async open(o: OpenDiskReaderOptions): Promise<SnapshotDiskReader> {
    const manifest = await o.repo.readManifest(o.snapshotId);
    const disk = manifest.disks.find((d) => d.diskKey === o.diskKey);
    if (!disk) throw new NotFoundError(`Disk ${o.diskKey} is not part of snapshot ${o.snapshotId}`);
    const lease = await o.repo.acquireLease('reader', manifest.projectId, manifest.snapshotId);
    try {
      const index = await o.repo.readDiskIndex(disk.index);
      if (index.header.projectId !== manifest.projectId || index.header.diskKey !== o.diskKey) {
        throw new IntegrityError(`disk index ${disk.index} does not belong to disk ${o.diskKey} of snapshot ${o.snapshotId}`);
      }
      const chunks = await o.repo.loadChunkIndex(manifest.projectId);
      return new SnapshotDiskReader(o.repo, manifest.projectId, o.snapshotId, o.diskKey, index, chunks, lease, o.cacheChunks ?? 128);
    } catch (e) {
      await lease.release().catch(() => undefined);
      throw e;
    }
  }

  get size(): number {
    return this.index.header.size;
  }

  private get chunkSize(): number {
    return this.index.header.chunkSize;
  }

  private isHole(i: number): boolean {
    return isZeroId(this.index.ids, i * ID_LEN);
  }

  private chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }

  /** Bytes [offset, offset + length) of the disk (the range must lie inside it). */
  async read(offset: number, length: number): Promise<Buffer> {
    if (this.closed) throw new Error('disk reader is closed');
    if (offset < 0 || length < 0 || offset + length > this.size) throw new RangeError(`read ${offset}+${length} outside the disk (${this.size} bytes)`);
    const out = Buffer.alloc(length);
    if (length === 0) return out;
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    const wanted: number[] = [];
    for (let i = first; i <= last; i++) if (!this.isHole(i)) wanted.push(i);
    const data = await this.fetch(wanted);
    for (const i of wanted) {
      const chunk = data.get(i)!;
      const from = Math.max(offset, i * cs);
      const to = Math.min(offset + length, i * cs + chunk.length);
      chunk.copy(out, from - offset, from - i * cs, to - i * cs);
    }
    return out;
  }

  /** Runs of holes and data covering [offset, offset + length), rounded out to whole chunks. */
  extents(offset: number, length: number): DiskExtent[] {
    const cs = this.chunkSize;
    const out: DiskExtent[] = [];
    const end = Math.min(this.size, offset + length);
    for (let pos = offset; pos < end; ) {
      const i = Math.floor(pos / cs);
      const n = Math.min(this.size, (i + 1) * cs) - pos;
      const zero = this.isHole(i);
      const prev = out[out.length - 1];
      if (prev && prev.zero === zero) prev.length += n;
      else out.push({ length: n, zero });
      pos += n;
    }
    return out;
  }

  /** Decoded chunks by number: from the cache, from a fetch already under way, or read now. */
  private async fetch(wanted: number[]): Promise<Map<number, Buffer>> {
    const out = new Map<number, Buffer>();
    const waits: Promise<void>[] = [];
    const missing: number[] = [];
    for (const i of wanted) {
      const hit = this.cache.get(i);
      if (hit) {
        this.cache.delete(i); // re-insert: most recently used last
        this.cache.set(i, hit);
        out.set(i, hit);
        continue;
      }
      const p = this.pending.get(i);
      if (p) waits.push(p.then((b) => void out.set(i, b)));
      else missing.push(i);
    }
    for (const group of this.groups(missing)) {
      const g = this.readGroup(group);
      group.forEach((i, k) => {
        const p = g.then((bufs) => bufs[k]!);
        this.pending.set(i, p);
        waits.push(
          p.then(
            (b) => {
              out.set(i, b);
              this.remember(i, b);
            },
            () => undefined,
          ).finally(() => this.pending.delete(i)),
        );
      });
      waits.push(g.then(() => undefined)); // rejects with the group's error
    }
    await Promise.all(waits);
    return out;
  }

  private remember(i: number, b: Buffer): void {
    this.cache.set(i, b);
    while (this.cache.size > this.cacheChunks) this.cache.delete(this.cache.keys().next().value!);
  }

  private location(i: number): ChunkLocation {
    const loc = this.chunks.get(this.index.ids, i * ID_LEN);
    if (!loc) throw this.damage(i, 'is missing from the repository (no intact copy)', null, 'missing');
    return loc;
  }

  /** Consecutive chunk numbers stored back to back in one pack, as one read each. */
  private groups(missing: number[]): number[][] {
    const out: number[][] = [];
    let cur: number[] = [];
    let start: ChunkLocation | null = null;
    let prev: ChunkLocation | null = null;
    for (const i of missing) {
      const loc = this.location(i);
      const joins = prev && start && cur[cur.length - 1] === i - 1 && prev.pack === loc.pack && prev.offset + prev.storedLength === loc.offset && loc.offset + loc.storedLength - start.offset <= MAX_GROUP_BYTES;
      if (!joins) {
        if (cur.length) out.push(cur);
        cur = [];
        start = loc;
      }
      cur.push(i);
      prev = loc;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  private async readGroup(group: number[]): Promise<Buffer[]> {
    const locs = group.map((i) => this.location(i));
    const first = locs[0]!;
    const last = locs[locs.length - 1]!;
    let stored: Buffer;
    try {
      stored = await this.repo.readStored(this.projectId, { ...first, storedLength: last.offset + last.storedLength - first.offset });
    } catch (e) {
      if (e instanceof NotFoundError || e instanceof IntegrityError) throw this.damage(group[0]!, `cannot be read: ${e.message}`, first.pack, 'missing');
      throw e;
    }
    return group.map((i, k) => {
      const loc = locs[k]!;
      const raw = Buffer.alloc(this.chunkLength(i));
      if (loc.rawLength !== raw.length) throw this.damage(i, `has a wrong length (${loc.rawLength} bytes for ${raw.length})`, loc.pack, 'corrupt');
      const id = this.index.ids.subarray(i * ID_LEN, i * ID_LEN + ID_LEN);
      const piece = stored.subarray(loc.offset - first.offset, loc.offset - first.offset + loc.storedLength);
      const err = this.codec.decodeVerify(piece, loc.flags, raw, this.hasher, id);
      if (err) throw this.damage(i, `is corrupt: ${err}`, loc.pack, 'corrupt');
      return raw;
    });
  }

  private damage(i: number, why: string, pack: string | null, kind: 'missing' | 'corrupt'): DataDamageError {
    const chunk = this.index.ids.subarray(i * ID_LEN, i * ID_LEN + ID_LEN).toString('hex');
    return new DataDamageError(`Reading disk ${this.diskKey} of snapshot ${this.snapshotId} failed: chunk ${chunk} at offset ${i * this.chunkSize} ${why}`, {
      projectId: this.projectId,
      chunk,
      pack,
      kind,
    });
  }

  /** Releases the reader lease and the cache. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await this.lease.release().catch(() => undefined);
  }
}
