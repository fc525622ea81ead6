import { chmod, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { DiskSink } from '../platform.js';
import { EarlyWriteback } from '../../lib/early-writeback.js';
import { AppError, isErrno } from '../../lib/errors.js';
import { openDirect } from '../../lib/direct-io.js';
import { goesDirect } from './direct-io.js';
import { fsyncDir, tempPathBeside } from './atomic-file.js';

/** Start a background fdatasync after this many bytes written buffered (overlaps writeback with decoding). */
const FLUSH_EVERY = 128 * 1024 * 1024;

/**
 * The temp file a disk sink writes (FileDiskSink: a raw image; Qcow2DiskSink: a qcow2 image):
 * runs of 256 KiB and more, aligned to 4 KiB in page-aligned memory (the restore's slots:
 * `alignedSharedMemory`), go through a second descriptor opened with O_DIRECT (direct-io.ts:
 * no page-cache copy); the rest, and everything on a filesystem without O_DIRECT, is written
 * buffered, with an early background fdatasync every 128 MiB. Both descriptors reach the same
 * inode, whose fsync in sync() makes all of it durable.
 *
 * Contract: create() makes the file exclusively (mode 0600, or `mode`) with length `size`;
 * writes may run concurrently on distinct ranges; sync() before close() on commit; discard()
 * (never under a running write's caller) closes and removes the file.
 */
export class ImageFile {
  /** Bytes written through the O_DIRECT descriptor (the rest went through the page cache). */
  directBytes = 0;
  /** Dropped from use (not closed: writes may be in flight on it) after a write it refused. */
  private directUsable: boolean;
  private readonly writeback: EarlyWriteback;

  private constructor(
    private readonly fh: FileHandle,
    private readonly direct: FileHandle | null,
    readonly path: string,
  ) {
    this.writeback = new EarlyWriteback(fh, FLUSH_EVERY);
    this.directUsable = direct !== null;
  }

  static async create(file: string, size: number, mode?: number): Promise<ImageFile> {
    const fh = await open(file, 'wx', 0o600);
    let direct: FileHandle | null = null;
    try {
      await fh.truncate(size);
      if (mode !== undefined) await chmod(file, mode & 0o7777);
      direct = await openDirect(file);
    } catch (e) {
      await fh.close().catch(() => {});
      await unlink(file).catch(() => {});
      throw e;
    }
    return new ImageFile(fh, direct, file);
  }

  /** Writes buf[from, to) at file offset `at`. */
  async write(buf: Buffer, from: number, to: number, at: number): Promise<void> {
    const position = at - from; // the file offset buf[0] would have
    let done = from;
    while (done < to) {
      const direct = this.directUsable && goesDirect(buf.byteOffset + done, to - done, position + done);
      const bytesWritten = direct ? await this.writeDirect(buf, done, to - done, position + done) : (await this.fh.write(buf, done, to - done, position + done)).bytesWritten;
      if (bytesWritten === null) continue; // refused: the same bytes go buffered
      if (bytesWritten <= 0) throw new AppError('internal', `short write to ${this.path}`);
      if (direct) this.directBytes += bytesWritten;
      else this.writeback.wrote(bytesWritten);
      done += bytesWritten;
    }
  }

  /** A direct write; null when O_DIRECT refused it (EINVAL: nothing written), after which this file is written buffered. */
  private async writeDirect(buf: Buffer, offset: number, length: number, position: number): Promise<number | null> {
    try {
      return (await this.direct!.write(buf, offset, length, position)).bytesWritten;
    } catch (e) {
      if (!isErrno(e, 'EINVAL')) throw e;
      this.directUsable = false;
      return null;
    }
  }

  /** Everything written is durable (throws the first error an early writeback had). */
  async sync(): Promise<void> {
    await this.writeback.settle();
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.direct?.close().catch(() => {});
    await this.fh.close();
  }

  /** Closes (after any background writeback) and removes the file; never throws. */
  async discard(): Promise<void> {
    await this.writeback.idle();
    await this.close().catch(() => {});
    await unlink(this.path).catch(() => {});
  }
}

export type SinkState = 'open' | 'committing' | 'committed' | 'aborted';

/**
 * A restored disk image written to a temp file beside `target` and renamed into place on
 * commit, so `target` is either untouched (abort, crash) or completely the new image. The
 * subclass says how bytes go into the file (write) and what completes the image before it is
 * made durable (finishImage: qcow2's tables).
 */
export abstract class ImageSink implements DiskSink {
  private state: SinkState = 'open';

  protected constructor(
    protected readonly file: ImageFile,
    readonly size: number,
    readonly target: string,
  ) {}

  /** The temp file beside `target` (`tempPath`, else a fresh name); `fileSize` its length at first. */
  protected static async openTemp(target: string, size: number, opts: { mode?: number; tempPath?: string }, fileSize: number): Promise<ImageFile> {
    if (!Number.isSafeInteger(size) || size < 0) throw new AppError('validation', `Disk size must be a non-negative integer (got ${size})`);
    const tmp = opts.tempPath ?? tempPathBeside(target);
    if (path.dirname(tmp) !== path.dirname(target)) throw new AppError('internal', 'a disk sink temp file must be beside its target (atomic rename)');
    return ImageFile.create(tmp, fileSize, opts.mode);
  }

  get status(): SinkState {
    return this.state;
  }

  get tempPath(): string {
    return this.file.path;
  }

  /** Bytes written through the O_DIRECT descriptor (the rest went through the page cache). */
  get directBytes(): number {
    return this.file.directBytes;
  }

  abstract write(buf: Buffer, position: number): Promise<void>;

  /** Throws unless the sink is open and [position, +length) lies within the disk. */
  protected checkWrite(length: number, position: number): void {
    if (this.state !== 'open') throw new AppError('internal', `write to a ${this.state} disk sink (${path.basename(this.target)})`);
    if (!Number.isSafeInteger(position) || position < 0 || position + length > this.size) {
      throw new AppError('internal', `write of ${length} bytes at ${position} is outside the disk (size ${this.size})`);
    }
  }

  /** What completes the image once every write is done, before it is made durable. */
  protected async finishImage(): Promise<void> {}

  /** finishImage, fsync, rename over the target, fsync the directory. After this the target is the new image. */
  async commit(): Promise<void> {
    if (this.state !== 'open') throw new AppError('internal', `commit of a ${this.state} disk sink (${path.basename(this.target)})`);
    this.state = 'committing';
    try {
      await this.finishImage();
      await this.file.sync();
      await this.file.close();
      await rename(this.file.path, this.target);
      await fsyncDir(path.dirname(this.target));
      this.state = 'committed';
    } catch (e) {
      await this.file.discard();
      this.state = 'aborted';
      throw e;
    }
  }

  /** Removes the temp file; the target is untouched. Idempotent; a no-op after commit. */
  async abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted') return;
    this.state = 'aborted';
    await this.file.discard();
  }
}
