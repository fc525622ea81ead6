import { UnavailableError } from '../lib/errors.js';

/**
 * The object-storage seam under the repository: a flat namespace of named objects, modelled
 * on restic's Backend so that a directory (local or NFS), S3 and memory all fit.
 *
 * Contract every implementation honours (checked by backend.conformance.ts):
 * - `put` is atomic and durable: after it resolves the whole object is readable and survives a
 *   crash; a reader never sees a partial object. Putting an existing key replaces it whole
 *   (the repository only does that for lease and GC-state objects; data objects are write-once).
 * - `get`/`getRange` throw NotFoundError for a missing key. `getRange` returns exactly `length`
 *   bytes or throws (IntegrityError when the object is shorter: a truncated object is damage).
 * - `stat` gives the size, or null for a missing key.
 * - `list(prefix)` yields every key under a folder-like prefix ('' or ending in '/'), in no
 *   particular order. A listing that cannot be completed THROWS; it never ends early or yields
 *   nothing, because GC treats a listing as the truth (restic #4612).
 * - `delete` is idempotent: deleting a missing key succeeds.
 * - A failure that may succeed when simply tried again (a timeout, a reset connection, a
 *   throttled or 5xx answer, a busy file) is thrown as a TransientError; every other error is
 *   permanent. The retry wrapper (retry.backend.ts) retries only transient ones.
 * No rename, no append, no partial overwrite: S3 has none of them.
 */
export interface Backend {
  put(key: string, data: Uint8Array | readonly Uint8Array[]): Promise<void>;
  /**
   * Optional streaming form of `put` for large objects (packs): the caller appends parts as
   * they are produced and need not hold the whole object in memory. Same atomicity and
   * durability as `put`: nothing is visible under `key` before `commit()` resolves, `abort()`
   * (or a crash) leaves nothing visible. Parts may be reused once `write` resolves.
   */
  openWriter?(key: string): Promise<ObjectWriter>;
  /**
   * True when the streamed writers keep what they are given in buffers of their own until it is
   * uploaded (S3: the target's part pool holds a pack while it goes up and the next one fills).
   * A backup then needs no read-ahead batches of its own to ride out an upload: they would only
   * wait on the writer, holding memory (datamover/backup.ts sizes its slots by this).
   */
  readonly buffersWrites?: boolean;
  /**
   * Optional form of `getRange` that reads into the caller's buffer (no allocation per read):
   * fills `dst[0, length)` exactly or throws like `getRange`.
   */
  getRangeInto?(key: string, offset: number, length: number, dst: Uint8Array): Promise<void>;
  get(key: string): Promise<Buffer>;
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  stat(key: string): Promise<number | null>;
  list(prefix: string): AsyncIterable<string>;
  /**
   * Optional form of `list` that gives each object's size too, for backends whose listing
   * carries sizes anyway (S3's ListObjectsV2: one request per 1,000 objects). A caller that needs
   * the sizes of many objects uses it instead of a `stat` each. Same contract as `list`: every
   * object under the prefix, complete or a throw.
   */
  listSizes?(prefix: string): AsyncIterable<ListedObject>;
  delete(key: string): Promise<void>;
  /**
   * Optional housekeeping: removes what crashed writers left OUTSIDE the object namespace and
   * is older than `olderThanMs` (fs: `.tmp-*` files of interrupted puts; S3 would abort stale
   * multipart uploads). Never touches an object. Returns how many leftovers were removed.
   */
  sweepLeftovers?(olderThanMs: number): Promise<number>;
}

/** An object of a listing with its size in bytes (Backend.listSizes). */
export interface ListedObject {
  key: string;
  size: number;
}

export interface ObjectWriter {
  /** Appends the parts (in order). Not concurrent: await one write before the next. */
  write(parts: readonly Uint8Array[]): Promise<void>;
  /** Makes the object durable and visible under its key (atomically). */
  commit(): Promise<void>;
  /** Discards everything written; idempotent, a no-op after commit. */
  abort(): Promise<void>;
}

/**
 * Keys are `/`-separated segments of [A-Za-z0-9._-], no segment starting with '.', at most
 * 512 chars. The repository builds keys only from validated ids and hex digests; this check is
 * the last line of defence against path traversal in the fs backend.
 */
const SEGMENT_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512) {
    throw new TypeError(`invalid object key: ${JSON.stringify(key)}`);
  }
  for (const seg of key.split('/')) {
    if (!SEGMENT_RE.test(seg)) throw new TypeError(`invalid object key: ${JSON.stringify(key)}`);
  }
}

export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  if (!prefix.endsWith('/')) throw new TypeError(`list prefix must be '' or end with '/': ${JSON.stringify(prefix)}`);
  assertValidKey(prefix.slice(0, -1));
}

/** Total byte length of a put payload. */
export function payloadLength(data: Uint8Array | readonly Uint8Array[]): number {
  if (data instanceof Uint8Array) return data.length;
  let n = 0;
  for (const p of data) n += p.length;
  return n;
}

/** Collects a listing into an array (throws as the listing throws). */
export async function listAll(backend: Backend, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of backend.list(prefix)) out.push(k);
  return out;
}

/**
 * A backend failure worth retrying as is: the same request may succeed a moment later. It is
 * an UnavailableError, so when retries run out the caller sees "a dependency is down" (503),
 * never a bad-request fault. `cause` keeps the original error for logs.
 */
export class TransientError extends UnavailableError {
  readonly transient = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function isTransient(e: unknown): boolean {
  return e instanceof TransientError;
}
