import { execFile } from 'node:child_process';
import { chmod, chown, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { UnavailableError } from '../../lib/errors.js';
import { fsyncDir } from '../disk-io/atomic-file.js';
import { FileDiskSink } from '../disk-io/file-disk.js';
import { convertStaged } from '../disk-io/direct-io.js';
import type { DiskSink } from '../platform.js';
import { scrubLibvirtMessage } from './virsh.js';

/**
 * How restored disk bytes reach their final form (README.md "Restores"). Every restore first
 * writes a sparse raw file through FileDiskSink (holes stay holes: all-zero blocks are never
 * written); a qcow2 disk is then made with `qemu-img convert -O qcow2` (unallocated clusters
 * where the raw file has holes or zeros), a block device is filled with `qemu-img convert -n`.
 */

/** The formats Lifeboat writes for libvirt domains. */
export const RESTORE_FORMATS = ['raw', 'qcow2'] as const;
export type RestoreFormat = (typeof RESTORE_FORMATS)[number];

export function isRestoreFormat(v: string | undefined): v is RestoreFormat {
  return (RESTORE_FORMATS as readonly string[]).includes(v ?? '');
}

/** No timeout by default: a conversion is proportional to the disk's data, not control-plane. */
export function qemuImg(args: readonly string[], what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('qemu-img', args, { maxBuffer: 1024 * 1024, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const code = (err as NodeJS.ErrnoException).code;
      reject(new UnavailableError(`${what} failed: ${code === 'ENOENT' ? 'qemu-img is not installed' : scrubLibvirtMessage(stderr || err.message)}`));
    });
  });
}

/** Gives `file` the owner (and, with `withMode`, the permission bits) of `like`. */
export async function ownLike(file: string, like: string, withMode = false): Promise<void> {
  const st = await stat(like);
  await chown(file, st.uid, st.gid);
  if (withMode) await chmod(file, st.mode & 0o7777);
}

/** Turns the committed raw file `raw` into `target`; `raw` is gone afterwards either way. */
export type Finisher = (raw: string) => Promise<void>;

/** `qemu-img convert` raw → qcow2 at `target` (through a temp name beside it, renamed when complete). */
export function toQcow2(target: string, what: string): Finisher {
  return async (raw) => {
    const tmp = `${target}.convert`;
    try {
      await convertStaged((args) => qemuImg(args, what), ['-q', '-f', 'raw', '-O', 'qcow2', raw, tmp]);
      await rename(tmp, target);
      await fsyncDir(path.dirname(target));
    } finally {
      await rm(tmp, { force: true });
      await rm(raw, { force: true });
    }
  };
}

/**
 * A DiskSink whose bytes go to a sparse raw file `raw` (written through a temp file beside it);
 * commit() makes `raw` complete, then `finish` turns it into the final disk. abort() removes
 * whatever exists of `raw` and its temp file.
 */
export class StagedDiskSink implements DiskSink {
  private finished = false;
  private failed = false;

  private constructor(
    private readonly inner: FileDiskSink,
    private readonly raw: string,
    private readonly finish: Finisher | null,
  ) {}

  static async create(raw: string, size: number, finish: Finisher | null, tempPath?: string): Promise<StagedDiskSink> {
    return new StagedDiskSink(await FileDiskSink.create(raw, size, tempPath ? { tempPath } : {}), raw, finish);
  }

  get size(): number {
    return this.inner.size;
  }

  /** 'committed' only once `finish` succeeded too. */
  get status(): FileDiskSink['status'] {
    if (this.finished) return 'committed';
    if (this.failed) return 'aborted';
    return this.inner.status === 'committed' ? 'committing' : this.inner.status;
  }

  write(buf: Buffer, position: number): Promise<void> {
    return this.inner.write(buf, position);
  }

  async commit(): Promise<void> {
    await this.inner.commit();
    try {
      await this.finish?.(this.raw);
      this.finished = true;
    } catch (e) {
      this.failed = true;
      await rm(this.raw, { force: true });
      throw e;
    }
  }

  async abort(): Promise<void> {
    this.failed ||= !this.finished;
    await this.inner.abort();
    if (this.finish) await rm(this.raw, { force: true });
  }
}
