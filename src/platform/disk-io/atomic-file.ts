import { randomUUID } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { link, mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Crash-safe file replacement for the local platform: write a temp file in the SAME directory
 * (so rename is atomic), fsync it, rename it over the target, fsync the directory (so the
 * rename itself survives a crash). Readers see either the old or the new file, never a mix.
 */

/** A temp name beside `target`: hidden, unique, and recognisable (`.<base>.<uuid>.tmp`). */
export function tempPathBeside(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomUUID()}.tmp`);
}

/** fsync a directory so that a rename/unlink in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (e) {
    // Some filesystems refuse fsync on a directory handle; the rename is still atomic there.
    if (!hasCode(e, 'EINVAL', 'EISDIR', 'EPERM', 'EBADF')) throw e;
  } finally {
    await fh.close();
  }
}

/**
 * Atomically replaces (or, with `noClobber`, creates) `target` with `data`. Returns the stat of
 * the written file taken before the rename: dev, ino, size and mtime survive the rename, so the
 * caller can recognise its own write later without a racy stat of the path.
 *
 * With `noClobber` the file is published with link(2), which fails with EEXIST when the target
 * already exists; that error is rethrown so the caller can tell "someone else was first".
 */
export async function writeFileAtomic(
  target: string,
  data: string | Buffer,
  opts: { noClobber?: boolean; mode?: number } = {},
): Promise<BigIntStats> {
  const dir = path.dirname(target);
  await mkdir(dir, { recursive: true });
  const tmp = tempPathBeside(target);
  let st: BigIntStats;
  const fh = await open(tmp, 'wx', opts.mode ?? 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
    st = await fh.stat({ bigint: true });
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    if (opts.noClobber) {
      await link(tmp, target);
      await unlink(tmp);
    } else {
      await rename(tmp, target);
    }
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fsyncDir(dir);
  return st;
}

export function hasCode(e: unknown, ...codes: string[]): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && codes.includes(String((e as { code: unknown }).code));
}

/** Identity of a file's content for change detection: rename-replace changes ino, edits change size/mtime. */
export function fileKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
}
