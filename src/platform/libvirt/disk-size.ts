import { open } from 'node:fs/promises';
import type { DomainDisk } from './domain-xml.js';

/** qcow2 header: magic "QFI\xfb" at 0, the virtual size (u64, big-endian) at 24 (qcow2 spec, versions 2 and 3). */
const QCOW2_MAGIC = 0x514649fb;
const QCOW2_SIZE_AT = 24;

/**
 * The virtual size of a domain's file disk read from its image, without asking libvirt: for
 * qcow2 the header's size field (QEMU rewrites it on every resize, live ones included, before
 * the resize returns), for raw the file's size. Asking libvirt (`domblkinfo`) takes a query job
 * on the domain, which waits for, and holds up, the checkpoint redefine of the same backup
 * begin. Null when the image cannot be read here (no access, a block device or network disk,
 * another format, a header that is not qcow2's): the caller asks libvirt then.
 */
export async function imageVirtualSize(d: DomainDisk): Promise<number | null> {
  if (d.type !== 'file' || !d.source || (d.format !== 'qcow2' && d.format !== 'raw')) return null;
  let fh;
  try {
    fh = await open(d.source, 'r');
  } catch {
    return null;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return null;
    if (d.format === 'raw') return st.size;
    const head = Buffer.alloc(QCOW2_SIZE_AT + 8);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < head.length || head.readUInt32BE(0) !== QCOW2_MAGIC) return null;
    const size = head.readBigUInt64BE(QCOW2_SIZE_AT);
    return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : null;
  } catch {
    return null;
  } finally {
    await fh.close().catch(() => undefined);
  }
}
