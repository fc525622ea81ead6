import { statfs } from 'node:fs/promises';
import type { BackupTarget } from '../lib/target.js';

/**
 * Size and use of the storage under a target, for the admin storage view: a directory target
 * reports its file system (local disk or NFS export, as `df` does); S3 has no capacity to
 * report (null). Throws when the directory cannot be examined.
 */
export async function targetCapacity(target: BackupTarget): Promise<{ totalBytes: number; usedBytes: number } | null> {
  if (target.kind !== 'file') return null;
  const s = await statfs(target.path);
  return { totalBytes: s.blocks * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize };
}
