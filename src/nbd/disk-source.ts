import type { NbdClient, StatusExtent } from './client.js';
import { dataExtents, dirtyExtents, type Extent } from './extents.js';
import { BASE_ALLOCATION } from './protocol.js';

/**
 * What nbdDiskSource returns: structurally a platform/platform.ts DiskSource (nbd/ may not
 * import platform/; the platform that hands it out is where the fit is type-checked).
 */
export interface DiskSource {
  readonly size: number;
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  allocatedExtents?(): Promise<Extent[]>;
  changedExtentsSince?(base: string): Promise<Extent[] | null>;
  close(): Promise<void>;
}

export interface NbdDiskSourceOptions {
  /**
   * The dirty-bitmap context negotiated on the client and the platform checkpoint it tracks
   * changes since: `changedExtentsSince(checkpoint)` answers from it, any other base gets null.
   */
  dirty?: { checkpoint: string; context: string };
  /** Alignment of the reported extents (e.g. the bitmap granularity); default 1. */
  alignment?: number;
}

/**
 * A DiskSource over an NBD export (a libvirt pull-mode backup or `qemu-nbd`). The export is a
 * point in time, so its block status is fetched once and shared by both extent queries.
 * Closing the source ends the NBD session.
 */
export function nbdDiskSource(client: NbdClient, opts: NbdDiskSourceOptions = {}): DiskSource {
  const size = client.size;
  const contexts = client.info.metaContexts;
  let map: Promise<Map<string, StatusExtent[]>> | null = null;
  const statusOf = async (context: string): Promise<StatusExtent[]> => {
    map ??= client.mapExtents();
    return (await map).get(context) ?? [];
  };
  const source: DiskSource = {
    size,
    async read(buf, offset, length, position) {
      const n = Math.max(0, Math.min(length, size - position));
      if (n > 0) await client.readInto(buf, offset, n, position);
      return n;
    },
    close: () => client.close(),
  };
  const alignment = opts.alignment ?? 1;
  if (contexts.has(BASE_ALLOCATION)) {
    source.allocatedExtents = async () => dataExtents(await statusOf(BASE_ALLOCATION), { alignment, size });
  }
  const dirty = opts.dirty;
  if (dirty && contexts.has(dirty.context)) {
    source.changedExtentsSince = async (base: string): Promise<Extent[] | null> =>
      base === dirty.checkpoint ? dirtyExtents(await statusOf(dirty.context), { alignment, size }) : null;
  }
  return source;
}
