import type { DiskSink, DiskSource } from '../lib/disk-io.js';
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
