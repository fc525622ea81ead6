import { CorruptMetadataError } from '../lib/errors.js';
import { ID_LEN } from './chunk-codec.js';
import { assertSealedAsScope, openMetadata, sealMetadata } from './envelope.js';
import { decodeFramed, encodeFramed } from './framing.js';

/**
 * Disk index object (`disks/<snapshot>/<writer>.<diskHash>.didx`): the disk as a list of chunk
 * ids, one per chunkSize-aligned offset. Header JSON below; body = chunkCount ids of 32 bytes;
 * an all-zero id marks a hole (a chunk of zeros: no object, restored as a hole). The last chunk
 * is `size - (chunkCount-1)*chunkSize` bytes long. A snapshot's disk index lists every chunk of
 * the disk, so it never depends on another snapshot.
 */
export const DISK_INDEX_MAGIC = 'LBDIDX01';

export interface DiskIndexHeader {
  projectId: string;
  snapshotId: string;
  diskKey: string;
  size: number;
  chunkSize: number;
  chunkCount: number;
  holes: number;
  changeToken: string | null;
  createdAt: number;
}

export interface DiskIndex {
  header: DiskIndexHeader;
  /** chunkCount × 32 bytes. */
  ids: Buffer;
}

export function chunkCountFor(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

export function encodeDiskIndex(index: DiskIndex): Uint8Array[] {
  const { projectId, snapshotId } = index.header;
  return sealMetadata('disk-index', { projectId, snapshotId }, encodeFramed(DISK_INDEX_MAGIC, index.header, [index.ids]));
}

export function decodeDiskIndex(what: string, data: Buffer): DiskIndex {
  const { header, body } = decodeFramed<DiskIndexHeader>(what, DISK_INDEX_MAGIC, openMetadata('disk-index', what, data));
  const ok =
    Number.isSafeInteger(header.size) &&
    header.size >= 0 &&
    Number.isSafeInteger(header.chunkSize) &&
    header.chunkSize > 0 &&
    header.chunkCount === chunkCountFor(header.size, header.chunkSize) &&
    body.length === header.chunkCount * ID_LEN;
  if (!ok) throw new CorruptMetadataError(`${what} has an inconsistent header`);
  if (typeof header.projectId !== 'string') throw new CorruptMetadataError(`${what} names no scope`);
  assertSealedAsScope(what, data, header.projectId);
  return { header, ids: Buffer.from(body) };
}
