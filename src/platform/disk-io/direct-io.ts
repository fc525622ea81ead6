import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { isErrno } from '../../lib/errors.js';

/**
 * Direct I/O (O_DIRECT) for the large aligned writes of a restore.
 *
 * Why: a buffered write copies every byte into page-cache pages the kernel must allocate and
 * map, and the restored image is never read back by Lifeboat, so the cache gains nothing and
 * loses the pages it held (what Nova's cache='none' and `qemu-img convert -t none` choose for
 * disk images too). Measured on the bench machine (2-core VM, ext4 on virtio), the sweep's
 * 1 GiB restores (a new disk after backups and peer tools churned the cache): buffered
 * 2.71-3.33 s with 2.3-3.7 CPU-s of system time, direct 2.29-2.57 s with 0.9-1.05. On that VM
 * a fresh page costs ~20 µs of kernel time (1 GiB of anonymous memory touched in 4-6.5 s).
 * Restoring again and again over the same recycled cache pages, buffered was the faster one
 * (1.5-1.9 s against 1.75-2.3 s): there the device's latency shows, not the copies.
 *
 * Contract: O_DIRECT needs the buffer's address, the file position and the length aligned to
 * the device's logical block size; DIRECT_ALIGN (4096) covers every common device. JavaScript
 * sees offsets, not addresses: `alignedSharedMemory` (lib/aligned-memory.ts) gives page-aligned
 * memory, so a buffer's byteOffset decides. A filesystem without O_DIRECT refuses the open (`openDirect` → null) and
 * the caller writes buffered. A write refused with EINVAL (a buffer that is not aligned after
 * all) wrote nothing: the caller stops using the direct descriptor and writes buffered.
 * Durability is unchanged: when a direct write returns its data has left the page cache (it may
 * still sit in the device's write cache, and the block allocation in the journal); the
 * caller's fsync of the file (any descriptor of the inode) flushes and commits both.
 */
export const DIRECT_ALIGN = 4096;

/**
 * Smaller runs are written buffered: a direct write waits for the device, a small buffered one
 * is a copy. Restores of the random mix (1 GiB, holes down to 4 KiB between runs), wall time:
 * all direct 1.96-1.98 s, runs of >= 256 KiB direct 1.70-1.88 s, all buffered 1.77-2.12 s with
 * twice the system time.
 */
export const DIRECT_MIN = 256 * 1024;

/** `file` opened for writing with O_DIRECT, or null where the filesystem does not offer it. */
export async function openDirect(file: string): Promise<FileHandle | null> {
  try {
    return await open(file, constants.O_WRONLY | constants.O_DIRECT);
  } catch (e) {
    if (isErrno(e, 'EINVAL') || isErrno(e, 'EOPNOTSUPP') || isErrno(e, 'ENOTSUP')) return null;
    throw e;
  }
}

/** Whether a write of `length` bytes from offset `byteOffset` of page-aligned memory to `position` should go direct. */
export function goesDirect(byteOffset: number, length: number, position: number): boolean {
  // Not `(a | b | c) % n`: bitwise operators cut positions to 32 bits.
  return length >= DIRECT_MIN && byteOffset % DIRECT_ALIGN === 0 && length % DIRECT_ALIGN === 0 && position % DIRECT_ALIGN === 0;
}

/**
 * Runs `qemu-img convert <args>` (args without the verb) whose source is a raw file a
 * FileDiskSink wrote: its bytes went to the device with O_DIRECT and are not in the page cache,
 * so the conversion reads them with O_DIRECT too (`-T none`) instead of filling the cache with
 * pages nobody reads again. Measured (1 GiB text disk, 0.73 GB of data, to qcow2): reading
 * buffered 1.82 s with 2.2 CPU-s of system time, `-T none` 0.59-0.80 s with 0.3-0.37. Where
 * qemu-img cannot read the source so (a filesystem without O_DIRECT), it runs again buffered.
 */
export async function convertStaged<T>(qemuImg: (args: string[]) => Promise<T>, args: string[]): Promise<T> {
  try {
    return await qemuImg(['convert', '-T', 'none', ...args]);
  } catch {
    return qemuImg(['convert', ...args]);
  }
}
