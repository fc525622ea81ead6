import type { Logger } from '../lib/logger.js';
import { SnapshotDiskReader } from '../datamover/disk-reader.js';
import type { Repository } from '../repository/repository.js';
import { NbdServer } from '../nbd/server.js';

export interface DiskExportOptions {
  repo: Repository;
  snapshotId: string;
  diskKey: string;
  /** Unix socket to serve on; its directory must be private to the service (0700). */
  socketPath: string;
  logger?: Logger;
}

/**
 * One snapshot disk exported read-only over NBD straight from the repository (no copy): the
 * NBD server reads through a SnapshotDiskReader, holes answer as zeros and are reported as
 * `base:allocation` holes. close() stops the server and releases the reader lease.
 */
export class DiskExport {
  private constructor(
    readonly server: NbdServer,
    private readonly reader: SnapshotDiskReader,
  ) {}

  static async start(o: DiskExportOptions): Promise<DiskExport> {
    const reader = await SnapshotDiskReader.open({ repo: o.repo, snapshotId: o.snapshotId, diskKey: o.diskKey });
    try {
      const server = await NbdServer.listen({
        socketPath: o.socketPath,
        logger: o.logger,
        source: {
          size: reader.size,
          read: (offset, length) => reader.read(offset, length),
          extents: async (offset, length) => reader.extents(offset, length),
        },
      });
      return new DiskExport(server, reader);
    } catch (e) {
      await reader.close();
      throw e;
    }
  }

  get socketPath(): string {
    return this.server.socketPath;
  }

  get size(): number {
    return this.reader.size;
  }

  /** Reads bytes of the disk directly (partition table and superblock probes), clipped to its size. */
  read(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(this.reader.size, offset + length);
    return end > offset ? this.reader.read(offset, end - offset) : Promise.resolve(Buffer.alloc(0));
  }

  /** The export as an NBD URI (qemu, libnbd and libguestfs accept it). */
  get uri(): string {
    return `nbd+unix:///?socket=${this.socketPath}`;
  }

  async close(): Promise<void> {
    await this.server.close();
    await this.reader.close();
  }
}
