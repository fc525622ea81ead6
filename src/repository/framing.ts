import { CorruptMetadataError } from '../lib/errors.js';
import { sha256 } from './chunk-codec.js';

/**
 * The envelope of every binary metadata object (pack index, disk index):
 *
 *   magic (8 ASCII bytes, carries the format version) | u32le headerLength | header (UTF-8 JSON)
 *   | body (format-specific fixed-size records) | sha256 of everything before it (32 bytes)
 *
 * A truncated, bit-flipped or foreign object fails `decodeFramed` with an IntegrityError that
 * names the object; it never crashes the process or yields half-parsed data.
 */
export function encodeFramed(magic: string, header: unknown, body: readonly Uint8Array[]): Uint8Array[] {
  const m = Buffer.from(magic, 'ascii');
  if (m.length !== 8) throw new Error('magic must be 8 bytes');
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  const parts = [m, len, json, ...body];
  return [...parts, sha256(...parts)];
}

export function decodeFramed<H>(what: string, magic: string, data: Buffer): { header: H; body: Buffer } {
  if (data.length < 8 + 4 + 32) throw new CorruptMetadataError(`${what} is truncated (${data.length} bytes)`);
  const sum = data.subarray(data.length - 32);
  const content = data.subarray(0, data.length - 32);
  if (!sha256(content).equals(sum)) throw new CorruptMetadataError(`${what} is corrupt or truncated (checksum mismatch)`);
  const m = content.subarray(0, 8).toString('ascii');
  if (m !== magic) throw new CorruptMetadataError(`${what} has unknown format ${JSON.stringify(m)} (expected ${magic})`);
  const hlen = content.readUInt32LE(8);
  if (12 + hlen > content.length) throw new CorruptMetadataError(`${what} has a bad header length`);
  let header: H;
  try {
    header = JSON.parse(content.subarray(12, 12 + hlen).toString('utf8')) as H;
  } catch {
    throw new CorruptMetadataError(`${what} has an unreadable header`);
  }
  if (typeof header !== 'object' || header === null) throw new CorruptMetadataError(`${what} has an unreadable header`);
  return { header, body: content.subarray(12 + hlen) };
}
