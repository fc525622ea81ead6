import { CorruptMetadataError } from '../lib/errors.js';

/**
 * The repository format version (design: README.md, "Format version"). `config.json` carries
 * `format: "lifeboat-repo/v<N>"`; every reader goes through `Repository.open`, which checks it
 * before touching any other object, so no reader ever guesses at a layout it does not know.
 *
 * - v1: repositories written before the version was explicit. Chunk ids HMAC-SHA256, no
 *   features, no sealed objects. Still read (and written to: v1 and v2 objects are the same).
 * - v2: config also names `chunkIdHash` and `features` (both checked); chunk flag bit 2 and
 *   the `LBSEAL01` envelope seal encrypted workloads' objects (feature `sealed-aes-256-gcm`).
 *
 * Not format changes (readers of every version decode them, nothing recorded): the zstd level
 * and parameters, and which chunks the writer stores raw (flags 0) — by zstd's failure to shrink
 * them or by the compressibility estimate that skips zstd (chunk-codec.ts looksIncompressible).
 *
 * Rules for the next change: a new optional header field needs no version; a change an older
 * reader would misread needs either a new `features` entry (when only some repositories use it)
 * or a new version (when every new repository does). Readers refuse unknown versions, hashes and
 * features by name, never by guessing.
 */
export const FORMAT_PREFIX = 'lifeboat-repo/v';
export const CURRENT_FORMAT_VERSION = 2;
/** Oldest version this code reads. */
export const OLDEST_FORMAT_VERSION = 1;

/** Chunk id functions this code knows (README.md, "Chunks"). */
export const CHUNK_ID_HASHES = ['hmac-sha256', 'blake3-keyed'] as const;
export type ChunkIdHash = (typeof CHUNK_ID_HASHES)[number];
/**
 * What new repositories are written with: keyed BLAKE3 hashes 2–3× faster than HMAC-SHA256 on
 * one core (measured by the bench's machine limits, bench/README.md).
 */
export const DEFAULT_CHUNK_ID_HASH: ChunkIdHash = 'blake3-keyed';

/**
 * The repository holds sealed objects (encrypted workloads, issue 17): chunk flag bit 2 and the
 * `LBSEAL01` envelope (crypto.ts), AES-256-GCM. Added to `features` when the first data key is
 * created (data-keys.ts), so a reader without it refuses the target by name.
 */
export const SEALED_FEATURE = 'sealed-aes-256-gcm';

/**
 * Features a repository may require of its readers; a repository listing one this code does
 * not know is refused (the list is how a later change stays out of older hands).
 */
export const KNOWN_FEATURES: readonly string[] = [SEALED_FEATURE];

/**
 * The target was written in a format this code does not read (newer, unknown, or with
 * features it lacks). An engine fault (500 to clients), never a guess; the message names the
 * versions so an operator knows which Lifeboat reads it.
 */
export class UnsupportedFormatError extends CorruptMetadataError {}

export function formatString(version: number): string {
  return `${FORMAT_PREFIX}${version}`;
}

function readable(): string {
  return `v${OLDEST_FORMAT_VERSION}–v${CURRENT_FORMAT_VERSION}`;
}

/** The version a config's `format` field names; throws UnsupportedFormatError for anything else. */
export function parseFormatVersion(format: unknown): number {
  const m = typeof format === 'string' ? /^lifeboat-repo\/v([0-9]{1,6})$/.exec(format) : null;
  if (!m) {
    throw new UnsupportedFormatError(`the backup target is not a Lifeboat repository this version knows (format ${JSON.stringify(format)}; this Lifeboat reads ${FORMAT_PREFIX}1 to ${FORMAT_PREFIX}${CURRENT_FORMAT_VERSION})`);
  }
  const v = Number(m[1]);
  if (v > CURRENT_FORMAT_VERSION) {
    throw new UnsupportedFormatError(`the backup target uses repository format v${v}, newer than this Lifeboat reads (${readable()}): upgrade Lifeboat to use it`);
  }
  if (v < OLDEST_FORMAT_VERSION) throw new UnsupportedFormatError(`repository format v${v} is no longer read (this Lifeboat reads ${readable()})`);
  return v;
}

/** What a reader needs to know of the format, normalised over the versions (v1 → its fixed choices). */
export interface RepoFormat {
  version: number;
  chunkIdHash: ChunkIdHash;
  features: string[];
}

/** Checks the format fields of a parsed config.json; throws UnsupportedFormatError naming what it does not know. */
export function checkFormat(config: { format?: unknown; chunkIdHash?: unknown; features?: unknown }): RepoFormat {
  const version = parseFormatVersion(config.format);
  if (version === 1) return { version, chunkIdHash: 'hmac-sha256', features: [] };
  const hash = config.chunkIdHash;
  if (!CHUNK_ID_HASHES.includes(hash as ChunkIdHash)) {
    throw new UnsupportedFormatError(`the backup target's chunk ids use ${JSON.stringify(hash)}, which this Lifeboat does not know (it knows ${CHUNK_ID_HASHES.join(', ')}): upgrade Lifeboat to use it`);
  }
  const features = config.features;
  if (!Array.isArray(features) || !features.every((f) => typeof f === 'string')) throw new CorruptMetadataError('repository config is damaged (features)');
  const unknown = features.filter((f) => !KNOWN_FEATURES.includes(f));
  if (unknown.length > 0) {
    throw new UnsupportedFormatError(`the backup target requires repository features this Lifeboat lacks (${unknown.join(', ')}; format v${version}): upgrade Lifeboat to use it`);
  }
  return { version, chunkIdHash: hash as ChunkIdHash, features: features as string[] };
}
