import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { isErrno } from './errors.js';

/**
 * Direct I/O (O_DIRECT) for large writes Lifeboat never reads back soon: restored disks
 * (platform/disk-io) and pack files (backend/fs).
 *
 * Why: a buffered write copies every byte into page-cache pages the kernel must allocate and
 * map. On a VM whose freed memory goes back to the host (virtio-balloon free page reporting,
 * the bench machines) a fresh page costs a host fault on first touch: 320 MiB written with `dd`
 * took 1.16 system CPU-s buffered and 0.03-0.04 direct, 0.14-0.21 s wall either way.
 *
 * Contract: O_DIRECT needs the buffer's address, the file position and the length aligned to
 * the device's logical block size; DIRECT_ALIGN (4096) covers every common device. JavaScript
 * sees offsets, not addresses: `alignedSharedMemory` (aligned-memory.ts) gives page-aligned
 * memory, so a buffer's byteOffset decides. A filesystem without O_DIRECT refuses the open
 * (`openDirect` → null) and the caller writes buffered. A write refused with EINVAL (a buffer
 * that is not aligned after all) wrote nothing: the caller stops using the direct descriptor
 * and writes buffered. Durability is unchanged: when a direct write returns its data has left
 * the page cache (it may still sit in the device's write cache, and the block allocation in the
 * journal); the caller's fsync of the file (any descriptor of the inode) flushes and commits both.
 */
export const DIRECT_ALIGN = 4096;

/** `file` opened with O_DIRECT (for writing unless told), or null where the filesystem does not offer it; other errors (ENOENT) are thrown. */
export async function openDirect(file: string, access: 'write' | 'read' = 'write'): Promise<FileHandle | null> {
  try {
    return await open(file, (access === 'read' ? constants.O_RDONLY : constants.O_WRONLY) | constants.O_DIRECT);
  } catch (e) {
    if (isDirectRefused(e)) return null;
    throw e;
  }
}

/** The errors with which a filesystem or a misaligned buffer refuses O_DIRECT (nothing was written). */
export function isDirectRefused(e: unknown): boolean {
  return isErrno(e, 'EINVAL') || isErrno(e, 'EOPNOTSUPP') || isErrno(e, 'ENOTSUP');
}
