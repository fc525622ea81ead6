import { execFile } from 'node:child_process';
import { chmod, chown, stat } from 'node:fs/promises';
import { UnavailableError } from '../../lib/errors.js';
import { scrubLibvirtMessage } from './virsh.js';

/**
 * How restored disk bytes reach their final form (README.md "Restores"): a raw disk is a sparse
 * raw file written through FileDiskSink (holes stay holes: all-zero blocks are never written),
 * a qcow2 disk is written as qcow2 straight away by Qcow2DiskSink (unallocated clusters where
 * the data is zero), a block device is staged as a raw file and copied onto the device with
 * `qemu-img convert -n` once the domain is stopped (inplace-swap.ts).
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
