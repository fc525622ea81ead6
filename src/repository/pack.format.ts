import { ID_LEN } from './chunk-codec.js';
import { IntegrityError } from '../lib/errors.js';
import { assertSealedAsScope, openMetadata, sealMetadata } from './envelope.js';
import { decodeFramed, encodeFramed } from './framing.js';

/**
 * Pack object (`packs/<project>/<writerId>-<seq>.pack`): stored chunks back to back, then a
 * trailer that makes the pack self-describing (so indexes could be rebuilt from packs alone):
 *
 *   blob... | trailer (framed, magic LBPACK01: header {projectId, count}, body of 48-byte
 *   records id[32] | u32 offset | u32 storedLength | u32 rawLength | u32 flags) | u32le trailerLength
 *
 * Chunk reads use the pack index and never need the trailer.
 */
export const PACK_MAGIC = 'LBPACK01';
const REC = ID_LEN + 16;

export interface PackTrailerEntry {
  id: Buffer;
  offset: number;
  storedLength: number;
  rawLength: number;
  flags: number;
}

export function encodePackTrailer(projectId: string, entries: readonly PackTrailerEntry[]): Buffer {
  const body = Buffer.alloc(entries.length * REC);
  entries.forEach((e, i) => {
    const at = i * REC;
    e.id.copy(body, at);
    body.writeUInt32LE(e.offset, at + 32);
    body.writeUInt32LE(e.storedLength, at + 36);
    body.writeUInt32LE(e.rawLength, at + 40);
    body.writeUInt32LE(e.flags, at + 44);
  });
  const framed = Buffer.concat(sealMetadata('pack-trailer', { projectId }, encodeFramed(PACK_MAGIC, { projectId, count: entries.length }, [body])));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(framed.length);
  return Buffer.concat([framed, len]);
}

/**
 * Entries of a pack's trailer; `pack` may be the whole pack or just its tail (trailer + length
 * word). With `projectId`, a trailer of another project is refused (IntegrityError).
 */
export function decodePackTrailer(what: string, pack: Buffer, projectId?: string): PackTrailerEntry[] {
  const len = pack.length >= 4 ? pack.readUInt32LE(pack.length - 4) : 0;
  const framed = pack.subarray(Math.max(0, pack.length - 4 - len), pack.length - 4);
  const { header, body } = decodeFramed<{ projectId?: unknown; count?: unknown }>(`${what} trailer`, PACK_MAGIC, openMetadata('pack-trailer', `${what} trailer`, framed));
  if (projectId !== undefined && header.projectId !== projectId) throw new IntegrityError(`${what} belongs to another project`);
  if (typeof header.projectId !== 'string') throw new IntegrityError(`${what} trailer names no scope`);
  assertSealedAsScope(`${what} trailer`, framed, header.projectId);
  if (body.length % REC !== 0 || header.count !== body.length / REC) throw new IntegrityError(`${what} trailer has a bad record count`);
  const out: PackTrailerEntry[] = [];
  for (let at = 0; at + REC <= body.length; at += REC) {
    out.push({
      id: Buffer.from(body.subarray(at, at + 32)),
      offset: body.readUInt32LE(at + 32),
      storedLength: body.readUInt32LE(at + 36),
      rawLength: body.readUInt32LE(at + 40),
      flags: body.readUInt32LE(at + 44),
    });
  }
  return out;
}
