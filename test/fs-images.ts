import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { mustRun } from './recovery-fixtures.js';

/**
 * Disk images with real file systems, built without mounting anything: GPT (sgdisk) + ext4
 * made by `mkfs.ext4 -d <dir>` on a partition image copied in at the partition's offset; and
 * GPT + LVM + XFS built by guestfish (one appliance launch).
 */

export type Tree = Record<string, string | Buffer | { symlink: string }>;

function writeTree(root: string, tree: Tree): void {
  for (const [rel, v] of Object.entries(tree)) {
    const p = join(root, rel);
    mkdirSync(dirname(p), { recursive: true });
    if (typeof v === 'object' && !Buffer.isBuffer(v)) symlinkSync(v.symlink, p);
    else writeFileSync(p, v);
  }
}

/** Copies `src` into `dst` at `offset`, skipping all-zero blocks (the target stays sparse). */
function copyAt(src: string, dst: string, offset: number): void {
  const fi = openSync(src, 'r');
  const fo = openSync(dst, 'r+');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (let pos = 0; ; ) {
      const n = readSync(fi, buf, 0, buf.length, pos);
      if (n === 0) break;
      for (let b = 0; b < n; b += 4096) {
        const piece = buf.subarray(b, Math.min(n, b + 4096));
        if (piece.some((x) => x !== 0)) writeSync(fo, piece, 0, piece.length, offset + pos + b);
      }
      pos += n;
    }
  } finally {
    closeSync(fi);
    closeSync(fo);
  }
}

/** A GPT disk of `sizeMiB` with one Linux partition holding an ext4 file system with `tree`. */
export async function buildExt4Disk(path: string, sizeMiB: number, tree: Tree): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'lifeboat-ext4-'));
  try {
    const root = join(work, 'root');
    mkdirSync(root);
    writeTree(root, tree);
    rmSync(path, { force: true });
    writeFileSync(path, '');
    truncateSync(path, sizeMiB << 20);
    await mustRun('sgdisk', ['-n', '1:2048:0', '-t', '1:8300', path]);
    const info = await mustRun('sgdisk', ['-i', '1', path]);
    const first = Number(/First sector: (\d+)/.exec(info)![1]);
    const last = Number(/Last sector: (\d+)/.exec(info)![1]);
    const part = join(work, 'part.img');
    writeFileSync(part, '');
    truncateSync(part, (last - first + 1) * 512);
    await mustRun('mkfs.ext4', ['-q', '-F', '-E', 'root_owner=0:0', '-d', root, part]);
    copyAt(part, path, first * 512);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A GPT disk with one LVM PV → VG `vgdata` → LV `lvdata` (XFS) holding `files` (regular files
 * only), built by guestfish. XFS needs at least 300 MiB; the image stays sparse.
 */
export async function buildLvmXfsDisk(path: string, files: Record<string, Buffer>, env: NodeJS.ProcessEnv): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'lifeboat-lvm-'));
  try {
    rmSync(path, { force: true });
    writeFileSync(path, '');
    truncateSync(path, 400 << 20);
    const script = ['run', 'part-disk /dev/sda gpt', 'pvcreate /dev/sda1', 'vgcreate vgdata /dev/sda1', 'lvcreate lvdata vgdata 340', 'mkfs xfs /dev/vgdata/lvdata', 'mount /dev/vgdata/lvdata /'];
    let k = 0;
    for (const [rel, data] of Object.entries(files)) {
      const local = join(work, `f${k++}`);
      writeFileSync(local, data);
      script.push(`mkdir-p "${dirname(`/${rel}`)}"`, `upload ${local} "/${rel}"`);
    }
    script.push('umount-all', 'sync');
    const sfile = join(work, 'script');
    writeFileSync(sfile, `${script.join('\n')}\n`);
    await mustRun('guestfish', ['--format=raw', '-a', path, '-f', sfile], env);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Environment for libguestfs here: direct backend, TCG (nested KVM crashes QEMU on these hosts). */
export function guestfsEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };
}
