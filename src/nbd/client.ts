import { createConnection, type Socket } from 'node:net';
import { ValidationError } from '../lib/errors.js';
import { errnoName, NbdError, protocolError } from './errors.js';
import { negotiate, type ExportInfo } from './handshake.js';
import * as P from './protocol.js';
import { SocketReader } from './reader.js';

export type { ExportInfo } from './handshake.js';

export interface NbdConnectOptions {
  /** Unix socket path; or `host` + `port` for TCP. */
  socketPath?: string;
  host?: string;
  port?: number;
  /** Export to open; '' = the server's default export. */
  exportName?: string;
  /** Meta contexts to negotiate, e.g. `base:allocation`, `qemu:dirty-bitmap:backup-vda`. */
  metaContexts?: readonly string[];
  /** Ask for structured replies (sparse reads, error messages); default true. */
  structuredReplies?: boolean;
  /** The connection fails when nothing arrives this long while the handshake or a request waits; default 60 s. */
  timeoutMs?: number;
}

/** One extent of a block-status reply: flags are the context's (e.g. STATE_HOLE | STATE_ZERO). */
export interface StatusExtent {
  offset: number;
  length: number;
  flags: number;
}

export interface PipelineOptions {
  /**
   * Bytes per NBD_CMD_READ, at most the export's maximum block size. Default 192 KiB, for QEMU's
   * servers (qemu-nbd, a libvirt pull-mode backup): QEMU allocates each request's buffer
   * (posix_memalign) and frees it after the reply, and for multi-MiB requests glibc keeps handing
   * it fresh pages (mmap, or heap trimmed back to the kernel), so QEMU page-faults every page of
   * the disk before it copies into it. Small requests come from glibc's free lists. The bench
   * disk (1.29 GB allocated) read like the datamover reads it (4 MiB batches, 5 at once), on
   * this project's 2-core VMs where a page fault is dear:
   *
   * | server                        | request | server CPU-s | minor faults | client CPU-s | wall      |
   * |-------------------------------|---------|--------------|--------------|--------------|-----------|
   * | qemu-nbd (qcow2)              | 4 MiB   | 4.0–4.2      | 213–253 k    | 0.7–0.8      | 2.7–3.3 s |
   * | qemu-nbd (qcow2)              | 192 KiB | 0.93–0.98    | 1.5–2.4 k    | 1.2          | 1.3 s     |
   * | libvirt backup export (TCG)   | 4 MiB   | 2.7–4.0      | 166–275 k    | 0.7–0.8      | 2.0–2.9 s |
   * | libvirt backup export (TCG)   | 192 KiB | 0.78–1.27    | 0–1.3 k      | 1.1–1.4      | 1.1–1.5 s |
   *
   * (128 and 256 KiB measured like 192; 16 MiB one at a time is faster once QEMU's heap has
   * grown, but not on a fresh QEMU and not always then.) What glibc does depends on the server's
   * history: one connection reading the same 48 MiB of a raw qemu-nbd export over and over still
   * faulted about two pages in three with 192 KiB, so the bench, not a test, judges this
   * (bench/README.md, the libvirt case: QEMU 3.2–3.4 → 1.6–1.7 CPU-s per full). An earlier measurement on another
   * machine had found 4 MiB cheapest (qemu-nbd 0.37–0.47 CPU-s): where faults are cheap, larger
   * requests save client CPU.
   */
  requestSize?: number;
  /** Requests in flight at once; default 8. */
  depth?: number;
}

interface RequestBase {
  handle: number;
  offset: number;
  length: number;
  error: NbdError | null;
  resolve(): void;
  reject(e: Error): void;
}
interface ReadRequest extends RequestBase {
  kind: 'read';
  buf: Buffer;
  bufOffset: number;
  covered: [number, number][]; // received [start, end) ranges, to reject overlaps
  coveredBytes: number;
}
interface StatusRequest extends RequestBase {
  kind: 'status';
  extents: Map<number, StatusExtent[]>; // by context id
}
type Request = ReadRequest | StatusRequest;

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_REQUEST_SIZE = 192 * 1024; // PipelineOptions.requestSize says why
const MAX_STATUS_REQUEST = 2 ** 31; // per NBD_CMD_BLOCK_STATUS; any minimum block size divides it

/**
 * A read-only NBD client (fixed newstyle, structured replies, meta contexts, pipelined reads and
 * block status) over a unix socket or TCP. One connection; requests may be issued concurrently
 * and replies are matched by handle. Memory is bounded: read payloads land in the caller's
 * buffers (straight from the kernel, see SocketReader) and the socket is paused while the
 * caller is behind.
 *
 * Any protocol violation, lost connection or timeout fails every pending and later request with
 * an NbdError; a server error on one request fails only that request.
 */
export class NbdClient {
  private readonly pending = new Map<number, Request>();
  private readonly contextNames: Map<number, string>;
  private idleWaiters: (() => void)[] = [];
  private nextHandle = 1;
  private failure: NbdError | null = null;
  private corked = false;

  private constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
    readonly info: ExportInfo,
  ) {
    this.contextNames = new Map([...info.metaContexts].map(([name, id]) => [id, name]));
    void this.receiveLoop();
  }

  static async connect(opts: NbdConnectOptions): Promise<NbdClient> {
    const reader = new SocketReader(null);
    const socket = openSocket(opts, reader);
    reader.attach(socket);
    let client: NbdClient | null = null;
    socket.setTimeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, () => {
      const waiting = client ? client.pending.size > 0 && !reader.isPaused : true;
      if (!waiting) return;
      const e = new NbdError('timeout', `no reply from the server for ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`);
      if (client) return client.shutdown(e);
      reader.fail(e);
      socket.destroy();
    });
    try {
      const info = await negotiate(socket, reader, {
        exportName: opts.exportName ?? '',
        metaContexts: opts.metaContexts ?? [],
        structuredReplies: opts.structuredReplies ?? true,
      });
      client = new NbdClient(socket, reader, info);
      return client;
    } catch (e) {
      socket.destroy();
      throw e;
    }
  }

  get size(): number {
    return this.info.size;
  }

  /** Requests sent and not yet fully answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * One NBD_CMD_READ of `length` bytes at `position` into `buf` (allocated when absent). The
   * range is not checked against the export size: the server answers that with an error.
   */
  read(position: number, length: number, buf: Buffer = Buffer.allocUnsafe(length), bufOffset = 0): Promise<Buffer> {
    checkRange(position, length, this.info.blockSize.maximum);
    if (!Number.isInteger(bufOffset) || bufOffset < 0 || bufOffset + length > buf.length) throw new ValidationError('NBD read: buffer too small');
    return new Promise<void>((resolve, reject) => {
      const req: ReadRequest = { kind: 'read', handle: 0, offset: position, length, buf, bufOffset, covered: [], coveredBytes: 0, error: null, resolve, reject };
      this.send(req, P.CMD_READ);
    }).then(() => buf);
  }

  /** Fills `buf[bufOffset, +length)` from `position`, with up to `depth` requests in flight. */
  async readInto(buf: Buffer, bufOffset: number, length: number, position: number, opts: PipelineOptions = {}): Promise<void> {
    this.checkWithinExport(position, length);
    const { requestSize, depth } = this.pipeline(opts);
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (next < length && !failed) {
        const at = next;
        const n = Math.min(requestSize, length - at);
        next += n;
        try {
          await this.read(position + at, n, buf, bufOffset + at);
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(depth, Math.ceil(length / requestSize)) }, worker));
  }

  /**
   * Reads `[position, +length)` in order, calling `onData(bytes, offset)` for each piece with up
   * to `depth` reads in flight. `bytes` is reused once onData's promise settles: copy to keep it.
   */
  async readStream(position: number, length: number, onData: (bytes: Buffer, offset: number) => void | Promise<void>, opts: PipelineOptions = {}): Promise<void> {
    this.checkWithinExport(position, length);
    const { requestSize, depth } = this.pipeline(opts);
    const spare: Buffer[] = [];
    const inFlight: { at: number; n: number; done: Promise<Buffer> }[] = [];
    let issued = 0;
    while (issued < length || inFlight.length > 0) {
      while (issued < length && inFlight.length < depth) {
        const n = Math.min(requestSize, length - issued);
        const done = this.read(position + issued, n, spare.pop() ?? Buffer.allocUnsafe(requestSize));
        done.catch(() => undefined); // awaited below in order; avoids an unhandled rejection meanwhile
        inFlight.push({ at: issued, n, done });
        issued += n;
      }
      const head = inFlight.shift()!;
      const buf = await head.done;
      await onData(buf.subarray(0, head.n), position + head.at);
      spare.push(buf);
    }
  }

  /** One NBD_CMD_BLOCK_STATUS: extents per negotiated context name, clipped to the request. */
  blockStatus(offset: number, length: number): Promise<Map<string, StatusExtent[]>> {
    if (this.contextNames.size === 0) return Promise.reject(new NbdError('unsupported', 'block status needs at least one negotiated meta context'));
    checkRange(offset, length, 0xffffffff);
    const req: StatusRequest = { kind: 'status', handle: 0, offset, length, extents: new Map(), error: null, resolve: () => {}, reject: () => {} };
    return new Promise<void>((resolve, reject) => {
      req.resolve = resolve;
      req.reject = reject;
      this.send(req, P.CMD_BLOCK_STATUS);
    }).then(() => new Map([...req.extents].map(([id, ext]) => [this.contextNames.get(id)!, ext])));
  }

  /**
   * Block status of `[offset, +length)` (default: the whole export) for every negotiated
   * context, as contiguous extents with equal neighbours merged. Servers may answer less than
   * asked, and each context may cover a different length: each round continues from the
   * shortest answer.
   */
  async mapExtents(offset = 0, length = this.info.size - offset): Promise<Map<string, StatusExtent[]>> {
    this.checkWithinExport(offset, length);
    const out = new Map<string, StatusExtent[]>([...this.info.metaContexts.keys()].map((n) => [n, []]));
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const reply = await this.blockStatus(pos, Math.min(end - pos, MAX_STATUS_REQUEST));
      const reached = Math.min(...[...reply.values()].map((ext) => ext[ext.length - 1]!.offset + ext[ext.length - 1]!.length));
      if (!(reached > pos)) throw protocolError('block status made no progress');
      for (const [name, ext] of reply) appendClipped(out.get(name)!, ext, reached);
      pos = reached;
    }
    return out;
  }

  /**
   * Ends the session politely: waits for pending requests, sends NBD_CMD_DISC and waits until the
   * server closes the socket (destroying it after `timeoutMs`). Later requests fail as `closed`.
   */
  async close(timeoutMs = 5000): Promise<void> {
    if (this.failure) return;
    while (this.pending.size > 0 && !this.failure) await new Promise<void>((res) => this.idleWaiters.push(res));
    if (this.failure) return;
    this.failure = new NbdError('closed', 'the client closed the connection');
    const closed = new Promise<void>((res) => this.socket.once('close', () => res()));
    this.socket.end(requestHeader(P.CMD_DISC, 0, 0, 0));
    const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
    await closed;
    clearTimeout(timer);
  }

  /** Drops the connection at once; pending requests fail as `closed`. */
  destroy(): void {
    this.shutdown(new NbdError('closed', 'the client closed the connection'));
  }

  private pipeline(opts: PipelineOptions): { requestSize: number; depth: number } {
    const max = this.info.blockSize.maximum;
    const requestSize = Math.min(opts.requestSize ?? DEFAULT_REQUEST_SIZE, max);
    const depth = opts.depth ?? 8;
    if (!Number.isInteger(requestSize) || requestSize < 1) throw new ValidationError('NBD requestSize must be a positive integer');
    if (!Number.isInteger(depth) || depth < 1) throw new ValidationError('NBD depth must be a positive integer');
    return { requestSize, depth };
  }

  private checkWithinExport(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.info.size) {
      throw new ValidationError(`NBD range ${offset}+${length} is outside the export (${this.info.size} bytes)`);
    }
  }

  private send(req: Request, command: number): void {
    if (this.failure) return req.reject(this.failure);
    do {
      this.nextHandle = this.nextHandle >= 0xffffffff ? 1 : this.nextHandle + 1;
    } while (this.pending.has(this.nextHandle));
    req.handle = this.nextHandle;
    this.pending.set(req.handle, req);
    // Requests issued together (a batch of scattered reads) leave in one write, not one
    // syscall each: the socket is corked until the current tick's work is done.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(requestHeader(command, req.handle, req.offset, req.length));
  }

  /** Removes a finished request; wakes close() once nothing is pending. */
  private settle(req: Request): void {
    this.pending.delete(req.handle);
    if (this.pending.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private shutdown(e: NbdError): void {
    if (!this.failure) this.failure = e;
    this.reader.fail(this.failure);
    this.socket.destroy();
    const reqs = [...this.pending.values()];
    this.pending.clear();
    for (const r of reqs) r.reject(this.failure);
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async receiveLoop(): Promise<void> {
    try {
      for (;;) {
        const magic = (await this.reader.readExact(4)).readUInt32BE(0);
        if (magic === P.SIMPLE_REPLY_MAGIC) await this.onSimpleReply();
        else if (magic === P.STRUCTURED_REPLY_MAGIC) await this.onStructuredChunk();
        else throw protocolError(`bad reply magic 0x${magic.toString(16)}`);
      }
    } catch (e) {
      this.shutdown(e instanceof NbdError ? e : new NbdError('closed', `the connection failed: ${String(e)}`, { cause: e }));
    }
  }

  private lookup(h: Buffer, at: number): Request {
    const req = h.readUInt32BE(at) === 0 ? this.pending.get(h.readUInt32BE(at + 4)) : undefined;
    if (!req) throw protocolError('reply for an unknown handle');
    return req;
  }

  private async onSimpleReply(): Promise<void> {
    const h = await this.reader.readExact(12);
    const errno = h.readUInt32BE(0);
    const req = this.lookup(h, 4);
    if (req.kind === 'read' && this.info.structuredReplies) throw protocolError('simple reply to a read after structured replies were negotiated');
    if (errno !== 0) {
      this.settle(req);
      return req.reject(serverError(req, errno, ''));
    }
    if (req.kind !== 'read') throw protocolError('simple reply without data to a block status request');
    await this.reader.copyTo(req.buf, req.bufOffset, req.length);
    this.settle(req);
    req.resolve();
  }

  private async onStructuredChunk(): Promise<void> {
    const h = await this.reader.readExact(16);
    const flags = h.readUInt16BE(0);
    const type = h.readUInt16BE(2);
    const req = this.lookup(h, 4);
    const length = h.readUInt32BE(12);
    if (!this.info.structuredReplies) throw protocolError('structured reply chunk that was not negotiated');
    if (type & P.REPLY_TYPE_ERROR_BIT) await this.onErrorChunk(req, type, length);
    else if (type === P.REPLY_TYPE_NONE) {
      if (length !== 0 || !(flags & P.REPLY_FLAG_DONE)) throw protocolError('NBD_REPLY_TYPE_NONE with a payload or without DONE');
    } else if (type === P.REPLY_TYPE_OFFSET_DATA && req.kind === 'read') await this.onData(req, length);
    else if (type === P.REPLY_TYPE_OFFSET_HOLE && req.kind === 'read') await this.onHole(req, length);
    else if (type === P.REPLY_TYPE_BLOCK_STATUS && req.kind === 'status') await this.onStatus(req, length);
    else throw protocolError(`chunk type ${type} in reply to a ${req.kind} request`);
    if (flags & P.REPLY_FLAG_DONE) this.complete(req);
  }

  private complete(req: Request): void {
    if (!req.error && req.kind === 'read' && req.coveredBytes !== req.length) throw protocolError(`read reply covers ${req.coveredBytes} of ${req.length} bytes`);
    if (!req.error && req.kind === 'status' && req.extents.size !== this.contextNames.size) throw protocolError('block status reply lacks a negotiated context');
    this.settle(req);
    if (req.error) req.reject(req.error);
    else req.resolve();
  }

  /** Marks `[start, +n)` of a read as received; it must lie inside the request and not overlap. */
  private claim(req: ReadRequest, start: number, n: number): void {
    const end = start + n;
    if (n <= 0 || start < req.offset || end > req.offset + req.length) throw protocolError('read chunk outside the requested range');
    if (req.covered.some(([s, e]) => start < e && s < end)) throw protocolError('overlapping read chunks');
    req.covered.push([start, end]);
    req.coveredBytes += n;
  }

  private async onData(req: ReadRequest, length: number): Promise<void> {
    if (length <= 8) throw protocolError('NBD_REPLY_TYPE_OFFSET_DATA without data');
    const start = readOffset(await this.reader.readExact(8), 0);
    this.claim(req, start, length - 8);
    await this.reader.copyTo(req.buf, req.bufOffset + (start - req.offset), length - 8);
  }

  private async onHole(req: ReadRequest, length: number): Promise<void> {
    if (length !== 12) throw protocolError('NBD_REPLY_TYPE_OFFSET_HOLE of the wrong length');
    const p = await this.reader.readExact(12);
    const start = readOffset(p, 0);
    const n = p.readUInt32BE(8);
    this.claim(req, start, n);
    const at = req.bufOffset + (start - req.offset);
    req.buf.fill(0, at, at + n);
  }

  private async onStatus(req: StatusRequest, length: number): Promise<void> {
    if (length < 12 || (length - 4) % 8 !== 0 || length > P.MAX_STATUS_CHUNK) throw protocolError(`block status chunk of ${length} bytes`);
    const p = Buffer.allocUnsafe(length);
    await this.reader.copyTo(p, 0, length);
    const id = p.readUInt32BE(0);
    if (!this.contextNames.has(id) || req.extents.has(id)) throw protocolError(`block status for unknown or repeated context ${id}`);
    const end = req.offset + req.length;
    const extents: StatusExtent[] = [];
    for (let i = 4, pos = req.offset; i < length && pos < end; i += 8) {
      const n = p.readUInt32BE(i);
      if (n === 0) throw protocolError('zero-length extent');
      extents.push({ offset: pos, length: Math.min(n, end - pos), flags: p.readUInt32BE(i + 4) });
      pos += n;
    }
    req.extents.set(id, extents);
  }

  private async onErrorChunk(req: Request, type: number, length: number): Promise<void> {
    if (length < 6 || length > P.MAX_ERROR_CHUNK) throw protocolError(`error chunk of ${length} bytes`);
    const p = await this.reader.readExact(length);
    const errno = p.readUInt32BE(0);
    const msgLen = p.readUInt16BE(4);
    if (errno === 0 || 6 + msgLen > length || (type === P.REPLY_TYPE_ERROR_OFFSET && 6 + msgLen + 8 > length)) throw protocolError('malformed error chunk');
    const message = p.toString('utf8', 6, 6 + msgLen).replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
    req.error ??= serverError(req, errno, message);
  }
}

/** The socket reads where `reader` says: read payloads straight into the requests' buffers. */
function openSocket(opts: NbdConnectOptions, reader: SocketReader): Socket {
  const onread = reader.onread();
  if (opts.socketPath) return createConnection({ path: opts.socketPath, onread });
  if (opts.host && opts.port) return createConnection({ host: opts.host, port: opts.port, noDelay: true, onread });
  throw new ValidationError('NBD connect needs socketPath, or host and port');
}

function checkRange(offset: number, length: number, maxLength: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 1 || length > maxLength) {
    throw new ValidationError(`NBD request ${offset}+${length} is not a valid range (at most ${maxLength} bytes)`);
  }
}

function requestHeader(command: number, handle: number, offset: number, length: number): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(P.REQUEST_MAGIC, 0);
  h.writeUInt16BE(0, 4); // command flags
  h.writeUInt16BE(command, 6);
  h.writeUInt32BE(0, 8);
  h.writeUInt32BE(handle, 12);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return h;
}

function readOffset(b: Buffer, at: number): number {
  const v = b.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw protocolError('offset beyond 2^53');
  return Number(v);
}

function serverError(req: Request, errno: number, message: string): NbdError {
  const what = req.kind === 'read' ? 'read' : 'block status';
  return new NbdError('server', `${what} of ${req.offset}+${req.length} failed: ${errnoName(errno)}${message ? `: ${message}` : ''}`, { errno });
}

/** Appends extents clipped to `end` to `out`, merging with the previous one when flags are equal. */
function appendClipped(out: StatusExtent[], extents: readonly StatusExtent[], end: number): void {
  for (const e of extents) {
    if (e.offset >= end) break;
    const length = Math.min(e.length, end - e.offset);
    const last = out[out.length - 1];
    if (last && last.flags === e.flags && last.offset + last.length === e.offset) last.length += length;
    else out.push({ offset: e.offset, length, flags: e.flags });
  }
}
