/**
 * Just enough of a disk's layout to decide whether a search needs the appliance: the
 * partitions of a GPT or MBR disk (or the whole disk when it has no table) and, for each, a
 * probe of its first bytes. Sector size 512 (virtual disks).
 */

export type ReadAt = (offset: number, length: number) => Promise<Buffer>;

export interface Partition {
  /** Linux partition number (`/dev/vda<number>`); null: the whole disk holds the file system. */
  number: number | null;
  offset: number;
  /** GPT BIOS boot partitions hold boot code, never a file system. */
  biosBoot: boolean;
}

const SECTOR = 512;
const EXTENDED = new Set([0x05, 0x0f, 0x85]);
const BIOS_BOOT_GUID = Buffer.from('Hah!IdontNeedEFI', 'latin1'); // 21686148-6449-6E6F-744E-656564454649 as stored

/**
 * The partitions of a disk; null when the layout is one this reader does not handle (MBR
 * extended partitions, a damaged GPT): the caller leaves the disk to the appliance.
 */
export async function readPartitions(read: ReadAt): Promise<Partition[] | null> {
  const mbr = await read(0, 2 * SECTOR);
  if (mbr.length < 2 * SECTOR || mbr.readUInt16LE(510) !== 0xaa55) return [{ number: null, offset: 0, biosBoot: false }];
  if (mbr.subarray(SECTOR, SECTOR + 8).toString('latin1') === 'EFI PART') return readGpt(read, mbr.subarray(SECTOR));
  const out: Partition[] = [];
  for (let i = 0; i < 4; i++) {
    const e = mbr.subarray(446 + 16 * i, 446 + 16 * (i + 1));
    const type = e[4]!;
    if (type === 0) continue;
    if (type === 0xee || EXTENDED.has(type)) return null; // protective MBR without a GPT header, or logical partitions
    out.push({ number: i + 1, offset: e.readUInt32LE(8) * SECTOR, biosBoot: false });
  }
  return out;
}

async function readGpt(read: ReadAt, header: Buffer): Promise<Partition[] | null> {
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = header.readUInt32LE(80);
  const size = header.readUInt32LE(84);
  if (size < 128 || count > 1024 || !Number.isSafeInteger(entriesLba * SECTOR)) return null;
  const table = await read(entriesLba * SECTOR, count * size);
  const out: Partition[] = [];
  for (let i = 0; i < count && (i + 1) * size <= table.length; i++) {
    const e = table.subarray(i * size, (i + 1) * size);
    if (e.subarray(0, 16).every((b) => b === 0)) continue;
    const first = Number(e.readBigUInt64LE(32));
    if (!Number.isSafeInteger(first * SECTOR)) return null;
    out.push({ number: i + 1, offset: first * SECTOR, biosBoot: e.subarray(0, 16).equals(BIOS_BOOT_GUID) });
  }
  return out;
}

/**
 * What starts at `offset`: an ext2/3/4 file system (superblock magic), nothing a search could
 * look into (swap, or the first 68 KiB all zeros: every file system blkid knows puts its
 * superblock there), or something else (XFS, LVM, vfat, …: the appliance's business).
 */
export async function probeFileSystem(read: ReadAt, offset: number): Promise<'ext' | 'none' | 'other'> {
  const head = await read(offset, 68 * 1024);
  if (head.length >= 1082 && head.readUInt16LE(1080) === 0xef53) return 'ext';
  if (head.length >= 4096 && head.subarray(4086, 4096).toString('latin1') === 'SWAPSPACE2') return 'none';
  return head.every((b) => b === 0) ? 'none' : 'other';
}
