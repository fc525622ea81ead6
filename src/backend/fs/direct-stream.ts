import type { FileHandle } from 'node:fs/promises';
import { alignedSharedMemory } from '../../lib/aligned-memory.js';
import { copyBytes } from '../../lib/copy-bytes.js';
import { isDirectRefused, openDirect } from '../../lib/direct-io.js';

/**
 * The bytes of a streamed object (a pack) written to its temp file with O_DIRECT, in whole
 * stages of STAGE bytes from page-aligned memory; the last partial stage (the tail) goes
 * through the object's ordinary descriptor. See lib/direct-io.ts for why and for the contract.
 *
 * Why for packs: Lifeboat does not read a pack back while it writes the snapshot, and a
 * restore usually comes long after the page cache forgot it, so copying every pack byte into
 * fresh cache pages buys nothing. On the bench VM (free page reporting) that copy was a fifth of
 * a full backup's CPU: `copy_folio_from_iter_atomic` 21 % of the samples of a 1 GiB text-mix
 * full, 1.49 system CPU-s of 4.2.
 *
 * Flow: `write` copies the caller's parts into the current stage (the caller may reuse them
 * once it resolves); a full stage is written at its file position while the next one fills
 * (two stages, at most one write in flight). `finish` waits for that write, writes the tail
 * buffered at its position and closes the direct descriptor; the caller then fsyncs its own
 * descriptor, which makes both kinds of write durable. A direct write refused with EINVAL
 * (nothing written) is redone buffered, and the rest of the object goes buffered.
 */
export const STAGE = 1024 * 1024;

/** Idle stage pairs, reused by the next pack so their pages are touched once per process. */
const idle: SharedArrayBuffer[] = [];
const KEEP_IDLE = 2;

export class DirectStream {
  private mem: SharedArrayBuffer | null = null;
  /** Opened at the first full stage; null once refused or closed. */
  private direct: FileHandle | null | 'not yet' = 'not yet';
  private stage = 0;
  private fill = 0;
  /** File position of the current stage. */
  private pos = 0;
  private inFlight: Promise<void> | null = null;
  private failure: unknown = null;
  private released = false;

  /**
   * `file` is already open as `buffered` and empty. Nothing is allocated or opened before the
   * first write, and the direct descriptor only when a first stage fills: an object smaller
   * than a stage costs one copy and no O_DIRECT open.
   */
  constructor(
    private readonly file: string,
    private readonly buffered: FileHandle,
    /** How the direct descriptor is opened (tests pass a refusing one). */
    private readonly opener: (file: string) => Promise<FileHandle | null> = openDirect,
  ) {}

  async write(parts: readonly Uint8Array[]): Promise<void> {
    this.throwIfFailed();
    this.mem ??= idle.pop() ?? alignedSharedMemory(2 * STAGE);
    for (const p of parts) {
      let off = 0;
      while (off < p.length) {
        const n = Math.min(p.length - off, STAGE - this.fill);
        copyBytes(new Uint8Array(this.mem!), this.stage * STAGE + this.fill, p.subarray(off, off + n));
        this.fill += n;
        off += n;
        if (this.fill === STAGE) await this.flushStage();
      }
    }
  }

  /** Waits for the write in flight, then writes the tail buffered. The caller fsyncs after. */
  async finish(): Promise<void> {
    await this.settle();
    this.throwIfFailed();
    if (this.fill > 0) await writeFully(this.buffered, this.view(this.stage, this.fill), this.pos);
    await this.close();
  }

  /** Waits for the write in flight and closes the direct descriptor; nothing is thrown. */
  async abandon(): Promise<void> {
    await this.settle();
    await this.close().catch(() => undefined);
  }

  private async flushStage(): Promise<void> {
    await this.settle();
    this.throwIfFailed();
    const stage = this.stage;
    const pos = this.pos;
    this.inFlight = this.writeStage(stage, pos).catch((e: unknown) => {
      this.failure ??= e;
    });
    this.stage = 1 - stage;
    this.fill = 0;
    this.pos += STAGE;
  }

  private async writeStage(stage: number, pos: number): Promise<void> {
    const buf = this.view(stage, STAGE);
    if (this.direct === 'not yet') this.direct = await this.opener(this.file);
    if (this.direct) {
      try {
        await writeFully(this.direct, buf, pos);
        return;
      } catch (e) {
        if (!isDirectRefused(e)) throw e;
        const d = this.direct;
        this.direct = null; // refused: nothing was written; this stage and the rest go buffered
        await d.close().catch(() => undefined);
      }
    }
    await writeFully(this.buffered, buf, pos);
  }

  private view(stage: number, length: number): Buffer {
    return Buffer.from(this.mem!, stage * STAGE, length);
  }

  private async settle(): Promise<void> {
    const w = this.inFlight;
    this.inFlight = null;
    await w;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.mem && idle.length < KEEP_IDLE) idle.push(this.mem);
    const d = this.direct;
    this.direct = null;
    if (d && d !== 'not yet') await d.close();
  }
}

/** Writes all of `buf` at `pos` (a write may be short). */
async function writeFully(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos + done);
    if (bytesWritten === 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}
