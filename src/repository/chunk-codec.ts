import { createHash, createHmac, timingSafeEqual, type Hash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { copyBytes } from '../lib/copy-bytes.js';
import type { ChunkIdHash } from './format.js';
import { openChunk } from './crypto.js';

/**
 * Chunk identity and encoding, shared by the repository (GC, verify) and the datamover's
 * worker threads. Pure and synchronous; callers choose the thread.
 *
 * - Chunk id = keyed hash of the raw bytes under the project's key (ChunkIdKey): keyed BLAKE3
 *   (new repositories) or HMAC-SHA256 (format v1 and v2 repositories that say so). The key is
 *   derived from the repository secret and the project id, so equal data in two projects gets
 *   different ids: dedup stays inside a project and one tenant cannot probe for another's content.
 * - Stored form = zstd frame (flag COMPRESSED) or the raw bytes when zstd does not shrink them
 *   (PBS rule), so random data costs no decompression on restore.
 */

// zstd-napi's low-level binding lets us compress into preallocated buffers (no per-chunk alloc).
const require = createRequire(import.meta.url);
// Native keyed BLAKE3 (prebuilt binary inside the npm package; the WASM builds are slower than SHA-256).
interface Blake3Binding {
  Blake3Hasher: { newKeyed(key: Buffer): { reset(): void; update(input: Uint8Array): unknown; digestBuffer(): Buffer } };
}
const blake = loadBlake3();

/**
 * The package's own loader asks `process.report.getReport()` whether the C library is musl
 * before it picks a prebuilt binary: 6-25 ms of CPU per thread on the bench VM, paid by the
 * main thread and by every chunk worker at start. On glibc Linux (no musl loader on the
 * system) the glibc build is required directly, from the package's own location as its loader
 * does; anything else, or a failure, goes through the package's loader.
 */
function loadBlake3(): Blake3Binding {
  const musl = { x64: '/lib/ld-musl-x86_64.so.1', arm64: '/lib/ld-musl-aarch64.so.1' }[process.arch as 'x64' | 'arm64'];
  if (process.platform === 'linux' && musl && !existsSync(musl)) {
    try {
      return createRequire(require.resolve('@napi-rs/blake-hash'))(`@napi-rs/blake-hash-linux-${process.arch}-gnu`) as Blake3Binding;
    } catch {
      // not installed, or not loadable here: the package decides
    }
  }
  return require('@napi-rs/blake-hash') as Blake3Binding;
}
interface ZstdBinding {
  CCtx: new () => {
    compress(dst: Uint8Array, src: Uint8Array, level: number): number;
    compress2(dst: Uint8Array, src: Uint8Array): number;
    setParameter(param: number, value: number): void;
  };
  CParameter: { compressionLevel: number; minMatch: number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  compressBound(n: number): number;
}
const zstd = require('zstd-napi/binding') as ZstdBinding;

export const FLAG_COMPRESSED = 1;
/**
 * Encrypted workloads (format v2 feature `sealed-aes-256-gcm`, crypto.ts): the stored bytes are
 * sealed, the authenticated ciphertext of the compressed-or-raw form (whose flag stays set).
 */
export const FLAG_SEALED = 2;
/** Flag bits this code decodes; any other bit makes a stored chunk undecodable (refused, never guessed). */
const KNOWN_FLAGS = FLAG_COMPRESSED | FLAG_SEALED;
export const ID_LEN = 32;
export const ZERO_ID = Buffer.alloc(ID_LEN);

/** True when ids[off, off + 32) is the zero id (a hole). A plain loop: no native call per id. */
export function isZeroId(ids: Uint8Array, off: number): boolean {
  for (let i = off; i < off + ID_LEN; i++) if (ids[i] !== 0) return false;
  return true;
}

/** What computes a project's chunk ids: the repository's hash function and the project's key. Plain data: posted to workers. */
export interface ChunkIdKey {
  hash: ChunkIdHash;
  key: Uint8Array;
  /** The storage scope's data key when its chunks are sealed (an encrypted workload; data-keys.ts). */
  dek?: Uint8Array;
}

/** The project's chunk id key: 32 bytes derived from the repository secret, one label per hash function. */
export function deriveProjectKey(repoSecret: Buffer, projectId: string, hash: ChunkIdHash): ChunkIdKey {
  const label = hash === 'hmac-sha256' ? 'v1' : hash; // v1: the label every HMAC repository has used
  return { hash, key: createHmac('sha256', repoSecret).update(`lifeboat/chunk-id/${label}/${projectId}`).digest() };
}

/** One chunk's id, the slow way (tests, single checks); hot paths use a ChunkHasher. */
export function chunkId(k: ChunkIdKey, raw: Uint8Array): Buffer {
  if (k.hash === 'blake3-keyed') return new Blake3ChunkHasher(k.key).id(raw);
  return createHmac('sha256', k.key).update(raw).digest();
}

/** Computes chunk ids under one key, many chunks; one per thread and key. */
export interface ChunkHasher {
  /** The scope's data key when its chunks are sealed: decodeVerify opens them with it. */
  readonly dek?: Uint8Array;
  id(raw: Uint8Array): Buffer;
  /** Writes the id of `raw` to dst[off, off + 32). */
  idInto(raw: Uint8Array, dst: Uint8Array, off: number): void;
}

export function newChunkHasher(k: ChunkIdKey): ChunkHasher {
  const h = k.hash === 'blake3-keyed' ? new Blake3ChunkHasher(k.key) : new HmacChunkHasher(k.key);
  return k.dek ? Object.assign(h, { dek: Buffer.from(k.dek) }) : h;
}

/** Keyed BLAKE3 (32-byte key, 32-byte output): one native hasher reset per chunk. */
class Blake3ChunkHasher implements ChunkHasher {
  private readonly h;
  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new Error('a BLAKE3 chunk id key has 32 bytes');
    this.h = blake.Blake3Hasher.newKeyed(Buffer.from(key));
  }
  id(raw: Uint8Array): Buffer {
    this.h.reset(); // back to the keyed initial state
    this.h.update(raw);
    return this.h.digestBuffer();
  }
  idInto(raw: Uint8Array, dst: Uint8Array, off: number): void {
    dst.set(this.id(raw), off);
  }
}

/**
 * HMAC-SHA256 with one key, many messages (RFC 2104 spelled out): the SHA-256 states after the
 * inner and outer key blocks are computed once and cloned per chunk, which skips the per-call
 * key import and object setup of createHmac. Same output as chunkId (tested).
 */
export class HmacChunkHasher implements ChunkHasher {
  private readonly inner: Hash;
  private readonly outer: Hash;

  constructor(projectKey: Uint8Array) {
    let k: Buffer = Buffer.from(projectKey);
    if (k.length > 64) k = createHash('sha256').update(k).digest();
    const ipad = Buffer.alloc(64, 0x36);
    const opad = Buffer.alloc(64, 0x5c);
    for (let i = 0; i < k.length; i++) {
      ipad[i]! ^= k[i]!;
      opad[i]! ^= k[i]!;
    }
    this.inner = createHash('sha256').update(ipad);
    this.outer = createHash('sha256').update(opad);
  }

  id(raw: Uint8Array): Buffer {
    return this.outer.copy().update(this.inner.copy().update(raw).digest()).digest();
  }

  /** Writes the id of `raw` to dst[off, off + 32). */
  idInto(raw: Uint8Array, dst: Uint8Array, off: number): void {
    dst.set(this.id(raw), off);
  }
}

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function idEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function compressBound(n: number): number {
  return zstd.compressBound(n);
}

/** Bytes of a chunk the compressibility estimate looks at: SAMPLE_WINDOWS windows of SAMPLE_WINDOW bytes, spread evenly. */
const SAMPLE_WINDOWS = 16;
const SAMPLE_WINDOW = 64;
const SAMPLE_BYTES = SAMPLE_WINDOWS * SAMPLE_WINDOW;
/** x·log2(x) for every count a sample can hold (the entropy sum without a log per symbol). */
const X_LOG2_X = Float64Array.from({ length: SAMPLE_BYTES + 1 }, (_, x) => (x > 1 ? x * Math.log2(x) : 0));
/**
 * Sampled order-0 entropy (bits per byte) at or above which a chunk is stored raw without
 * running zstd. Uniform random bytes measure ≈ 7.82 on a 1 KiB sample (the estimate is biased
 * low by ≈ 0.18); text ≈ 4–5, database pages and binaries ≈ 3–6.5, a half-random half-text chunk
 * ≈ 7.0. Chosen on the bench mixes (bench/codec-strategy.ts, bench/README.md).
 */
export const RAW_ENTROPY_BITS = 7.6;

/**
 * Cheap compressibility estimate: the order-0 entropy of a 1 KiB sample of the chunk (16 windows
 * of 64 bytes spread over it) — about 1/64 of the bytes zstd would read. True when the sample
 * looks like random or already-compressed data, which zstd could not shrink either. Chunks
 * smaller than 4 KiB are never judged (zstd is cheap on them). `hist` is caller scratch (256).
 */
export function looksIncompressible(raw: Uint8Array, hist: Uint32Array): boolean {
  const n = raw.length;
  if (n < 4096) return false;
  hist.fill(0);
  const step = Math.floor((n - SAMPLE_WINDOW) / (SAMPLE_WINDOWS - 1));
  for (let w = 0; w < SAMPLE_WINDOWS; w++) {
    const start = w * step;
    for (let i = start; i < start + SAMPLE_WINDOW; i++) hist[raw[i]!]!++;
  }
  let sum = 0;
  for (let b = 0; b < 256; b++) sum += X_LOG2_X[hist[b]!]!;
  const bits = Math.log2(SAMPLE_BYTES) - sum / SAMPLE_BYTES;
  return bits >= RAW_ENTROPY_BITS;
}

/** One per thread: holds the zstd contexts. */
export class ChunkCodec {
  private readonly cctx = new zstd.CCtx();
  private readonly dctx = new zstd.DCtx();
  private readonly hist = new Uint32Array(256);
  private level: number | null = null;

  /** `estimate` false runs zstd on every chunk (benchmarks compare both). */
  constructor(private readonly estimate = true) {}

  /**
   * zstd parameters for `level`. Levels 1 and below (the "fast" strategy) get minMatch 7: on the
   * bench disk's text 10-15 % faster for +2 % compressed size (+0.7 % repository); the frame
   * format is unchanged, so readers need nothing.
   */
  private setLevel(level: number): void {
    if (this.level === level) return;
    this.cctx.setParameter(zstd.CParameter.compressionLevel, level);
    this.cctx.setParameter(zstd.CParameter.minMatch, level <= 1 ? 7 : 0); // 0 = the level's default
    this.level = level;
  }

  /**
   * Compresses `raw` into `dst` (which must hold compressBound(raw.length)) and returns the
   * compressed length, or 0 when zstd does not shrink the chunk: then it is stored raw (flags
   * 0) and the caller uses `raw` itself, no copy. A chunk whose sample looks random
   * (looksIncompressible) is stored raw without running zstd at all: the stored form is the
   * same one zstd's failure gives (flags 0), so readers of every format version read it.
   */
  compressInto(raw: Uint8Array, dst: Uint8Array, level: number): number {
    if (this.estimate && looksIncompressible(raw, this.hist)) return 0;
    this.setLevel(level);
    const n = this.cctx.compress2(dst, raw);
    return n < raw.length ? n : 0;
  }

  /** compressInto, with the raw bytes copied to `dst` when stored raw: the stored form and its flags. */
  encode(raw: Uint8Array, dst: Uint8Array, level: number): { length: number; flags: number } {
    const n = this.compressInto(raw, dst, level);
    if (n > 0) return { length: n, flags: FLAG_COMPRESSED };
    copyBytes(dst, 0, raw);
    return { length: raw.length, flags: 0 };
  }

  /**
   * Decodes a stored chunk into `dst` (exactly rawLength bytes) and checks its id. Returns an
   * error message (never throws for bad data): the caller names disk and chunk in its error.
   */
  decodeVerify(
    stored: Uint8Array,
    flags: number,
    dst: Uint8Array,
    hasher: ChunkHasher,
    expectedId: Uint8Array,
  ): string | null {
    let raw: Uint8Array;
    if (flags & ~KNOWN_FLAGS) return `unknown stored-form flags 0x${flags.toString(16)}`;
    if (flags & FLAG_SEALED) {
      // Encrypted workload (crypto.ts): opened, tag checked, before anything is decoded.
      const opened = openChunk(hasher.dek, expectedId, flags & ~FLAG_SEALED, stored);
      if (typeof opened === 'string') return opened;
      stored = opened;
      flags &= ~FLAG_SEALED;
    }
    if (flags & FLAG_COMPRESSED) {
      let n: number;
      try {
        n = this.dctx.decompress(dst, stored);
      } catch (e) {
        return `cannot decompress: ${(e as Error).message}`;
      }
      if (n !== dst.length) return `decompressed to ${n} bytes, expected ${dst.length}`;
      raw = dst;
    } else {
      if (stored.length !== dst.length) return `stored length ${stored.length}, expected ${dst.length}`;
      // Decoding in place (dst is the stored bytes themselves, restore.ts): nothing to copy.
      if (dst.buffer !== stored.buffer || dst.byteOffset !== stored.byteOffset) copyBytes(dst, 0, stored);
      raw = dst;
    }
    const id = hasher.id(raw);
    if (!idEquals(id, expectedId)) return 'content does not match its chunk id';
    return null;
  }
}
