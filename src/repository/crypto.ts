import { createCipheriv, createDecipheriv, createHmac, randomFillSync } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CorruptMetadataError } from '../lib/errors.js';

/**
 * The sealing primitives of encrypted workloads (issue 17 item 4; README.md "Encrypted
 * workloads"): AES-256-GCM through node:crypto (OpenSSL, AES-NI), one random 96-bit nonce per
 * sealed object. Pure and synchronous, like chunk-codec.ts: worker threads call them too.
 *
 * - A stored chunk (the compressed-or-raw form) is sealed as nonce | ciphertext | tag, with the
 *   chunk id and its inner flags as additional data, so a copy cannot be passed off as another
 *   chunk, nor a raw one as compressed.
 * - A metadata object (manifest, disk index, pack index, pack trailer) is sealed whole as
 *   `LBSEAL01` | u32le headerLength | header JSON {v, alg, scope, kind, nonce} | ciphertext |
 *   tag; magic, length and header are the additional data. The header names the storage scope,
 *   so a reader knows which data key opens it before it reads anything else.
 * - A data key is wrapped by the key-encryption key the same way, with the scope as additional
 *   data (data-keys.ts stores the result on the target).
 */
export const SEAL_ALG = 'aes-256-gcm';
export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
/** Bytes a sealed chunk has beyond its stored form. */
export const CHUNK_SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;
export const SEALED_MAGIC = 'LBSEAL01';

export type SealedKind = 'manifest' | 'disk-index' | 'pack-index' | 'pack-trailer';

export interface SealHeader {
  v: 1;
  alg: typeof SEAL_ALG;
  /** The storage scope (an encrypted workload's id): which data key opens the object. */
  scope: string;
  kind: SealedKind;
  /** base64 of the 12-byte nonce. */
  nonce: string;
}

/**
 * node:crypto has no update-into: every sealed or opened chunk gets its output in a new
 * ArrayBuffer outside the JS heap. V8 frees those only at a GC, and with almost no JS garbage
 * it runs one only when a thread's external memory grew by about 64 MiB — per thread, so a
 * restore's workers each held up to that much dead ciphertext output (measured on the 256 MiB
 * bench disk: encrypted restore peak RSS 292 MiB vs 209 MiB plain). A young-generation GC after
 * every PACE_BYTES of output frees them (they die young; it takes well under a millisecond).
 */
const PACE_BYTES = 4 * 1024 * 1024;
let sincePace = 0;
let minorGc: ((o: { type: 'minor' }) => void) | null | undefined;

function paceGarbage(bytes: number): void {
  sincePace += bytes;
  if (sincePace < PACE_BYTES) return;
  sincePace = 0;
  if (minorGc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      minorGc = runInNewContext('gc') as (o: { type: 'minor' }) => void;
    } catch {
      minorGc = null; // not available: V8's own pacing applies
    }
  }
  minorGc?.({ type: 'minor' });
}

// One per thread: GCM consumes the additional data in setAAD, so the buffer is free right after.
const chunkAad = Buffer.alloc(33);

function setChunkAad(id: Uint8Array, innerFlags: number): Buffer {
  chunkAad.set(id.subarray(0, 32), 0);
  chunkAad[32] = innerFlags & 0xff;
  return chunkAad;
}

/**
 * Seals a chunk's stored form into `dst` (at least stored.length + CHUNK_SEAL_OVERHEAD bytes) as
 * nonce | AES-256-GCM(stored) | tag; `innerFlags` are the flags of `stored` (compressed or not).
 * Returns the sealed length.
 */
export function sealChunkInto(dek: Uint8Array, id: Uint8Array, innerFlags: number, stored: Uint8Array, dst: Buffer): number {
  const nonce = randomFillSync(dst, 0, NONCE_BYTES).subarray(0, NONCE_BYTES);
  const c = createCipheriv(SEAL_ALG, dek, nonce);
  c.setAAD(setChunkAad(id, innerFlags));
  c.update(stored).copy(dst, NONCE_BYTES);
  c.final();
  c.getAuthTag().copy(dst, NONCE_BYTES + stored.length);
  paceGarbage(stored.length);
  return stored.length + CHUNK_SEAL_OVERHEAD;
}

/**
 * The stored (compressed-or-raw) form inside a sealed chunk, or why it cannot be opened (a
 * message; never throws for bad data, like ChunkCodec.decodeVerify). Nothing is returned
 * before the tag checked out: a wrong key or a flipped byte never yields bytes.
 */
export function openChunk(dek: Uint8Array | undefined, id: Uint8Array, innerFlags: number, sealed: Uint8Array): Buffer | string {
  if (!dek) return 'chunk is encrypted and its data key is not available';
  if (sealed.length < CHUNK_SEAL_OVERHEAD) return `sealed chunk is truncated (${sealed.length} bytes)`;
  const d = createDecipheriv(SEAL_ALG, dek, sealed.subarray(0, NONCE_BYTES));
  d.setAAD(setChunkAad(id, innerFlags));
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plain = d.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  paceGarbage(plain.length);
  try {
    d.final();
  } catch {
    return 'sealed chunk failed authentication (damaged, or sealed under another key)';
  }
  return plain;
}

/** The sealed form of a metadata object's plain parts. */
export function sealObject(dek: Uint8Array, scope: string, kind: SealedKind, plain: readonly Uint8Array[]): Uint8Array[] {
  const nonce = randomFillSync(Buffer.alloc(NONCE_BYTES));
  const header: SealHeader = { v: 1, alg: SEAL_ALG, scope, kind, nonce: nonce.toString('base64') };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  const prefix = [Buffer.from(SEALED_MAGIC, 'latin1'), len, json];
  const c = createCipheriv(SEAL_ALG, dek, nonce);
  c.setAAD(Buffer.concat(prefix));
  const parts: Uint8Array[] = [...prefix];
  for (const p of plain) parts.push(c.update(p));
  c.final();
  parts.push(c.getAuthTag());
  return parts;
}

export function isSealedObject(stored: Uint8Array): boolean {
  return stored.length >= 8 && Buffer.from(stored.buffer, stored.byteOffset, 8).toString('latin1') === SEALED_MAGIC;
}

/** The header of a sealed object (which scope's key opens it); CorruptMetadataError when unreadable. */
export function readSealHeader(what: string, stored: Buffer): { header: SealHeader; bodyAt: number } {
  if (stored.length < 12 + TAG_BYTES) throw new CorruptMetadataError(`${what} is truncated (sealed, ${stored.length} bytes)`);
  const hlen = stored.readUInt32LE(8);
  if (12 + hlen + TAG_BYTES > stored.length) throw new CorruptMetadataError(`${what} has a bad sealed header length`);
  let h: SealHeader;
  try {
    h = JSON.parse(stored.subarray(12, 12 + hlen).toString('utf8')) as SealHeader;
  } catch {
    throw new CorruptMetadataError(`${what} has an unreadable sealed header`);
  }
  const ok = typeof h === 'object' && h !== null && h.v === 1 && h.alg === SEAL_ALG && typeof h.scope === 'string' && typeof h.nonce === 'string';
  if (!ok) throw new CorruptMetadataError(`${what} has a sealed header this Lifeboat does not know`);
  return { header: h, bodyAt: 12 + hlen };
}

/** The plain bytes of a sealed object; CorruptMetadataError when the tag does not check out. */
export function openObject(dek: Uint8Array, kind: SealedKind, what: string, stored: Buffer): Buffer {
  const { header, bodyAt } = readSealHeader(what, stored);
  if (header.kind !== kind) throw new CorruptMetadataError(`${what} is a sealed ${header.kind}, expected a ${kind}`);
  const nonce = Buffer.from(header.nonce, 'base64');
  if (nonce.length !== NONCE_BYTES) throw new CorruptMetadataError(`${what} has a bad nonce`);
  const d = createDecipheriv(SEAL_ALG, dek, nonce);
  d.setAAD(stored.subarray(0, bodyAt));
  d.setAuthTag(stored.subarray(stored.length - TAG_BYTES));
  const plain = d.update(stored.subarray(bodyAt, stored.length - TAG_BYTES));
  try {
    d.final();
  } catch {
    throw new CorruptMetadataError(`${what} failed authentication (damaged, or sealed under another data key)`);
  }
  return plain;
}

/** A data key wrapped by a key-encryption key: base64 nonce and ciphertext | tag. */
export interface WrappedKey {
  nonce: string;
  wrapped: string;
}

export function wrapKey(kek: Uint8Array, dek: Uint8Array, label: string): WrappedKey {
  const nonce = randomFillSync(Buffer.alloc(NONCE_BYTES));
  const c = createCipheriv(SEAL_ALG, kek, nonce);
  c.setAAD(Buffer.from(label, 'utf8'));
  const ct = Buffer.concat([c.update(dek), c.final(), c.getAuthTag()]);
  return { nonce: nonce.toString('base64'), wrapped: ct.toString('base64') };
}

/** The data key, or null when `kek` does not open it (another key, or a damaged record). */
export function unwrapKey(kek: Uint8Array, w: WrappedKey, label: string): Buffer | null {
  const nonce = Buffer.from(w.nonce, 'base64');
  const ct = Buffer.from(w.wrapped, 'base64');
  if (nonce.length !== NONCE_BYTES || ct.length !== KEY_BYTES + TAG_BYTES) return null;
  try {
    const d = createDecipheriv(SEAL_ALG, kek, nonce);
    d.setAAD(Buffer.from(label, 'utf8'));
    d.setAuthTag(ct.subarray(KEY_BYTES));
    return Buffer.concat([d.update(ct.subarray(0, KEY_BYTES)), d.final()]);
  } catch {
    return null;
  }
}

/** A key's public fingerprint (16 hex): tells two key-encryption keys apart without revealing either. */
export function keyFingerprint(key: Uint8Array): string {
  return createHmac('sha256', key).update('lifeboat/kek-id/v1').digest('hex').slice(0, 16);
}
