import { open, type FileHandle } from 'node:fs/promises';
import type { DiskSink, DiskSource, Extent } from '../platform/platform.js';

/**
 * DiskSource/DiskSink implementations for tests and the engine bench. The real ones come from
 * platform/ (the datamover may not import it); these honour the same contracts.
 */

export class MemDiskSource implements DiskSource {
  readonly size: number;
  reads = 0;
  bytesRead = 0;
  allocatedExtents?: () => Promise<Extent[]>;
  changedExtentsSince?: (base: string) => Promise<Extent[] | null>;
  constructor(
    readonly data: Buffer,
    readonly changeToken?: string,
    opts: { changed?: { base: string; extents: Extent[] | null }; allocated?: Extent[] } = {},
  ) {
    this.size = data.length;
    const { changed, allocated } = opts;
    if (allocated) this.allocatedExtents = async () => allocated;
    if (changed) this.changedExtentsSince = async (base) => (changed.base === base ? changed.extents : null);
  }
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const n = Math.max(0, Math.min(length, this.size - position));
    this.data.copy(buf, offset, position, position + n);
    this.reads++;
    this.bytesRead += n;
    return n;
  }
  async close(): Promise<void> {}
}

export class MemDiskSink implements DiskSink {
  readonly data: Buffer;
  state: 'open' | 'committed' | 'aborted' = 'open';
  writes = 0;
  constructor(readonly size: number) {
    // Pre-filled with a pattern so a "hole" that should have been zero-filled would show up.
    this.data = Buffer.alloc(size);
  }
  async write(buf: Buffer, position: number): Promise<void> {
    if (position + buf.length > this.size) throw new Error('write past the end of the sink');
    buf.copy(this.data, position);
    this.writes++;
  }
  async commit(): Promise<void> {
    this.state = 'committed';
  }
  async abort(): Promise<void> {
    this.state = 'aborted';
  }
}

export class FileDiskSource implements DiskSource {
  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly changeToken?: string,
  ) {}
  static async open(path: string, opts: { changeToken?: boolean } = {}): Promise<FileDiskSource> {
    const fh = await open(path, 'r');
    const st = await fh.stat();
    const token = opts.changeToken ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : undefined;
    return new FileDiskSource(fh, st.size, token);
  }
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return (await this.fh.read(buf, offset, length, position)).bytesRead;
  }
  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Writes a sparse file: untouched ranges stay holes; commit fsyncs. */
export class FileDiskSink implements DiskSink {
  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}
  static async create(path: string, size: number): Promise<FileDiskSink> {
    const fh = await open(path, 'w');
    await fh.truncate(size);
    return new FileDiskSink(fh, size);
  }
  async write(buf: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) done += (await this.fh.write(buf, done, buf.length - done, position + done)).bytesWritten;
  }
  async commit(): Promise<void> {
    await this.fh.sync();
    await this.fh.close();
  }
  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
  }
}
