import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import type { DiskExport } from './disk-export.js';
import { NbdFile, type ExtFileSystem } from './ext-search.js';
import { unmountFuse } from './fuse.js';

/**
 * A snapshot mount without the appliance, for snapshots whose disks hold only ext2/3/4: each
 * disk's NBD export becomes a local read-only file (nbdfuse), and each file system is mounted
 * by `fuse2fs` (read-only, no journal replay, at its partition offset, no allow_other) at
 * `<path>/<vda1|…>`. Seconds instead of an appliance launch. Every process carries the
 * appliance tag, every mount is under the mount root: restart reconciliation removes leftovers.
 */

/** True when fuse2fs is installed (Debian `fuse2fs`); without it every mount uses the appliance. */
export function fuse2fsAvailable(): boolean {
  return spawnSync('sh', ['-c', 'command -v fuse2fs'], { stdio: 'ignore' }).status === 0;
}

interface FsMount {
  dir: string;
  child: ChildProcess;
  exited: Promise<void>;
}

export interface ExtMountOptions {
  /** The snapshot's mount directory (exists, 0700); file systems appear under it. */
  path: string;
  /** Where the disks' nbdfuse files go (the service's mount root). */
  mountRoot: string;
  snapshotId: string;
  layout: ExtFileSystem[];
  /** The directory name of each file system (mountDirName). */
  nameOf: (fs: ExtFileSystem) => string;
  tag: string;
  logger: Logger;
  timeoutMs: number;
}

export class ExtMount {
  private constructor(
    private readonly files: NbdFile[],
    private readonly mounts: FsMount[],
  ) {}

  static async mount(o: ExtMountOptions): Promise<ExtMount> {
    const files = new Map<DiskExport, NbdFile>();
    const mounts: FsMount[] = [];
    const m = new ExtMount([], mounts);
    try {
      for (const fs of o.layout) {
        let file = files.get(fs.source);
        if (!file) {
          file = await NbdFile.attach({ dir: join(o.mountRoot, `.${o.snapshotId}-disk${files.size}`), socketPath: fs.source.socketPath, tag: o.tag });
          files.set(fs.source, file);
          m.files.push(file);
        }
        const dir = join(o.path, o.nameOf(fs));
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const fsm = startFuse2fs(file.path, fs.offset, dir, o.tag);
        mounts.push(fsm);
        if (await mounted(fsm, o.path, o.timeoutMs)) continue;
        o.logger.warn({ snapshotId: o.snapshotId, device: fs.device }, 'file system not mountable; left out of the mount');
        mounts.pop();
        fsm.child.kill('SIGKILL');
        await fsm.exited;
        removeDir(dir);
      }
      return m;
    } catch (e) {
      await m.close();
      throw e;
    }
  }

  /** Unmounts every file system (lazily), waits for fuse2fs and nbdfuse to end, removes the directories. */
  async close(): Promise<void> {
    await Promise.all(
      this.mounts.map(async (x) => {
        unmountFuse(x.dir);
        const t = setTimeout(() => x.child.kill('SIGKILL'), 10_000);
        await x.exited;
        clearTimeout(t);
        removeDir(x.dir);
      }),
    );
    await Promise.all(this.files.map((f) => f.detach()));
  }
}

function startFuse2fs(image: string, offset: number, dir: string, tag: string): FsMount {
  // no_default_opts: fuse2fs would add allow_other when run as root; only the service reads the mount.
  const child = spawn('fuse2fs', [image, dir, '-f', '-o', `no_default_opts,ro,norecovery,offset=${offset},fsname=lifeboat`], { stdio: 'ignore', env: { ...process.env, LIFEBOAT_APPLIANCE: tag } });
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => resolve());
  });
  return { dir, child, exited };
}

/**
 * Waits (async stat only: fuse2fs reads through nbdfuse from the NBD server on this event
 * loop) until `x.dir` is a mount point; false when fuse2fs ended first (not an ext file system
 * it can read) or the time ran out.
 */
async function mounted(x: FsMount, parent: string, timeoutMs: number): Promise<boolean> {
  let ended = false;
  void x.exited.then(() => (ended = true));
  const deadline = Date.now() + timeoutMs;
  const parentDev = (await stat(parent)).dev;
  for (;;) {
    const dev = await stat(x.dir).then((s) => s.dev, () => parentDev);
    if (dev !== parentDev) return true;
    if (ended || Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

function removeDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    /* still busy: reconcile removes it at the next start */
  }
}
