import type { Disk, Instance, Nic } from '../domain/instance.js';

/**
 * Where VMs live. The local platform (an inventory file whose disks are image files) comes
 * first; libvirt (running VMs, NBD export + dirty bitmaps) and OpenStack (Nova/Cinder/Glance/
 * Neutron) implement the same interface later (ARCHITECTURE.md §3a).
 *
 * Contract: every lookup is scoped by project; an instance of another project is reported
 * exactly like a missing one (null), so callers cannot probe other tenants.
 */
export interface Platform {
  readonly name: string; // 'local', later 'libvirt', 'openstack'
  listInstances(projectId: string): Promise<Instance[]>;
  getInstance(projectId: string, instanceId: string): Promise<Instance | null>;

  /**
   * Opens a disk for a snapshot. The source's changeToken / changedExtentsSince let the
   * datamover skip unchanged data (CBT platforms later add checkpoints here).
   */
  openDiskSource(instance: Instance, disk: Disk): Promise<DiskSource>;

  /** Creates a new instance for a restore (new id) with the given disks' sizes; returns it with sinks. */
  createInstance(projectId: string, spec: NewInstanceSpec): Promise<PreparedInstance>;
  /** Opens sinks that overwrite disks of an existing instance in place. */
  openInPlaceSinks(projectId: string, instanceId: string, disks: { device: string; size: number }[]): Promise<PreparedInstance>;
}

export interface NewInstanceSpec {
  name: string;
  availability_zone: string;
  flavor: Instance['flavor'];
  security_groups: string[];
  nics: Nic[];
  metadata: Record<string, string>;
  disks: { device: string; format: string; size: number; volume_type?: string }[];
}

/**
 * An instance being restored: write each disk through its sink, then `publish()` makes the
 * instance visible (new instances are added to the inventory only then); `discard()` removes
 * partial disks and leaves the inventory untouched.
 */
export interface PreparedInstance {
  instance: Instance;
  sinks: Map<string, DiskSink>; // by device
  publish(): Promise<Instance>;
  discard(): Promise<void>;
}

/**
 * Disk sources and sinks: the seam between platforms (where disks live) and the datamover (how they are copied).
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
