import type { ObjectWriter } from '../backend.js';
import type { PartPool } from './s3.parts.js';
import { copyBytes } from '../../lib/copy-bytes.js';

/** The requests a streamed write makes (S3Backend's; each retried in place on transient failures). */
export interface UploadRequests {
  /** One PutObject of the buffers' bytes, in order. */
  putWhole(key: string, full: string, body: readonly Buffer[]): Promise<void>;
  createUpload(key: string, full: string): Promise<string>;
  /** Returns the part's ETag. */
  uploadPart(key: string, full: string, uploadId: string, partNumber: number, body: Buffer): Promise<string>;
  completeUpload(key: string, full: string, uploadId: string, etags: string[], size: number): Promise<void>;
  abortUpload(key: string, full: string, uploadId: string): Promise<void>;
}

export interface WriterLimits {
  /** Objects up to this many bytes go up as one PutObject at commit (fewer requests, no server-side join). */
  singlePutMax: number;
  /** Parts of one multipart upload in flight at once while the next fills. */
  partsInFlight: number;
}

/**
 * The streamed writer. It copies what it is given into part buffers from the target's pool
 * (callers reuse their parts once `write` resolves). An object that ends within `singlePutMax`
 * goes up as ONE PutObject at commit; a bigger one — or one whose writer finds the pool empty
 * — becomes a multipart upload: each full buffer is sent as a part in the background while
 * the next fills, at most `partsInFlight` at a time, so the caller (chunking) does not stop for
 * every upload. A writer waits for a pool buffer only once everything it holds is in flight,
 * so writers sharing the pool cannot wait on each other. A part that fails (after its in-place
 * retries) fails the next write or the commit, and the upload is aborted: nothing partial is
 * ever visible.
 */
export class S3Writer implements ObjectWriter {
  private state: 'open' | 'committed' | 'aborted' = 'open';
  /** Full buffers not sent yet (the single PutObject's, until the object outgrows it). */
  private held: Buffer[] = [];
  /** The buffer being filled and how much of it is filled. */
  private cur: Buffer | null = null;
  private fill = 0;
  private uploadId: string | null = null;
  private readonly etags: string[] = [];
  private parts = 0;
  /** Bytes handed to parts so far. */
  private sent = 0;
  /** Parts being uploaded; they never reject (a failure is kept in `failure`). */
  private inFlight: Promise<void>[] = [];
  private failure: unknown = null;

  constructor(
    private readonly requests: UploadRequests,
    private readonly pool: PartPool,
    private readonly key: string,
    private readonly full: string,
    private readonly limits: WriterLimits,
  ) {}

  async write(parts: readonly Uint8Array[]): Promise<void> {
    if (this.state !== 'open') throw new Error(`write to a ${this.state} object writer (${this.key})`);
    await this.guard(async () => {
      for (const p of parts) {
        for (let off = 0; off < p.length; ) {
          // A full buffer is passed on only when more bytes come (the last part is never empty).
          if (this.cur !== null && this.fill === this.cur.length) await this.nextBuffer();
          this.cur ??= await this.obtain();
          const n = Math.min(p.length - off, this.cur.length - this.fill);
          copyBytes(this.cur, this.fill, p.subarray(off, off + n));
          this.fill += n;
          off += n;
        }
      }
      this.throwIfFailed();
    });
  }

  async commit(): Promise<void> {
    if (this.state !== 'open') throw new Error(`commit of a ${this.state} object writer (${this.key})`);
    await this.guard(async () => {
      if (this.uploadId === null) {
        const body = this.cur === null ? this.held : [...this.held, this.cur.subarray(0, this.fill)];
        const n = this.held.length + (this.cur === null ? 0 : 1);
        this.pool.sending(n);
        try {
          await this.requests.putWhole(this.key, this.full, body);
        } finally {
          this.giveBack(true);
        }
      } else {
        await this.sendHeld();
        const last = this.cur;
        this.cur = null; // sendPart owns it now (it gives it back even when it fails)
        if (last !== null) await this.sendPart(last, this.fill);
        await Promise.all(this.inFlight);
        this.throwIfFailed();
        await this.requests.completeUpload(this.key, this.full, this.uploadId, this.etags, this.sent);
      }
      this.state = 'committed';
    });
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.giveBack();
    // A part still in flight could land after the abort and be kept: let them end first.
    await Promise.all(this.inFlight);
    if (this.uploadId !== null) await this.requests.abortUpload(this.key, this.full, this.uploadId).catch(() => {});
  }

  /** Runs a step; on failure the upload is aborted (nothing partial stays) and the error rethrown. */
  private async guard(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  private giveBack(sent = false): void {
    for (const b of this.held) this.pool.give(b, sent);
    if (this.cur !== null) this.pool.give(this.cur, sent);
    this.held = [];
    this.cur = null;
    this.fill = 0;
  }

  /** The full current buffer joins the held ones; past the single-PUT size they all go as parts. */
  private async nextBuffer(): Promise<void> {
    this.held.push(this.cur!);
    this.cur = null;
    this.fill = 0;
    if (this.uploadId !== null || (this.held.length + 1) * this.pool.size > this.limits.singlePutMax) await this.sendHeld();
  }

  /**
   * A pool buffer. When none is free, a writer keeping unsent buffers (a single PUT in the
   * making) waits only while some buffer is in a request under way — that one comes back
   * whatever anyone else does; with none under way it sends what it holds as parts first.
   * So a writer only ever waits on uploads, never on another writer's unsent bytes.
   */
  private async obtain(): Promise<Buffer> {
    for (;;) {
      const b = this.pool.tryTake();
      if (b) return b;
      if (this.held.length === 0) return this.pool.take();
      if (!this.pool.anySending) {
        await this.sendHeld();
        return this.pool.take();
      }
      await this.pool.nextGive();
    }
  }

  private async sendHeld(): Promise<void> {
    const held = this.held;
    this.held = [];
    for (const b of held) await this.sendPart(b, b.length);
  }

  /** Starts the upload of `buf[0, length)` as the next part once a slot is free; the buffer returns to the pool after. */
  private async sendPart(buf: Buffer, length: number): Promise<void> {
    try {
      while (this.inFlight.length >= this.limits.partsInFlight) await this.inFlight.shift();
      this.throwIfFailed();
      this.uploadId ??= await this.requests.createUpload(this.key, this.full);
    } catch (e) {
      this.pool.give(buf);
      throw e;
    }
    const n = ++this.parts;
    this.sent += length;
    this.pool.sending(1);
    const upload = this.requests.uploadPart(this.key, this.full, this.uploadId, n, buf.subarray(0, length));
    this.inFlight.push(
      upload
        .then(
          (etag) => {
            this.etags[n - 1] = etag;
          },
          (e: unknown) => {
            this.failure ??= e;
          },
        )
        .finally(() => this.pool.give(buf, true)),
    );
  }
}
