/**
 * The seam between platforms (where disks live) and the datamover (how they are copied).
 * Platforms hand these out; the datamover consumes them and never learns where a disk lives.
 * Shapes are chosen to fit libvirt's backup API (NBD export + dirty-bitmap extents) and
 * OpenStack (Cinder/Glance through the compute host), not only local image files.
 */

/** A byte range [offset, offset + length) of a disk. */
export interface Extent {
  offset: number;
  length: number;
}

export interface DiskSource {
  /** Virtual size in bytes; reads past it are not made. */
  readonly size: number;
  /**
   * An opaque token that changes whenever the content may have changed (for a local file:
   * device, inode, size and mtime). Equal tokens across two snapshots mean "unchanged, no read
   * needed". Absent when the platform cannot promise that.
   */
  readonly changeToken?: string;
  /** Reads up to `length` bytes at `position` into `buf` at `offset`; returns bytes read. */
  read(buf: Buffer, offset: number, length: number, position: number): Promise<number>;
  /** Allocated (possibly non-zero) extents, sorted; absent = everything may hold data. */
  allocatedExtents?(): Promise<Extent[]>;
  /**
   * Extents changed since the platform checkpoint named `base` (CBT), sorted; null when the
   * platform cannot tell (checkpoint lost), which means "read everything".
   */
  changedExtentsSince?(base: string): Promise<Extent[] | null>;
  close(): Promise<void>;
}

export interface DiskSink {
  /** Size the restored disk must have. */
  readonly size: number;
  /** Writes `buf` at `position`. Ranges never written read back as zeros (holes). */
  write(buf: Buffer, position: number): Promise<void>;
  /** Makes the data durable and publishes the disk (e.g. rename into place). */
  commit(): Promise<void>;
  /** Discards a partially written disk. */
  abort(): Promise<void>;
}
