import type { Disk, Instance, Nic, SecurityGroup } from '../domain/instance.js';
import type { RestorePlan } from '../domain/restore.js';
import type { Snapshot } from '../domain/snapshot.js';

/**
 * Where VMs live. The local platform (an inventory file whose disks are image files) comes
 * first; libvirt (running VMs, NBD export + dirty bitmaps) and OpenStack (Nova/Cinder/Glance/
 * Neutron) implement the same interface later (ARCHITECTURE.md §3a/§3b). `openPlatform()`
 * (open.ts) is the one factory, chosen by LIFEBOAT_PLATFORM.
 *
 * Contract: every lookup is scoped by project; an instance of another project is reported
 * exactly like a missing one (null), so callers cannot probe other tenants.
 */
export interface Platform {
  readonly name: string; // 'local'; later 'libvirt', 'openstack'

  listInstances(projectId: string): Promise<Instance[]>;
  getInstance(projectId: string, instanceId: string): Promise<Instance | null>;
  /**
   * The networks a restored instance of the project can be plugged into (the targets of a
   * restore's `networks_mapping`): the project's own and the shared ones, each with its
   * subnets, ids as `networks_mapping.target_network` takes them. Never another project's
   * private network.
   */
  listNetworks(projectId: string): Promise<PlatformNetwork[]>;
  /**
   * Why an existing instance cannot be protected now (e.g. an OpenStack server in BUILD or
   * ERROR), or null. Optional: a platform without it can protect every instance it lists.
   */
  unprotectableReason?(inst: Instance): string | null;
  /** Delegation for work done later in a tenant's name (OpenStack: Keystone trusts); absent elsewhere. */
  readonly trusts?: TrustBroker;
  /** Key-encryption keys of encrypted workloads kept in the cloud's key manager (OpenStack: Barbican, `secret_uuid`); absent elsewhere. */
  readonly keyManager?: KeyManager;
  /**
   * How many prepared instances of one restore may publish at once while the next instance's
   * disks are restored (OpenStack: publishing is waiting on Glance, Cinder and Nova). Absent or
   * 0: each instance is published before the next one starts. Each publish in flight holds its
   * restored disks in scratch space until its uploads end, so this also bounds that space.
   */
  readonly concurrentPublishes?: number;
  /**
   * Releases what the platform holds open (libvirt: its virsh shells); called once when the
   * service stops, after the last job ended. Optional: a platform holding nothing has none.
   */
  close?(): Promise<void>;

  /**
   * Starts the backup of one instance: a point-in-time source for each of its disks and, on a
   * platform that tracks changes, a new checkpoint. The caller must call `end()` exactly once
   * on every path (it closes every source), and records `checkpoint` with the snapshot so that
   * it comes back as `baseCheckpoint` for the next incremental. On failure nothing stays open.
   */
  beginBackup(instance: Instance, opts: BeginBackupOptions): Promise<BackupSession>;

  /**
   * Creates a new instance for a restore (new id) with the given disks' sizes; returns it with
   * sinks. Partial state is tagged with `tag.restoreId` so cleanupRestore can find it.
   */
  createInstance(projectId: string, spec: NewInstanceSpec, tag: RestoreTag): Promise<PreparedInstance>;
  /**
   * Opens sinks that overwrite disks of an existing instance in place (tagged likewise).
   * `opts.powerOn`: start the instance afterwards or not (absent: as it was before).
   */
  openInPlaceSinks(projectId: string, instanceId: string, disks: { device: string; size: number; data_bytes?: number }[], tag: RestoreTag, opts?: { powerOn?: boolean }): Promise<PreparedInstance>;
  /**
   * Removes what a restore whose worker died left unpublished (temp files of in-place sinks,
   * partial new instances); a published instance is never touched. Idempotent. `instanceIds`
   * are the snapshot's instances the restore targeted (in place: the instances overwritten).
   */
  cleanupRestore(projectId: string, tag: RestoreTag, instanceIds: string[]): Promise<void | RestoreCleanup>;
  /**
   * Ends what a backup whose worker died left open on the platform (libvirt: the backup job,
   * its NBD socket and scratch files, checkpoint metadata). Called by the reconciler before the
   * snapshot is failed (the workload is still locked, so no new backup of these instances runs).
   * Idempotent; optional for platforms whose sessions hold nothing outside the process.
   */
  cleanupBackup?(projectId: string, instanceIds: string[]): Promise<void>;
  /**
   * Optional: checks what only the platform can judge before a restore is accepted (target
   * networks exist, disk formats it can write, one-click originals gone...). Throws a
   * ValidationError / InvalidStateError / NotFoundError (4xx); changes nothing.
   */
  checkRestore?(projectId: string, plan: RestorePlan, snapshot: Snapshot): Promise<void>;
  /**
   * Optional: a scheduled snapshot acts for the workload's owner, whose token expired long ago.
   * Called before a scheduled run reads anything: the platform proves it can still act for
   * `ownerUserId` in the project (OpenStack: a new trust-scoped token from the owner's trust,
   * through which every server of the workload is visible) or throws an error saying why and
   * how to fix it, which fails the run (never a silent skip).
   */
  beginScheduledRun?(projectId: string, ownerUserId: string, instanceIds: string[]): Promise<void>;
  /**
   * Optional: where each instance's disks can be read (per-host job routing, jobs/routing.ts),
   * by instance id. A platform without it reads every disk the same from any worker.
   */
  placement?(projectId: string, instances: Instance[]): Promise<Map<string, Placement>>;
}

/**
 * Where one instance's disks can be read. `host`: the compute host whose Lifeboat worker (the
 * one whose LIFEBOAT_NODE_NAME is that host) reads them through the hypervisor (null: no host
 * path). `anywhere`: any worker can read them too (OpenStack: through Cinder/Glance/Nova).
 * Neither: the snapshot cannot be taken until a worker serves `host`.
 */
export interface Placement {
  host: string | null;
  anywhere: boolean;
  /** When not `anywhere`: why the disks cannot be read elsewhere (for the snapshot's error). */
  reason?: string;
}

/** A network as Platform.listNetworks reports it. */
export interface PlatformNetwork {
  /** Local/OpenStack: the network UUID; libvirt: `network:<name>` or `bridge:<name>`. */
  id: string;
  name: string;
  /** Visible to every project (OpenStack `shared`; every libvirt host network; local: no project_id). */
  shared: boolean;
  /** Up now (OpenStack status ACTIVE, libvirt network started, bridge present); restores onto a down one fail to start. */
  active: boolean;
  /** Neutron subnets (UUID ids); none on libvirt. */
  subnets: { id: string; name: string; cidr: string }[];
}

/**
 * Trusts from a tenant user to Lifeboat's service identity (the vendor's /trusts API). A trust
 * lets a scheduled snapshot or a restore act in the user's project long after the user's
 * token expired.
 */
export interface TrustBroker {
  /**
   * Creates a trust from the caller (whose own token `userToken` is needed: only a trustor may
   * delegate) to Lifeboat for the caller's project with `roleNames`; returns its id. A role the
   * caller does not hold is refused (ValidationError).
   */
  create(userToken: string, caller: { userId: string; projectId: string }, roleNames: string[]): Promise<string>;
  /** Removes the trust; an already removed one is fine. */
  delete(trustId: string): Promise<void>;
  /** Whether Lifeboat can act through the trust now (Keystone issues a token for it). */
  validate(trustId: string): Promise<boolean>;
}

/** Which restore made a partial instance or temp file (for cleanup after a crash). */
export interface RestoreTag {
  restoreId: string;
}

/**
 * A platform's mark of "the disks as they were at a backup", from which a later backup can ask
 * for the extents changed since (libvirt: a checkpoint backed by QEMU dirty bitmaps). Recorded
 * per instance in the snapshot (DB and manifest); opaque to everyone but its platform.
 */
export interface Checkpoint {
  /** The name the platform knows it by; DiskSource.changedExtentsSince takes this name. */
  name: string;
  /** Platform-private state needed to use it again (libvirt: the checkpoint XML to redefine). */
  state?: string;
}

export interface BeginBackupOptions {
  /**
   * The checkpoint the previous snapshot (the incremental base) recorded for this instance;
   * null for a full snapshot or when there is none. A platform that cannot trust it (missing,
   * not the one it knows, disk resized...) starts a new chain and says so in `warnings`.
   */
  baseCheckpoint: Checkpoint | null;
}

export interface BackupDisk {
  disk: Disk;
  source: DiskSource;
}

export type BackupOutcome = 'committed' | 'failed';

/** One instance's backup in progress (see Platform.beginBackup). */
export interface BackupSession {
  /** Every disk of the instance, in the instance's order. */
  readonly disks: readonly BackupDisk[];
  /** The checkpoint this backup establishes; null when the platform tracks no changes. */
  readonly checkpoint: Checkpoint | null;
  /** Why changed blocks could not be used (for the snapshot's warning_msg); empty normally. */
  readonly warnings: readonly string[];
  /**
   * Closes every source and ends the platform's backup job. 'committed' = the snapshot that
   * recorded `checkpoint` is durable (the platform may drop the previous checkpoint); 'failed'
   * = it is not (the new checkpoint will never be a base). Never throws for a close error.
   */
  end(outcome: BackupOutcome): Promise<void>;
  /**
   * Optional. The caller has read, from every disk source, all it will read (the last read has
   * returned; the data may still be on its way into the repository). The platform may let go
   * of what serves the reads meanwhile (libvirt: closes the NBD connections and ends the
   * backup job while the snapshot is committed); end() waits for that and still decides the
   * checkpoints. A read after it fails. Never throws.
   */
  readsDone?(): void;
}

export interface NewInstanceSpec {
  name: string;
  availability_zone: string;
  flavor: Instance['flavor'];
  security_groups: string[];
  nics: Nic[];
  metadata: Record<string, string>;
  /**
   * Each disk to make. OpenStack: `image_backed` = the original's disk was an image-backed
   * root disk (restored as a Glance image the server boots from, with `image_properties`), not
   * a Cinder volume; `availability_zone` = the Cinder zone of its new volume (absent: Cinder's default).
   * `data_bytes` = the bytes of the disk that hold data in the snapshot (its chunks that are not
   * holes; absent when unknown): a platform may pick a sparse format from it before writing.
   */
  disks: { device: string; format: string; size: number; data_bytes?: number; volume_type?: string; availability_zone?: string; image_backed?: boolean; image_properties?: Record<string, string> }[];
  /** OpenStack: the original's key pair, given to the new server when the acting user owns it. */
  key_name?: string;
  /** OpenStack: the device of the original's boot disk (absent, as in older snapshots: an image-backed root, else the first volume by device name). */
  root_device?: string;
  /** OpenStack: the original's security groups with rules; one gone from the project is recreated. */
  security_group_details?: SecurityGroup[];
  /**
   * Start the new instance once published: the plan's choice, else whether the source was
   * running at snapshot time; absent = the platform's default (not started).
   */
  power_on?: boolean;
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
  /**
   * Optional, read after publish(): warnings for the restore's warning_msg, and whether the
   * instance's change tracking was reset (an in-place rewrite dropped its checkpoints), in
   * which case the workload's next snapshot must be a full.
   */
  notes?(): { warnings: string[]; changeTrackingReset: boolean };
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
   * platform cannot tell (checkpoint lost, or `base` is not the session's base checkpoint),
   * which means "read everything". Sources of a BackupSession answer only for the
   * `baseCheckpoint` the session was begun with.
   */
  changedExtentsSince?(base: string): Promise<Extent[] | null>;
  close(): Promise<void>;
}

/** What cleanupRestore did that the restore's record must reflect. */
export interface RestoreCleanup {
  /**
   * The dead restore had begun replacing disks in place and the cleanup finished it: those
   * disks lost their change tracking, so the workload's next snapshot must be a full.
   */
  changeTrackingReset: boolean;
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

/**
 * The cloud's key manager (OpenStack: Barbican) as the source of encrypted workloads'
 * key-encryption keys. Which identity reads: platform/openstack/key-manager.ts.
 */
export interface KeyManager {
  /** Recorded with each data key it wraps ('barbican'). */
  readonly kind: string;
  /**
   * The 32-byte key the secret holds. ValidationError naming the secret when it does not exist,
   * Lifeboat may not read it, or it is not a 256-bit key; a key manager that does not answer
   * fails as the platform's other calls do (503).
   */
  readKey(secretUuid: string): Promise<Buffer>;
}
