import { randomBytes } from 'node:crypto';
import type { Backend } from '../backend/backend.js';
import { CorruptMetadataError, NotFoundError, ValidationError } from '../lib/errors.js';
import { CONFIG_KEY } from './keys.js';
import { CHUNK_ID_HASHES, checkFormat, CURRENT_FORMAT_VERSION, DEFAULT_CHUNK_ID_HASH, formatString, type ChunkIdHash, type RepoFormat } from './format.js';

/**
 * Repository config (`config.json`), written once by `init` and never changed afterwards.
 * `secret` keys the chunk ids (see chunk-codec.ts). It is stored on the target: the keyed ids
 * separate tenants from each other through the API (no cross-project dedup probing); they do
 * not protect data from whoever can read the target itself (encryption at rest is not in v1).
 * `format` names the format version (format.ts); `chunkIdHash` and `features` exist since v2.
 */
export interface RepoConfig {
  /** `lifeboat-repo/v<N>` (format.ts). */
  format: string;
  /** Since v2 (v1: always hmac-sha256). */
  chunkIdHash?: ChunkIdHash;
  /** Since v2: features every reader must know (format.ts KNOWN_FEATURES). */
  features?: string[];
  id: string;
  createdAt: number;
  /** Fixed chunk size in bytes: a power of two between 4 KiB and 4 MiB. */
  chunkSize: number;
  /** zstd level used for new chunks (readers do not need it). */
  zstdLevel: number;
  /** Packs are closed once they reach this many bytes. */
  packSize: number;
  /** base64 of 32 random bytes. */
  secret: string;
}

export interface InitOptions {
  chunkSize?: number;
  /** Chunk id function of a new repository (default DEFAULT_CHUNK_ID_HASH). */
  chunkIdHash?: ChunkIdHash;
  zstdLevel?: number;
  packSize?: number;
}

export const DEFAULT_CHUNK_SIZE = 64 * 1024;
export const DEFAULT_ZSTD_LEVEL = 1;
export const DEFAULT_PACK_SIZE = 32 * 1024 * 1024;

export function newConfig(opts: InitOptions, now: number): RepoConfig {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < 4096 || chunkSize > 4 << 20 || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new ValidationError(`chunk size must be a power of two between 4 KiB and 4 MiB, got ${chunkSize}`);
  }
  const zstdLevel = opts.zstdLevel ?? DEFAULT_ZSTD_LEVEL;
  if (!Number.isInteger(zstdLevel) || zstdLevel < -7 || zstdLevel > 19) throw new ValidationError(`bad zstd level ${zstdLevel}`);
  const packSize = opts.packSize ?? DEFAULT_PACK_SIZE;
  if (!Number.isInteger(packSize) || packSize < 64 * 1024 || packSize > 1 << 30) throw new ValidationError(`bad pack size ${packSize}`);
  const chunkIdHash = opts.chunkIdHash ?? DEFAULT_CHUNK_ID_HASH;
  if (!CHUNK_ID_HASHES.includes(chunkIdHash)) throw new ValidationError(`unknown chunk id hash ${chunkIdHash} (known: ${CHUNK_ID_HASHES.join(', ')})`);
  return {
    format: formatString(CURRENT_FORMAT_VERSION),
    chunkIdHash,
    features: [],
    id: randomBytes(16).toString('hex'),
    createdAt: now,
    chunkSize,
    zstdLevel,
    packSize,
    secret: randomBytes(32).toString('base64'),
  };
}

/**
 * The repository's config and its checked format, or null when the target has none. A format
 * this code does not read throws UnsupportedFormatError (versions named) before anything else.
 */
export async function readConfig(backend: Backend): Promise<{ config: RepoConfig; format: RepoFormat } | null> {
  let data: Buffer;
  try {
    data = await backend.get(CONFIG_KEY);
  } catch (e) {
    if (e instanceof NotFoundError) return null;
    throw e;
  }
  let c: RepoConfig;
  try {
    c = JSON.parse(data.toString('utf8')) as RepoConfig;
  } catch {
    throw new CorruptMetadataError('repository config is not valid JSON');
  }
  if (typeof c !== 'object' || c === null) throw new CorruptMetadataError('repository config is damaged');
  const format = checkFormat(c);
  if (typeof c.secret !== 'string' || Buffer.from(c.secret, 'base64').length !== 32 || !(c.chunkSize > 0)) {
    throw new CorruptMetadataError('repository config is damaged');
  }
  return { config: c, format };
}
