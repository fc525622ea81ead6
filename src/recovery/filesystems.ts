import type { Manifest } from '../repository/manifest.format.js';
import { applianceDrive, quoteArg, type Appliance } from './guestfish.js';

/** One disk of a snapshot as the VM saw it. */
export interface SnapshotDisk {
  instanceId: string;
  /** The VM's device, e.g. `/dev/vda`. */
  device: string;
  /** The disk's key in the repository (`<instanceId>:<device>`, jobs/snapshot.job.ts diskKey). */
  diskKey: string;
}

/** A file system found inside the appliance, named the way the VM names it. */
export interface FoundFileSystem {
  /** Device inside the appliance (`/dev/sdb1`, `/dev/vg0/lv0`). */
  applianceDevice: string;
  /** The VM's name for it (`/dev/vdb1`; logical volumes keep their `/dev/<vg>/<lv>` name). */
  guestDevice: string;
  vfsType: string;
  /** The disk it lives on (for a logical volume: the first disk of the drive set). */
  disk: SnapshotDisk;
}

/**
 * The disks of a snapshot from its manifest, in manifest order. A key is `<instance>:<device>`
 * on every platform (instance ids have no colon); a device the platform could not name (an
 * OpenStack volume attachment without a device) is called `/dev/disk<k>` after its position.
 */
export function snapshotDisks(manifest: Manifest): SnapshotDisk[] {
  return manifest.disks.map((d, k) => {
    const at = d.diskKey.indexOf(':');
    if (at <= 0) return { instanceId: '', device: d.diskKey, diskKey: d.diskKey };
    const device = d.diskKey.slice(at + 1);
    return { instanceId: d.diskKey.slice(0, at), device: device.startsWith('/dev/') ? device : `/dev/disk${k}`, diskKey: d.diskKey };
  });
}

/** File system types that cannot be mounted (PVs, swap, raw data). */
const UNMOUNTABLE = new Set(['unknown', 'swap', 'LVM2_member', 'crypto_LUKS', '']);

/** `list-filesystems` of the appliance: [device, type] pairs (every drive, LVs that are active). */
export async function listFileSystems(app: Appliance): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const line of await app.run('list-filesystems')) {
    const m = /^(\/dev\/\S+): (.*)$/.exec(line);
    if (m) out.push([m[1]!, m[2]!]);
  }
  return out;
}

function driveIndex(dev: string, drives: string[]): number {
  return drives.findIndex((d) => dev === d || (dev.startsWith(d) && /^\d+$/.test(dev.slice(d.length))));
}

/**
 * The mountable file systems of `disks` in a listing, with VM device names: `/dev/sdc2` on the
 * drive of `/dev/vdb` becomes `/dev/vdb2`. Devices on other drives are left out, so one
 * appliance can hold many snapshots' drives; logical volumes are kept only with `withLvs`
 * (the caller made sure only these disks' volume groups are active).
 */
export function fileSystemsOn(listing: [string, string][], disks: SnapshotDisk[], firstDrive: number, withLvs: boolean): FoundFileSystem[] {
  const drives = disks.map((_, k) => applianceDrive(firstDrive + k));
  const out: FoundFileSystem[] = [];
  for (const [dev, type] of listing) {
    if (UNMOUNTABLE.has(type)) continue;
    const k = driveIndex(dev, drives);
    if (k >= 0) out.push({ applianceDevice: dev, guestDevice: disks[k]!.device + dev.slice(drives[k]!.length), vfsType: type, disk: disks[k]! });
    else if (withLvs && !/^\/dev\/sd[a-z]+\d*$/.test(dev) && disks.length > 0) out.push({ applianceDevice: dev, guestDevice: dev, vfsType: type, disk: disks[0]! });
  }
  return out;
}

/** The file systems of a one-snapshot appliance (mounts): partitions and logical volumes. */
export async function findFileSystems(app: Appliance, disks: SnapshotDisk[]): Promise<FoundFileSystem[]> {
  return fileSystemsOn(await listFileSystems(app), disks, 0, true);
}

/** Mount options that never write: no journal replay (ext3/4 `noload`, XFS `norecovery`), duplicate XFS UUIDs allowed. */
export function readOnlyOptions(vfsType: string): string {
  if (vfsType === 'ext3' || vfsType === 'ext4') return 'ro,noload';
  if (vfsType === 'xfs') return 'ro,norecovery,nouuid';
  return 'ro';
}

/** Mounts `fs` read-only at `at` inside the appliance. */
export async function mountReadOnly(app: Appliance, fs: FoundFileSystem, at: string): Promise<void> {
  await app.run(`mount-options ${quoteArg(readOnlyOptions(fs.vfsType))} ${quoteArg(fs.applianceDevice)} ${quoteArg(at)}`);
}

/**
 * The directory a file system appears under in a mount: the VM device without `/dev/`
 * (`vda1`, `vg0-lv0`), prefixed with the instance id when the snapshot holds several VMs.
 */
export function mountDirName(fs: Pick<FoundFileSystem, 'guestDevice'> & { disk: Pick<SnapshotDisk, 'instanceId'> }, severalInstances: boolean): string {
  const dev = fs.guestDevice.replace(/^\/dev\//, '').replace(/^mapper\//, '').replace(/\//g, '-');
  return severalInstances && fs.disk.instanceId ? `${fs.disk.instanceId}-${dev}` : dev;
}
