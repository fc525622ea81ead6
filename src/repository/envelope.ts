import { UnsupportedFormatError } from './format.js';

/**
 * The envelope of every metadata object on the target (manifest, disk index, pack index, pack
 * trailer): the single place where an object's plain encoding (the *.format.ts files) becomes
 * the bytes stored, and back. Chunks have theirs in `ChunkCodec.encode` / `decodeVerify`.
 *
 * Today objects are stored plain. Format v2 reserves the sealed form for encryption (issue 17
 * item 4): `LBSEAL01` (8 bytes) | u32le headerLength | header JSON (algorithm, key id, nonce…)
 * | ciphertext of the plain object | tag. No plain object starts with those bytes (binary
 * objects start with their own `LB…` magic, manifests with `{`), so a reader tells the two
 * apart without a flag, and a reader without the key refuses the object by name instead of
 * misreading it. Encryption implements `sealMetadata`/`openMetadata` (with a key source in
 * `scope`); callers do not change.
 */
export type MetadataKind = 'manifest' | 'disk-index' | 'pack-index' | 'pack-trailer';

export const SEALED_MAGIC = 'LBSEAL01';

/** Which project (and snapshot, for per-snapshot objects) an object belongs to: the key scope. */
export interface ObjectScope {
  projectId: string;
  snapshotId?: string;
}

export function isSealed(stored: Uint8Array): boolean {
  return stored.length >= 8 && Buffer.from(stored.buffer, stored.byteOffset, 8).toString('latin1') === SEALED_MAGIC;
}

/** The stored form of a metadata object (today: the plain parts themselves). */
export function sealMetadata(_kind: MetadataKind, _scope: ObjectScope, plain: Uint8Array[]): Uint8Array[] {
  return plain;
}

/** The plain bytes of a stored metadata object; a sealed object is refused, naming it. */
export function openMetadata(kind: MetadataKind, what: string, stored: Buffer): Buffer {
  if (isSealed(stored)) {
    throw new UnsupportedFormatError(`${what} is encrypted (${SEALED_MAGIC} ${kind}) and this Lifeboat cannot decrypt it`);
  }
  return stored;
}
