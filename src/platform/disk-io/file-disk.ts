import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { DiskSource, Extent } from '../platform.js';
import { AppError } from '../../lib/errors.js';
import { fileKey } from './atomic-file.js';
import { isDirectRefused, openDirect } from '../../lib/direct-io.js';
import { goesDirect } from './direct-io.js';
import { ImageSink } from './image-file.js';

export type { SinkState } from './image-file.js';
import { fileExtents, fileExtentsSupported } from './sparse-extents.js';
import { cachedShare, pageCacheProbeAvailable } from './page-cache.js';

/**
 * Raw image files as DiskSource / DiskSink.
 *
 * Sources give allocatedExtents() when the sparse-extents helper is built (lseek SEEK_DATA/
 * SEEK_HOLE), so the datamover never reads holes; otherwise it reads everything and its zero
 * detection keeps holes cheap in the repository. No changedExtentsSince(): plain files have no CBT.
 */

/** Opens `file` read-only. The caller maps ENOENT etc. to a message naming the instance. */
export async function openFileDiskSource(file: string): Promise<FileDiskSource> {
  const fh = await open(file, 'r');
  let direct: FileHandle | null = null;
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) throw new AppError('validation', `${file} is not a regular file`);
    // Without the probe every read is buffered; a descriptor that cannot be had only costs speed.
    if (pageCacheProbeAvailable()) direct = await openDirect(file, 'read').catch(() => null);
    const src = new FileDiskSource(fh, Number(st.size), fileKey(st), direct);
    // Offer extents only when the filesystem can tell; absent means "read everything". The
    // list itself is made when asked for, so it describes the file as it is then.
    if (fileExtentsSupported(fh.fd)) src.allocatedExtents = async () => fileExtents(fh.fd, src.size) ?? [{ offset: 0, length: src.size }];
    return src;
  } catch (e) {
    await direct?.close();
    await fh.close();
    throw e;
  }
}

/** A run is read direct when at most this share of its pages is in the page cache. */
const DIRECT_READ_MAX_CACHED = 0.5;

/**
 * Reads: a large aligned run that is mostly not in the page cache goes through a second
 * descriptor opened with O_DIRECT (the contract: lib/direct-io.ts), everything else buffered.
 *
 * Why: a buffered read of data that is not cached allocates a page-cache page for every 4 KiB,
 * copies it, and evicts pages other programs use, for bytes the backup reads once. Measured on
 * the bench VM (16 GiB database-like image, caches dropped before each run, bench/README.md):
 * a read-everything incremental took 10.9-12.1 s and 12.1-14.5 system CPU-s buffered, 5.3-7.4 s
 * and 1.4-1.5 direct; a full 30-40 s and 22-34 against 25.7-26.0 s and 4.5-4.6. Data that is
 * cached is faster to copy than to read from the device again (1 GiB incremental: 0.56 s
 * buffered, 0.69 s all direct), hence the probe.
 * Direct and buffered reads see the same bytes: the kernel writes dirty cached pages of the
 * range back before a direct read.
 */
export class FileDiskSource implements DiskSource {
  private closed = false;
  /** Bytes read through the O_DIRECT descriptor (tests, benches). */
  directBytes = 0;
  allocatedExtents?: () => Promise<Extent[]>;
  /**
   * @param changeToken `${dev}:${ino}:${size}:${mtimeNs}` at open time: a rename-replace changes
   * ino, a write changes mtime (nanoseconds) and usually size. Equal tokens = same content,
   * unless someone rewrote the file and reset its mtime on purpose.
   */
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly changeToken: string,
    private readonly direct: FileHandle | null,
  ) {
    this.directUsable = direct !== null;
  }

  /** False once a direct read was refused (memory not aligned after all): buffered from then on. */
  private directUsable: boolean;

  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    if (this.direct && this.directUsable && this.readsDirect(buf, offset, length, position)) {
      try {
        const { bytesRead } = await this.direct.read(buf, offset, length, position);
        this.directBytes += bytesRead;
        return bytesRead;
      } catch (e) {
        if (!isDirectRefused(e)) throw e;
        this.directUsable = false;
      }
    }
    const { bytesRead } = await this.fh.read(buf, offset, length, position);
    return bytesRead;
  }

  private readsDirect(buf: Buffer, offset: number, length: number, position: number): boolean {
    if (!goesDirect(buf.byteOffset + offset, length, position) || position + length > this.size) return false;
    const share = cachedShare(this.fh.fd, position, length);
    return share !== null && share <= DIRECT_READ_MAX_CACHED;
  }

  /** Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.direct?.close();
    await this.fh.close();
  }
}

/** Sinks skip zero data at this granularity (the usual filesystem block size). */
const BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(BLOCK);
/**
 * Zeros between two runs of data in one write are skipped only from this length on (the
 * engine's chunk size: the granularity at which a backup keeps holes); a shorter zero run is
 * written with the data around it, so a restore's large aligned write stays one direct write.
 * Why: database-like disks hold pages with zero 4 KiB blocks in them; the sweep's db mix (1 GiB)
 * has 2,200 such runs inside 1,967 of its 11,250 chunks (32 MB of zeros), and skipping each one
 * cut the restore's writes in two: 2,050 writes, 155 of the 737 MB buffered (runs under
 * DIRECT_MIN) and all of those copied through the page cache and flushed by the final fsync.
 */
export const MIN_HOLE = 64 * 1024;

/**
 * Sorted, disjoint, coalesced byte ranges [start, end). Remembers where a sink wrote data, so a
 * later all-zero write over such a range is really written instead of skipped.
 */
export class RangeSet {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  /** Index of the first range whose end is >= pos. */
  private firstEndingAtOrAfter(pos: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ends[mid] as number) < pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  overlaps(start: number, end: number): boolean {
    const i = this.firstEndingAtOrAfter(start + 1);
    return i < this.starts.length && (this.starts[i] as number) < end;
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    const i = this.firstEndingAtOrAfter(start);
    let j = i;
    while (j < this.starts.length && (this.starts[j] as number) <= end) j++;
    const s = j > i ? Math.min(start, this.starts[i] as number) : start;
    const e = j > i ? Math.max(end, this.ends[j - 1] as number) : end;
    this.starts.splice(i, j - i, s);
    this.ends.splice(i, j - i, e);
  }

  get count(): number {
    return this.starts.length;
  }
}

/** The temp file of a sink over `target` owned by `owner` (e.g. a restore id): `.<base>.<owner>.tmp`. */
export function tempPathFor(target: string, owner: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${owner}.tmp`);
}

/**
 * Writes a disk image to a temp file beside `target` and renames it into place on commit, so
 * `target` is either untouched (abort, crash) or completely the new image.
 *
 * Sparse by construction: the temp file is created empty and truncated to `size`, so every
 * range never written is a hole. Writes skip 4 KiB blocks that are all zero unless data was
 * written there before (the file is fresh, so a skipped block already reads as zeros), except
 * inside a write between data less than MIN_HOLE apart. Never writes zeros to fill. Large
 * aligned runs go direct (ImageFile).
 */
export class FileDiskSink extends ImageSink {
  private readonly written = new RangeSet();

  /**
   * Creates the temp file (exclusive; by default the name holds a fresh uuid) with length
   * `size`. `mode` (e.g. the original image's permissions for an in-place restore) is applied
   * to it. `tempPath` (from tempPathFor) names it after its owner, so that whoever cleans up
   * after a crash can find it without guessing.
   */
  static async create(target: string, size: number, opts: { mode?: number; tempPath?: string } = {}): Promise<FileDiskSink> {
    return new FileDiskSink(await ImageSink.openTemp(target, size, opts, size), size, target);
  }

  async write(buf: Buffer, position: number): Promise<void> {
    this.checkWrite(buf.length, position);
    for (const [from, to] of this.runsToWrite(buf, position)) await this.writeRun(buf, from, to, position);
  }

  /**
   * The [from, to) ranges of `buf` that must reach the file: every 4 KiB block with data, and
   * zero blocks over data written before (usually there is none: the file is fresh, so a skipped
   * block already reads as zeros), joined across zero gaps shorter than MIN_HOLE.
   */
  private runsToWrite(buf: Buffer, position: number): [number, number][] {
    const runs: [number, number][] = [];
    const rewrite = this.written.overlaps(position, position + buf.length);
    for (let off = 0; off < buf.length; ) {
      // Blocks are aligned to the file, not to the buffer, so holes line up with fs blocks.
      const end = Math.min(buf.length, off + BLOCK - ((position + off) % BLOCK));
      const zero = ZERO_BLOCK.compare(buf, off, end, 0, end - off) === 0;
      if (!zero || (rewrite && this.written.overlaps(position + off, position + end))) {
        const last = runs[runs.length - 1];
        if (last && off - last[1] < MIN_HOLE) last[1] = end;
        else runs.push([off, end]);
      }
      off = end;
    }
    return runs;
  }

  private async writeRun(buf: Buffer, from: number, to: number, position: number): Promise<void> {
    this.written.add(position + from, position + to);
    await this.file.write(buf, from, to, position + from);
  }
}
