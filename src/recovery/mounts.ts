import { mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import type { RepositorySet } from '../repository/repository-set.js';
import { DiskExport } from './disk-export.js';
import { findFileSystems, mountDirName, mountReadOnly, snapshotDisks, type SnapshotDisk } from './filesystems.js';
import { ExtMount, fuse2fsAvailable } from './ext-mount.js';
import { extOnlyLayout } from './ext-search.js';
import { unmountFuse } from './fuse.js';
import { Appliance, ApplianceError, applianceDrive, quoteArg, libguestfsSocketDirs, removeApplianceDirs } from './guestfish.js';

export interface RecoveryOptions {
  /** LIFEBOAT_HOME: sockets go to `<home>/nbd`, mounts to `<home>/mounts` (both 0700). */
  home: string;
  /** Every configured backup target; a snapshot is read from the target it recorded. */
  repos: RepositorySet;
  /** Run appliances under TCG even when /dev/kvm exists. */
  forceTcg: boolean;
  /** A mount nobody touched for this long is dismounted (onExpired is told). */
  idleMs: number;
  logger?: Logger;
  /** A mount was dismounted by the idle timer (the caller resets the snapshot's status). */
  onExpired?: (snapshotId: string) => void;
  /** How long a mount may take to appear (default 5 min: TCG appliance launch on a busy host). */
  mountTimeoutMs?: number;
  /** Mount ext-only snapshots in the appliance too (comparison runs of the bench). */
  applianceOnly?: boolean;
}

interface ActiveMount {
  snapshotId: string;
  path: string;
  exports: DiskExport[];
  /** Unmounts and stops what serves the mount (fuse2fs or the appliance); the exports stay. */
  release: () => Promise<void>;
  lastUsed: number;
}

/**
 * Read-only mounts of snapshots on this host: every disk of the snapshot is exported over NBD
 * from the repository, one libguestfs appliance takes them all, mounts each file system it
 * finds under `/<vda1|vg-lv|…>` of a scratch root, and exposes that tree with FUSE
 * (mount-local) at `<home>/mounts/<snapshotId>`. The appliance and the FUSE mount live as long
 * as the mount; reconcile() removes what a killed process left behind.
 */
export class SnapshotMounts {
  private readonly mounts = new Map<string, ActiveMount>();
  private readonly starting = new Map<string, Promise<string>>();
  private readonly log: Logger;
  private readonly timer: NodeJS.Timeout;
  /** Snapshots of ext file systems only are mounted with fuse2fs, no appliance (ext-mount.ts). */
  private readonly fuse2fs = fuse2fsAvailable();

  constructor(private readonly o: RecoveryOptions) {
    this.log = o.logger ?? silentLogger;
    this.timer = setInterval(() => void this.expireIdle(), Math.max(1000, Math.min(60_000, Math.floor(o.idleMs / 4))));
    this.timer.unref();
  }

  get socketDir(): string {
    return join(this.o.home, 'nbd');
  }

  get mountRoot(): string {
    return join(this.o.home, 'mounts');
  }

  /** Environment tag of every appliance this service starts (reconcile finds orphans by it). */
  get tag(): string {
    return applianceTag(this.o.home);
  }

  /** The host path of a mounted snapshot, or null. */
  pathOf(snapshotId: string): string | null {
    return this.mounts.get(snapshotId)?.path ?? null;
  }

  /** Marks a mount as used now (resets its idle timer). */
  touch(snapshotId: string): void {
    const m = this.mounts.get(snapshotId);
    if (m) m.lastUsed = Date.now();
  }

  mounted(): string[] {
    return [...this.mounts.keys()];
  }

  /**
   * Mounts the snapshot (once; a second call while it starts waits for the first), reading it
   * from backup target `target` (the snapshot's `backup_target`; null: the default). Returns the path.
   */
  mount(snapshotId: string, target: string | null): Promise<string> {
    const active = this.mounts.get(snapshotId);
    if (active) return Promise.resolve(active.path);
    let p = this.starting.get(snapshotId);
    if (!p) {
      p = this.start(snapshotId, target).finally(() => this.starting.delete(snapshotId));
      this.starting.set(snapshotId, p);
    }
    return p;
  }

  private async start(snapshotId: string, target: string | null): Promise<string> {
    const repo = this.o.repos.get(target);
    mkdirSync(this.socketDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.mountRoot, { recursive: true, mode: 0o700 });
    const path = join(this.mountRoot, snapshotId);
    mkdirSync(path, { recursive: true, mode: 0o700 });
    const manifest = await repo.readManifest(snapshotId);
    const disks = snapshotDisks(manifest);
    const exports: DiskExport[] = [];
    let release: (() => Promise<void>) | null = null;
    try {
      for (const [k, d] of disks.entries()) {
        exports.push(await DiskExport.start({ repo, snapshotId, diskKey: d.diskKey, socketPath: join(this.socketDir, `${snapshotId}-${k}.sock`), logger: this.log }));
      }
      const several = new Set(disks.map((d) => d.instanceId)).size > 1;
      const layout = this.fuse2fs && !this.o.applianceOnly ? await extOnlyLayout(disks, exports) : null;
      if (layout && layout.length > 0) {
        const m = await ExtMount.mount({ path, mountRoot: this.mountRoot, snapshotId, layout, nameOf: (fs) => mountDirName({ guestDevice: fs.device, disk: fs }, several), tag: this.tag, logger: this.log, timeoutMs: this.o.mountTimeoutMs ?? 300_000 });
        release = () => m.close();
      } else {
        const app = await this.mountInAppliance(snapshotId, path, disks, exports, several);
        release = async () => {
          unmountFuse(path);
          await app.close();
        };
      }
      this.mounts.set(snapshotId, { snapshotId, path, exports, release, lastUsed: Date.now() });
      this.log.info({ snapshotId, appliance: !(layout && layout.length > 0) }, 'snapshot mounted');
      return path;
    } catch (e) {
      await release?.().catch(() => undefined);
      await Promise.all(exports.map((x) => x.close().catch(() => undefined)));
      removeEmptyDir(path);
      throw e;
    }
  }

  /** One appliance takes every disk, mounts each file system under a scratch root and serves it with FUSE at `path`. */
  private async mountInAppliance(snapshotId: string, path: string, disks: SnapshotDisk[], exports: DiskExport[], several: boolean): Promise<Appliance> {
    const app = await Appliance.launch({ drives: exports.map((e) => e.socketPath), forceTcg: this.o.forceTcg, logger: this.log, tag: this.tag, scratchRoot: true });
    try {
      const scratch = applianceDrive(disks.length); // the drive after the snapshot's
      const found = await findFileSystems(app, disks);
      await app.run(`mkfs ext2 ${scratch}`);
      await app.run(`mount ${scratch} /`);
      await app.run('rmdir /lost+found');
      for (const fs of found) {
        const dir = `/${mountDirName(fs, several)}`;
        await app.run(`mkdir ${quoteArg(dir)}`);
        await mountReadOnly(app, fs, dir).catch((e: unknown) => this.log.warn({ snapshotId, device: fs.guestDevice, err: errorMessage(e) }, 'file system not mountable; left out of the mount'));
      }
      await app.run(`mount-local ${quoteArg(path)} readonly:true`);
      app.send('mount-local-run'); // serves FUSE until the directory is unmounted
      await this.waitMounted(path, app);
      return app;
    } catch (e) {
      unmountFuse(path);
      await app.close(5000).catch(() => undefined);
      throw e;
    }
  }

  private async waitMounted(path: string, app: Appliance): Promise<void> {
    const deadline = Date.now() + (this.o.mountTimeoutMs ?? 300_000);
    let ended = false;
    void app.exited.then(() => (ended = true));
    while (!isMountPoint(path)) {
      if (ended) throw new ApplianceError('the file system appliance ended before the mount appeared');
      if (Date.now() > deadline) throw new ApplianceError('the mount did not appear in time');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Unmounts and stops everything of one snapshot's mount; false when it was not mounted. */
  async dismount(snapshotId: string): Promise<boolean> {
    await this.starting.get(snapshotId)?.catch(() => undefined);
    const m = this.mounts.get(snapshotId);
    if (!m) return false;
    this.mounts.delete(snapshotId);
    await m.release();
    await Promise.all(m.exports.map((x) => x.close().catch(() => undefined)));
    removeEmptyDir(m.path);
    this.log.info({ snapshotId }, 'snapshot dismounted');
    return true;
  }

  private async expireIdle(): Promise<void> {
    const now = Date.now();
    for (const m of [...this.mounts.values()]) {
      if (now - m.lastUsed < this.o.idleMs) continue;
      await this.dismount(m.snapshotId).catch((e: unknown) => this.log.warn({ snapshotId: m.snapshotId, err: errorMessage(e) }, 'idle dismount failed'));
      this.o.onExpired?.(m.snapshotId);
    }
  }

  /** Dismounts everything (service shutdown). */
  async closeAll(): Promise<void> {
    clearInterval(this.timer);
    for (const id of [...this.starting.keys(), ...this.mounts.keys()]) await this.dismount(id).catch(() => undefined);
  }

  /**
   * At start: removes what a killed service left: FUSE mounts under the mount root (lazy
   * unmount), appliances (guestfish and its qemu) tagged with this home, stale sockets and
   * mount directories. Returns how many mounts and processes it removed.
   */
  reconcile(): { mounts: number; processes: number } {
    const stale = fuseMountsUnder(this.mountRoot);
    for (const p of stale) unmountFuse(p);
    const pids = processesTagged(this.tag);
    const socketDirs = pids.flatMap(libguestfsSocketDirs);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
    rmSync(this.socketDir, { recursive: true, force: true });
    removeApplianceDirs(this.tag);
    for (const dir of socketDirs) rmSync(dir, { recursive: true, force: true });
    // Empty directories only (file systems were mounted one level down): never a delete through a mount.
    for (const name of safeList(this.mountRoot)) {
      for (const sub of safeList(join(this.mountRoot, name))) removeEmptyDir(join(this.mountRoot, name, sub));
      removeEmptyDir(join(this.mountRoot, name));
    }
    if (stale.length || pids.length) this.log.warn({ mounts: stale.length, processes: pids.length }, 'removed file recovery mounts and appliances left by an earlier run');
    return { mounts: stale.length, processes: pids.length };
  }
}

/** The environment tag of every appliance started for the service with this home. */
export function applianceTag(home: string): string {
  return `lifeboat:${home}`;
}

/** Removes a mount point directory; never recursive (a still-mounted tree must not be deleted through). */
function removeEmptyDir(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    /* gone already, or still busy: reconcile retries at the next start */
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** True when `path` is a mount point (its device differs from its parent's). */
export function isMountPoint(path: string): boolean {
  try {
    return statSync(path).dev !== statSync(join(path, '..')).dev;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOTCONN'; // a FUSE mount whose server died
  }
}

/** FUSE mounts at or below `root` (from /proc/self/mountinfo). */
export function fuseMountsUnder(root: string): string[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || !f[sep + 1]?.startsWith('fuse')) continue;
    const mp = f[4]!.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === root || mp.startsWith(`${root}/`)) out.push(mp);
  }
  return out;
}

/** Pids whose environment carries LIFEBOAT_APPLIANCE=<tag>. */
export function processesTagged(tag: string): number[] {
  const needle = Buffer.from(`LIFEBOAT_APPLIANCE=${tag}\0`);
  const out: number[] = [];
  for (const name of safeList('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`);
      if (env.includes(needle)) out.push(Number(name));
    } catch {
      /* not ours to read, or gone */
    }
  }
  return out;
}
