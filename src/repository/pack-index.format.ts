import { IntegrityError } from '../lib/errors.js';
import { ID_LEN } from './chunk-codec.js';
import { assertSealedAsScope, openMetadata, sealMetadata } from './envelope.js';
import { decodeFramed, encodeFramed } from './framing.js';
import { isPackId } from './keys.js';

/**
 * Pack index object (`index/<project>/<id>.pidx`): where each chunk of some packs lives.
 * Header JSON: { projectId, packs: [packId...], createdAt, packLengths?: [bytes...] }. Body: one
 * 52-byte record per chunk copy: id[32] | u32 packOrdinal (into header.packs) | u32 offset |
 * u32 storedLength | u32 rawLength | u32 flags. The same chunk may appear in several packs (GC
 * keeps one). `packLengths` (parallel to `packs`, written since the pack-existence check) is the
 * exact object length of each pack; older indexes lack it (readers then use a lower bound, see
 * minPackLength). Adding an optional header field keeps the magic: old readers ignore it.
 */
export const PACK_INDEX_MAGIC = 'LBPIDX01';
const REC = ID_LEN + 20;

export interface ChunkLocation {
  pack: string;
  offset: number;
  storedLength: number;
  rawLength: number;
  flags: number;
}

export interface PackIndexEntry extends ChunkLocation {
  id: Buffer;
}

export interface PackIndexHeader {
  projectId: string;
  packs: string[];
  createdAt: number;
  /** Exact byte length of each pack in `packs` (same order); absent in older indexes. */
  packLengths?: number[];
}

/** Bytes of a pack trailer holding `count` entries, minus its JSON header. */
const TRAILER_FIXED = 8 + 4 + 32 + 4;
const TRAILER_REC = ID_LEN + 16;

/**
 * The smallest length a pack can have when its chunks are at `entries`: every stored chunk plus
 * a trailer with at least these records. Used when an index does not record the exact length.
 */
export function minPackLength(entries: readonly ChunkLocation[]): number {
  let end = 0;
  const offsets = new Set<number>(); // an index may list the same copy twice (interrupted GC)
  for (const e of entries) {
    end = Math.max(end, e.offset + e.storedLength);
    offsets.add(e.offset);
  }
  return end + TRAILER_FIXED + offsets.size * TRAILER_REC;
}

/**
 * A pack index's records as they are stored (PACK_INDEX_RECORD bytes each, layout above), for
 * readers that must not make one JS object per chunk (a project's index is loaded whole).
 * Accessors: recordPack / recordLocation; the id is body[at, at + 32).
 */
export interface PackIndexRecords {
  header: Pick<PackIndexHeader, 'packs' | 'packLengths'>;
  body: Buffer;
  count: number;
}
export const PACK_INDEX_RECORD = REC;

/** The records of `entries` and the pack list their ordinals point into. */
export function packIndexRecords(entries: readonly PackIndexEntry[]): { packs: string[]; body: Buffer } {
  const packs: string[] = [];
  const ord = new Map<string, number>();
  const body = Buffer.alloc(entries.length * REC);
  entries.forEach((e, i) => {
    let o = ord.get(e.pack);
    if (o === undefined) {
      o = packs.length;
      packs.push(e.pack);
      ord.set(e.pack, o);
    }
    const at = i * REC;
    e.id.copy(body, at);
    body.writeUInt32LE(o, at + 32);
    body.writeUInt32LE(e.offset, at + 36);
    body.writeUInt32LE(e.storedLength, at + 40);
    body.writeUInt32LE(e.rawLength, at + 44);
    body.writeUInt32LE(e.flags, at + 48);
  });
  return { packs, body };
}

/** Pack of record i (ordinals are checked when decoding). */
export function recordPack(r: PackIndexRecords, i: number): string {
  return r.header.packs[r.body.readUInt32LE(i * REC + 32)]!;
}

/** Location of record i. */
export function recordLocation(r: PackIndexRecords, i: number): ChunkLocation {
  const at = i * REC;
  const b = r.body;
  return { pack: recordPack(r, i), offset: b.readUInt32LE(at + 36), storedLength: b.readUInt32LE(at + 40), rawLength: b.readUInt32LE(at + 44), flags: b.readUInt32LE(at + 48) };
}

export function encodePackIndex(
  projectId: string,
  createdAt: number,
  entries: readonly PackIndexEntry[],
  /** Exact pack lengths, when known for every pack of `entries` (else none is recorded). */
  packLengths?: ReadonlyMap<string, number>,
): Uint8Array[] {
  const { packs, body } = packIndexRecords(entries);
  const header: PackIndexHeader = { projectId, packs, createdAt };
  if (packLengths && packs.every((p) => packLengths.has(p))) header.packLengths = packs.map((p) => packLengths.get(p)!);
  return sealMetadata('pack-index', { projectId }, encodeFramed(PACK_INDEX_MAGIC, header, [body]));
}

/** Every entry as an object (GC, verify); loading a whole project's index uses decodePackIndexRecords. */
export function decodePackIndex(what: string, data: Buffer): { header: PackIndexHeader; entries: PackIndexEntry[] } {
  const r = decodePackIndexRecords(what, data);
  const entries: PackIndexEntry[] = [];
  for (let i = 0; i < r.count; i++) entries.push({ id: Buffer.from(r.body.subarray(i * REC, i * REC + ID_LEN)), ...recordLocation(r, i) });
  return { header: r.header, entries };
}

/** A pack index checked (header, body length, every pack ordinal) and left as records. */
export function decodePackIndexRecords(what: string, data: Buffer): PackIndexRecords & { header: PackIndexHeader } {
  const { header, body } = decodeFramed<PackIndexHeader>(what, PACK_INDEX_MAGIC, openMetadata('pack-index', what, data));
  if (!Array.isArray(header.packs) || !header.packs.every((p) => typeof p === 'string' && isPackId(p))) {
    throw new IntegrityError(`${what} has a bad pack list`);
  }
  const lens = header.packLengths;
  if (lens !== undefined && !(Array.isArray(lens) && lens.length === header.packs.length && lens.every((n) => Number.isSafeInteger(n) && n >= 0))) {
    throw new IntegrityError(`${what} has a bad pack length list`);
  }
  if (body.length % REC !== 0) throw new IntegrityError(`${what} has a bad body length`);
  if (typeof header.projectId !== 'string') throw new IntegrityError(`${what} names no scope`);
  assertSealedAsScope(what, data, header.projectId);
  const packCount = header.packs.length;
  for (let at = 0; at < body.length; at += REC) {
    if (body.readUInt32LE(at + 32) >= packCount) throw new IntegrityError(`${what} references an unknown pack`);
  }
  return { header, body, count: body.length / REC };
}
