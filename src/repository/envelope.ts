import { CorruptMetadataError, EncryptionKeyError } from '../lib/errors.js';
import { isSealedObject, openObject, readSealHeader, SEALED_MAGIC, sealObject, type SealedKind } from './crypto.js';
import { isKnownEncryptedScope, scopeDataKey } from './data-keys.js';

/**
 * The envelope of every metadata object on the target (manifest, disk index, pack index, pack
 * trailer): the single place where an object's plain encoding (the *.format.ts files) becomes
 * the bytes stored, and back. Chunks have theirs in `ChunkCodec.encode` / `decodeVerify`.
 *
 * Objects of a plain storage scope are stored as they are. Objects of an encrypted workload's
 * scope are sealed (crypto.ts): `LBSEAL01` | u32le headerLength | header JSON (algorithm, scope,
 * kind, nonce) | ciphertext of the plain object | tag. No plain object starts with those bytes
 * (binary objects start with their own `LB…` magic, manifests with `{`), so a reader tells the
 * two apart without a flag. The scope's data key is looked up by scope (data-keys.ts); the
 * repository unlocks a scope before it reads or writes anything of it, and an object whose
 * scope is locked is refused naming the workload, never misread.
 */
export type MetadataKind = SealedKind;

export { SEALED_MAGIC };

/** Which project (and snapshot, for per-snapshot objects) an object belongs to: the key scope. */
export interface ObjectScope {
  projectId: string;
  snapshotId?: string;
}

export const isSealed = isSealedObject;

/** The stored form of a metadata object: sealed when its scope is an encrypted workload's. */
export function sealMetadata(kind: MetadataKind, scope: ObjectScope, plain: Uint8Array[]): Uint8Array[] {
  const dek = scopeDataKey(scope.projectId);
  return dek ? sealObject(dek, scope.projectId, kind, plain) : plain;
}

/** The plain bytes of a stored metadata object; a sealed one of a locked scope is refused, naming it. */
export function openMetadata(kind: MetadataKind, what: string, stored: Buffer): Buffer {
  if (!isSealedObject(stored)) return stored;
  const { header } = readSealHeader(what, stored);
  const dek = scopeDataKey(header.scope);
  if (!dek) throw new EncryptionKeyError(`Workload ${header.scope} is encrypted and its data key is not open on this node (${what})`);
  return openObject(dek, kind, what, stored);
}

/** The storage scope a sealed object names (which data key opens it); null for a plain object. */
export function sealedScope(what: string, stored: Buffer): string | null {
  return isSealedObject(stored) ? readSealHeader(what, stored).header.scope : null;
}

/**
 * Called by each decoder once it knows which scope the object declares (its header's or
 * manifest's projectId): a sealed object must have been sealed for that scope, and a plain
 * object must not belong to an encrypted workload's scope. Whoever can write to the target but
 * has no data key could otherwise place a plaintext manifest or index in an encrypted scope and
 * have it trusted; it is refused instead (CorruptMetadataError, naming the workload).
 */
export function assertSealedAsScope(what: string, stored: Buffer, declaredScope: string, claimsEncrypted = false): void {
  if (isSealedObject(stored)) {
    const sealedFor = readSealHeader(what, stored).header.scope;
    if (sealedFor !== declaredScope) throw new CorruptMetadataError(`${what} was sealed for workload ${sealedFor} but names scope ${declaredScope}: refused`);
    return;
  }
  if (claimsEncrypted || isKnownEncryptedScope(declaredScope)) throw unsealedError(what, declaredScope);
}

/** The refusal of a plain object in an encrypted workload's scope. */
export function unsealedError(what: string, scope: string): CorruptMetadataError {
  return new CorruptMetadataError(`${what} is not sealed, but it belongs to encrypted workload ${scope}: refused (every object of an encrypted workload is sealed; this one was written by someone without its key)`);
}

/**
 * What can be checked of a sealed object without its data key (verify without the key): it is
 * sealed, its header reads, it is of `kind` and sealed for `scope`, and it is long enough to
 * hold a GCM tag. CorruptMetadataError otherwise (a plain object here is refused like above).
 */
export function checkSealedFraming(what: string, stored: Buffer, kind: MetadataKind, scope: string): void {
  if (!isSealedObject(stored)) throw unsealedError(what, scope);
  const { header } = readSealHeader(what, stored);
  if (header.kind !== kind) throw new CorruptMetadataError(`${what} is a sealed ${header.kind}, expected a ${kind}`);
  if (header.scope !== scope) throw new CorruptMetadataError(`${what} was sealed for workload ${header.scope} but belongs to ${scope}`);
  if (Buffer.from(header.nonce, 'base64').length !== 12) throw new CorruptMetadataError(`${what} has a bad nonce`);
}
