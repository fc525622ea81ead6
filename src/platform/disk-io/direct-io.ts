import { DIRECT_ALIGN } from '../../lib/direct-io.js';

/**
 * Direct I/O for the large aligned writes of a restore (the contract: lib/direct-io.ts).
 *
 * Why here too: the restored image is never read back by Lifeboat, so the cache gains nothing
 * and loses the pages it held (what Nova's cache='none' and `qemu-img convert -t none` choose
 * for disk images too). Measured on the bench machine (2-core VM, ext4 on virtio), the sweep's
 * 1 GiB restores (a new disk after backups and peer tools churned the cache): buffered
 * 2.71-3.33 s with 2.3-3.7 CPU-s of system time, direct 2.29-2.57 s with 0.9-1.05. Restoring
 * again and again over the same recycled cache pages, buffered was the faster one (1.5-1.9 s
 * against 1.75-2.3 s): there the device's latency shows, not the copies.
 */
/**
 * Smaller runs are written buffered: a direct write waits for the device, a small buffered one
 * is a copy. Restores of the random mix (1 GiB, holes down to 4 KiB between runs), wall time:
 * all direct 1.96-1.98 s, runs of >= 256 KiB direct 1.70-1.88 s, all buffered 1.77-2.12 s with
 * twice the system time.
 */
export const DIRECT_MIN = 256 * 1024;

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
