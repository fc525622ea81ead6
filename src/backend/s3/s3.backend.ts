import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { IntegrityError, MissingObjectError } from '../../lib/errors.js';
import { assertValidKey, assertValidPrefix, isTransient, payloadLength, type Backend, type ListedObject, type ObjectWriter } from '../backend.js';
import { Readable } from 'node:stream';
import { defaultCredentials } from './s3.credentials.js';
import { PartPool } from './s3.parts.js';
import { S3Writer, type UploadRequests } from './s3.writer.js';
import { classifyS3Error, httpStatus, isNotFound } from './s3.errors.js';
import { copyBytes } from '../../lib/copy-bytes.js';

export interface S3BackendOptions {
  bucket: string;
  /** Key prefix inside the bucket without a trailing '/', or '' (objects at the bucket root). */
  prefix: string;
  /** S3-compatible endpoint (MinIO, Ceph RGW, s3rver), or null for AWS. */
  endpoint: string | null;
  /** Signing region; null: AWS_REGION, then us-east-1 (what S3-compatible servers expect). */
  region: string | null;
  /** Default: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, then the credentials file. */
  credentials?: S3ClientConfig['credentials'];
  /** Whole-request deadline, body included (default 120 s: a 16 MiB part on a slow link). */
  requestTimeoutMs?: number;
  /** TCP connect deadline (default 10 s). */
  connectTimeoutMs?: number;
  /** Part size of multipart uploads and of the writers' buffers (default and minimum 5 MiB). */
  partSize?: number;
  /** Objects up to this size go up as one PutObject (default 40 MiB: a default 32 MiB pack with its last chunk and trailer). */
  singlePutMax?: number;
  /** Part buffers all streamed writes of this target share (default 9): their memory is at most this × partSize. */
  bufferParts?: number;
  /** Keys per listing request (default 1000, the S3 maximum); tests make it small to page. */
  listPageSize?: number;
  /** Parts of one multipart upload in flight at once while the next fills (default 2). */
  partsInFlight?: number;
  /** Tries per step of a streamed write (default 3; the retry wrapper cannot redo those steps). */
  partAttempts?: number;
  /** A client to use instead of building one (tests observe the commands it sends). */
  client?: S3Client;
}

/**
 * Defaults measured with the scale-out bench (bench/README.md): a default 32 MiB pack goes up as
 * one PutObject from seven reused 5 MiB buffers (a server that joins multipart uploads by
 * copying, as s3rver does, does half the work), the next pack fills the two spare ones while
 * it goes, and the buffers of every upload of the process together stay at 45 MiB, which keeps
 * a worker under 256 MiB while it uploads (80 MiB of buffers was ~10 % faster, at 280 MiB).
 */
export const DEFAULT_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_SINGLE_PUT_MAX = 40 * 1024 * 1024;
const DEFAULT_BUFFER_PARTS = 9;
const MIN_PART_SIZE = 5 * 1024 * 1024; // S3's floor for every part but the last

/**
 * Builds the client every S3 target uses: path-style, checksums only when required, timeouts,
 * unsigned data payloads.
 */
export function makeS3Client(o: S3BackendOptions): S3Client {
  const client = new S3Client({
    ...(o.endpoint === null ? {} : { endpoint: o.endpoint }),
    region: o.region ?? process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
    // S3-compatible servers (s3rver, older MinIO and Ceph RGW) store the aws-chunked framing of
    // the new default checksums as data, or refuse it: send and check checksums only when an
    // operation requires them. Our integrity check is the repository's own hashes.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: o.credentials ?? defaultCredentials(),
    // The SDK sends `Expect: 100-continue` with every body of 2 MB or more (each pack, each part)
    // and, for such a request, opens a NEW connection that is not kept alive (and waits a round
    // trip for the 100): a TCP (and on https, TLS) handshake per pack. Our bodies are at most a
    // pack; a refused one costs at most sending it once, and the pooled connections are kept.
    expectContinueHeader: false,
    // One try per SDK call: retries are the retry wrapper's (TransientError, backoff with jitter).
    maxAttempts: 1,
    requestHandler: { connectionTimeout: o.connectTimeoutMs ?? 10_000, requestTimeout: o.requestTimeoutMs ?? 120_000 },
    // The SDK would print to the console when a streamed body fails; failures are ours to report.
    logger: SILENT,
  });
  // SigV4 otherwise hashes every body with SHA-256 to sign it (~1.4 CPU-s per 2 GiB backup, a
  // third of the whole backup's CPU on top of the filesystem target's). The repository frames
  // and hashes every object itself and checks that on every read, and TLS guards the wire:
  // data bodies go as UNSIGNED-PAYLOAD (accepted by AWS, MinIO, Ceph RGW and s3rver).
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (UNSIGNED_BODY_COMMANDS.has(context.commandName ?? '') && request.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'lifeboatUnsignedPayload' },
  );
  return client;
}

const SILENT = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

const UNSIGNED_BODY_COMMANDS = new Set(['PutObjectCommand', 'UploadPartCommand']);

/** A body of several buffers without joining them (a new stream per try). */
function bodyOf(parts: readonly Buffer[]): Buffer | Readable {
  if (parts.length === 1) return parts[0]!;
  return parts.length === 0 ? Buffer.alloc(0) : Readable.from(parts, { objectMode: false });
}

/** A Buffer view of the caller's bytes (no copy). */
function asBuffer(p: Uint8Array): Buffer {
  return Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.length);
}

/**
 * Objects in an S3 bucket under a key prefix. Puts are single PutObjects up to `singlePutMax`, a
 * multipart upload above (aborted on any failure, so nothing partial is ever visible); reads
 * check the byte count they were promised. Integrity beyond that is the repository's: every
 * object it reads is framed and hashed (framing.ts, pack.format.ts) and checked on read — the
 * ETag is never trusted (multipart ETags are not digests). Every SDK failure is classified
 * (s3.errors.ts) so the retry wrapper retries only what may pass on a second try.
 */
export class S3Backend implements Backend, UploadRequests {
  readonly client: S3Client;
  readonly bucket: string;
  private readonly base: string;
  private readonly partSize: number;
  private readonly singlePutMax: number;
  /** The part buffers every streamed write of this target shares. */
  private readonly pool: PartPool;
  private readonly pageSize: number;
  private readonly timeoutMs: number;
  private readonly partAttempts: number;
  private readonly partsInFlight: number;
  /** Streamed writes go through the part pool (s3.writer.ts), which holds a pack while it uploads. */
  readonly buffersWrites = true;

  constructor(o: S3BackendOptions) {
    this.client = o.client ?? makeS3Client(o);
    this.bucket = o.bucket;
    this.base = o.prefix === '' ? '' : `${o.prefix}/`;
    this.partSize = o.partSize ?? DEFAULT_PART_SIZE;
    if (this.partSize < MIN_PART_SIZE) throw new RangeError(`S3 part size must be at least ${MIN_PART_SIZE} bytes`);
    this.singlePutMax = o.singlePutMax ?? DEFAULT_SINGLE_PUT_MAX;
    this.pool = new PartPool(this.partSize, Math.max(1, o.bufferParts ?? DEFAULT_BUFFER_PARTS));
    this.pageSize = o.listPageSize ?? 1000;
    this.timeoutMs = o.requestTimeoutMs ?? 120_000;
    this.partAttempts = Math.max(1, o.partAttempts ?? 3);
    this.partsInFlight = Math.max(1, o.partsInFlight ?? 2);
  }

  private full(key: string): string {
    assertValidKey(key);
    return this.base + key;
  }

  /** Sends one command with the per-request deadline; classifies its failure against `key`. */
  private async send<T>(op: string, key: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await run(AbortSignal.timeout(this.timeoutMs));
    } catch (e) {
      throw classifyS3Error(e, op, key);
    }
  }

  /** 'ok', or why the bucket cannot be used (checked once when the target is opened). */
  async checkBucket(): Promise<'ok' | 'missing' | 'forbidden'> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(this.timeoutMs) });
      return 'ok';
    } catch (e) {
      const status = httpStatus(e);
      if (status === 404) return 'missing';
      if (status === 403 || status === 301 || status === 400) return 'forbidden';
      throw classifyS3Error(e, 'open bucket', '');
    }
  }

  async put(key: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const full = this.full(key);
    if (payloadLength(data) > this.singlePutMax) {
      const w = await this.openWriter(key);
      try {
        await w.write(data instanceof Uint8Array ? [data] : data);
        await w.commit();
      } finally {
        await w.abort();
      }
      return;
    }
    const parts = data instanceof Uint8Array ? [asBuffer(data)] : data.map(asBuffer);
    const length = payloadLength(parts);
    await this.send('put', key, (abortSignal) =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: full, Body: bodyOf(parts), ContentLength: length }), { abortSignal }),
    );
  }

  /** A streamed write through the target's part buffers (s3.writer.ts). */
  async openWriter(key: string): Promise<ObjectWriter> {
    return new S3Writer(this, this.pool, key, this.full(key), { singlePutMax: this.singlePutMax, partsInFlight: this.partsInFlight });
  }

  /**
   * Runs one step of a streamed write, retried in place on transient failures with a jittered
   * backoff: the retry wrapper cannot redo a writer's steps (the caller's parts are gone), but
   * the writer still holds what the step sends.
   */
  private async inPlace<T>(step: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (e) {
        if (!isTransient(e) || attempt >= this.partAttempts) throw e;
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 100 * 2 ** attempt)));
      }
    }
  }

  /** @internal for S3Writer: one part of a multipart upload; returns its ETag. */
  async uploadPart(key: string, full: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    return this.inPlace(async () => {
      const r = await this.send('put part of', key, (abortSignal) =>
        this.client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: full, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
          { abortSignal },
        ),
      );
      if (!r.ETag) throw new Error(`s3 backend: put part of ${key} failed (no ETag in the answer)`);
      return r.ETag;
    });
  }

  async get(key: string): Promise<Buffer> {
    return this.read('get', key, undefined, null);
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    if (length === 0) {
      const size = await this.stat(key);
      if (size === null) throw new MissingObjectError(`object ${key} not found`);
      if (size < offset) throw new IntegrityError(`object ${key} is shorter than ${offset} bytes`);
      return Buffer.alloc(0);
    }
    return this.read('get', key, `bytes=${offset}-${offset + length - 1}`, { offset, length });
  }

  async getRangeInto(key: string, offset: number, length: number, dst: Uint8Array): Promise<void> {
    if (dst.length < length) throw new RangeError(`buffer of ${dst.length} bytes cannot hold ${length}`);
    const buf = await this.getRange(key, offset, length);
    copyBytes(dst, 0, buf);
  }

  /**
   * GetObject, whole or a range. The body must have exactly the promised length (Content-Length,
   * or the range asked): a short body is a broken transfer (transient) unless the object itself
   * is shorter than the range (IntegrityError, as the contract says for a truncated object).
   */
  private async read(op: string, key: string, range: string | undefined, want: { offset: number; length: number } | null): Promise<Buffer> {
    const full = this.full(key);
    let out: Buffer;
    let promised: number | undefined;
    try {
      out = await this.send(op, key, async (abortSignal) => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: full, Range: range }), { abortSignal });
        promised = r.ContentLength;
        return r.Body ? Buffer.from(await r.Body.transformToByteArray()) : Buffer.alloc(0);
      });
    } catch (e) {
      if (isNotFound((e as Error).cause)) throw new MissingObjectError(`object ${key} not found`);
      if (want && httpStatus((e as Error).cause) === 416) throw new IntegrityError(`object ${key} is shorter than ${want.offset + want.length} bytes`);
      throw e;
    }
    if (promised !== undefined && out.length !== promised) {
      throw classifyS3Error(Object.assign(new Error('short body'), { code: 'ECONNRESET' }), op, key);
    }
    if (want && out.length !== want.length) throw new IntegrityError(`object ${key} is shorter than ${want.offset + want.length} bytes`);
    return out;
  }

  async stat(key: string): Promise<number | null> {
    const full = this.full(key);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal: AbortSignal.timeout(this.timeoutMs) });
      return r.ContentLength ?? 0;
    } catch (e) {
      if (isNotFound(e)) return null;
      throw classifyS3Error(e, 'stat', key);
    }
  }

  /**
   * Pages through ListObjectsV2 with its continuation token. A page that says "truncated" but
   * carries no token, or any failed page, THROWS: a listing is complete or an error (GC reads a
   * listing as the truth). Keys outside our key syntax (foreign objects, folder markers) are
   * skipped, as the fs backend skips dotfiles.
   */
  async *list(prefix: string): AsyncIterable<string> {
    for await (const o of this.listSizes(prefix)) yield o.key;
  }

  /** `list` with each object's size, which every ListObjectsV2 page carries anyway. */
  async *listSizes(prefix: string): AsyncIterable<ListedObject> {
    assertValidPrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.send('list', prefix, (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.base + prefix, MaxKeys: this.pageSize, ContinuationToken: token }),
          { abortSignal },
        ),
      );
      for (const o of page.Contents ?? []) {
        const k = o.Key?.startsWith(this.base) ? o.Key.slice(this.base.length) : undefined;
        if (k !== undefined && isOurKey(k)) yield { key: k, size: o.Size ?? 0 };
      }
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw new Error(`s3 backend: list ${prefix || '/'} failed (truncated page without a continuation token)`);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async delete(key: string): Promise<void> {
    const full = this.full(key);
    // S3 answers 204 for a missing key too: idempotent by nature.
    await this.send('delete', key, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: full }), { abortSignal }));
  }

  /**
   * Aborts multipart uploads under our prefix started more than `olderThanMs` ago: what a
   * writer killed between its first part and commit leaves (invisible, but billed). A server
   * that cannot list uploads (s3rver answers NotImplemented) has none we could find: 0. A bucket
   * lifecycle rule AbortIncompleteMultipartUpload does the same job on the server side.
   */
  async sweepLeftovers(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.base, KeyMarker: keyMarker, UploadIdMarker: idMarker }),
          { abortSignal: AbortSignal.timeout(this.timeoutMs) },
        );
      } catch (e) {
        const status = httpStatus(e);
        if (status === 501 || status === 405) return removed;
        throw classifyS3Error(e, 'list uploads', '');
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Initiated || u.Initiated.getTime() >= cutoff) continue;
        await this.abortUpload(u.Key.slice(this.base.length), u.Key, u.UploadId);
        removed++;
      }
      if (!page.IsTruncated) return removed;
      keyMarker = page.NextKeyMarker;
      idMarker = page.NextUploadIdMarker;
    }
  }

  /** @internal AbortMultipartUpload; a missing upload is already gone. */
  async abortUpload(key: string, full: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: full, UploadId: uploadId }), {
        abortSignal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      if (isNotFound(e)) return;
      throw classifyS3Error(e, 'abort upload of', key);
    }
  }

  /** @internal for S3Writer */
  async createUpload(key: string, full: string): Promise<string> {
    return this.inPlace(async () => {
      const r = await this.send('put', key, (abortSignal) => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: full }), { abortSignal }));
      if (!r.UploadId) throw new Error(`s3 backend: put ${key} failed (no upload id in the answer)`);
      return r.UploadId;
    });
  }

  /**
   * @internal for S3Writer. A retried Complete whose first try did land (the answer was lost)
   * meets NoSuchUpload: the object then exists with the size sent, which is checked.
   */
  async completeUpload(key: string, full: string, uploadId: string, etags: string[], size: number): Promise<void> {
    const Parts = etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 }));
    let tries = 0;
    await this.inPlace(async () => {
      tries++;
      try {
        await this.send('put', key, (abortSignal) =>
          this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: full, UploadId: uploadId, MultipartUpload: { Parts } }), { abortSignal }),
        );
      } catch (e) {
        if (tries > 1 && isNotFound((e as Error).cause) && (await this.stat(key)) === size) return;
        throw e;
      }
    });
  }

  /** @internal for S3Writer: single PutObject of buffered bytes. */
  async putWhole(key: string, full: string, body: readonly Buffer[]): Promise<void> {
    const length = payloadLength(body);
    await this.inPlace(() =>
      this.send('put', key, (abortSignal) =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: full, Body: bodyOf(body), ContentLength: length }), { abortSignal }),
      ),
    );
  }

  /** Closes the client's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}

function isOurKey(k: string): boolean {
  try {
    assertValidKey(k);
    return true;
  } catch {
    return false;
  }
}
