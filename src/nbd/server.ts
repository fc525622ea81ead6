import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import * as P from './protocol.js';
import { SocketReader } from './reader.js';

/**
 * A read-only NBD server (fixed newstyle; NetworkBlockDevice/nbd doc/proto.md) for one export
 * on a unix socket: NBD_OPT_GO / INFO / EXPORT_NAME / LIST, structured replies, the
 * `base:allocation` meta context, and READ / BLOCK_STATUS / FLUSH / CACHE / DISC. Writes,
 * trims and write-zeroes are refused with EPERM. Tested against this folder's client and
 * against qemu-img, qemu-nbd, nbdinfo and libguestfs as peers (server.test.ts).
 */

/** One extent of the export's allocation: `zero` ranges read as zeros and are reported as holes. */
export interface ExportExtent {
  length: number;
  zero: boolean;
}

/** What the server exports. Reads within [0, size) only (the server checks the range). */
export interface NbdExportSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** Consecutive extents starting at `offset`, covering at least one byte of the range. */
  extents(offset: number, length: number): Promise<ExportExtent[]>;
}

export interface NbdServerOptions {
  /** Unix socket path; its directory should be private (0700): the socket is chmod 0600 after bind. */
  socketPath: string;
  source: NbdExportSource;
  /** Name of the export; '' (the default export) is always accepted too. */
  exportName?: string;
  logger?: Logger;
  /** Requests served concurrently per connection (default 8). */
  maxInFlight?: number;
}

/** Largest read (and the advertised maximum block size). */
const MAX_REQUEST = P.DEFAULT_MAX_PAYLOAD;
const MAX_OPTION_DATA = 64 * 1024;
const MAX_EXTENTS_PER_REPLY = 64 * 1024;
const BASE_ALLOCATION_ID = 1;

export class NbdServer {
  private readonly sockets = new Set<Socket>();
  private closed = false;

  private constructor(
    private readonly server: Server,
    private readonly opts: NbdServerOptions,
  ) {}

  /** Binds the socket (removing a stale file first), mode 0600, and starts accepting. */
  static async listen(opts: NbdServerOptions): Promise<NbdServer> {
    rmSync(opts.socketPath, { force: true });
    const server = createServer();
    const nbd = new NbdServer(server, opts);
    server.on('connection', (s) => nbd.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(opts.socketPath, 0o600);
    return nbd;
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  /** Open client connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting, drops every connection and removes the socket file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.opts.socketPath, { force: true });
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined); // the reader sees it and the session ends
    const log = this.opts.logger ?? silentLogger;
    new Session(socket, this.opts)
      .run()
      .catch((e: unknown) => log.debug({ err: errorMessage(e) }, 'NBD session ended'))
      .finally(() => socket.destroy());
  }
}

/** One client connection: the option haggling, then the transmission phase. */
class Session {
  private readonly reader: SocketReader;
  private structured = false;
  private allocationContext = false;
  private noZeroes = false;
  private inFlight = 0;
  private slotFreed: (() => void) | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly opts: NbdServerOptions,
  ) {
    this.reader = new SocketReader(socket);
  }

  async run(): Promise<void> {
    const g = Buffer.alloc(18);
    g.writeBigUInt64BE(P.NBDMAGIC, 0);
    g.writeBigUInt64BE(P.IHAVEOPT, 8);
    g.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
    this.socket.write(g);
    const clientFlags = (await this.reader.readExact(4)).readUInt32BE(0);
    this.noZeroes = (clientFlags & P.FLAG_NO_ZEROES) !== 0;
    if (!(await this.options())) return;
    await this.transmission();
  }

  private knownExport(name: string): boolean {
    return name === '' || name === (this.opts.exportName ?? '');
  }

  private get transmissionFlags(): number {
    return P.TFLAG_HAS_FLAGS | P.TFLAG_READ_ONLY | P.TFLAG_SEND_FLUSH | P.TFLAG_SEND_CACHE | P.TFLAG_CAN_MULTI_CONN;
  }

  private optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(type >>> 0, 12);
    h.writeUInt32BE(data.length, 16);
    this.socket.write(Buffer.concat([h, data]));
  }

  /** The option phase; true when the client entered transmission. */
  private async options(): Promise<boolean> {
    for (;;) {
      const h = await this.reader.readExact(16);
      if (h.readBigUInt64BE(0) !== P.IHAVEOPT) return false;
      const option = h.readUInt32BE(8);
      const length = h.readUInt32BE(12);
      if (length > MAX_OPTION_DATA) {
        if (length > 16 * MAX_OPTION_DATA) return false;
        await this.reader.skip(length);
        this.optionReply(option, P.REP_ERR_TOO_BIG);
        continue;
      }
      const data = await this.reader.readExact(length);
      switch (option) {
        case P.OPT_EXPORT_NAME: {
          if (!this.knownExport(data.toString('utf8'))) return false; // the protocol's only answer: hang up
          const r = Buffer.alloc(this.noZeroes ? 10 : 134);
          r.writeBigUInt64BE(BigInt(this.opts.source.size), 0);
          r.writeUInt16BE(this.transmissionFlags, 8);
          this.socket.write(r);
          return true;
        }
        case P.OPT_ABORT:
          this.optionReply(option, P.REP_ACK);
          return false;
        case P.OPT_LIST: {
          const name = Buffer.from(this.opts.exportName ?? '', 'utf8');
          const d = Buffer.alloc(4 + name.length);
          d.writeUInt32BE(name.length, 0);
          name.copy(d, 4);
          this.optionReply(option, P.REP_SERVER, d);
          this.optionReply(option, P.REP_ACK);
          break;
        }
        case P.OPT_INFO:
        case P.OPT_GO:
          if (this.infoOrGo(option, data)) return true;
          break;
        case P.OPT_STRUCTURED_REPLY:
          if (length !== 0) this.optionReply(option, P.REP_ERR_INVALID);
          else {
            this.structured = true;
            this.optionReply(option, P.REP_ACK);
          }
          break;
        case P.OPT_SET_META_CONTEXT:
        case P.OPT_LIST_META_CONTEXT:
          this.metaContext(option, data);
          break;
        default:
          this.optionReply(option, P.REP_ERR_UNSUP);
      }
    }
  }

  /** NBD_OPT_INFO / NBD_OPT_GO; true when GO succeeded. */
  private infoOrGo(option: number, data: Buffer): boolean {
    const nameLen = data.length >= 4 ? data.readUInt32BE(0) : -1;
    if (nameLen < 0 || data.length < 4 + nameLen + 2 || data.length !== 4 + nameLen + 2 + 2 * data.readUInt16BE(4 + nameLen)) {
      this.optionReply(option, P.REP_ERR_INVALID);
      return false;
    }
    if (!this.knownExport(data.toString('utf8', 4, 4 + nameLen))) {
      this.optionReply(option, P.REP_ERR_UNKNOWN);
      return false;
    }
    const exp = Buffer.alloc(12);
    exp.writeUInt16BE(P.INFO_EXPORT, 0);
    exp.writeBigUInt64BE(BigInt(this.opts.source.size), 2);
    exp.writeUInt16BE(this.transmissionFlags, 10);
    this.optionReply(option, P.REP_INFO, exp);
    const bs = Buffer.alloc(14);
    bs.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
    bs.writeUInt32BE(1, 2);
    bs.writeUInt32BE(4096, 6);
    bs.writeUInt32BE(MAX_REQUEST, 10);
    this.optionReply(option, P.REP_INFO, bs);
    this.optionReply(option, P.REP_ACK);
    return option === P.OPT_GO;
  }

  /** NBD_OPT_SET_META_CONTEXT / LIST_META_CONTEXT: only `base:allocation` exists. */
  private metaContext(option: number, data: Buffer): void {
    const parsed = parseMetaQueries(data);
    if (!parsed || (option === P.OPT_SET_META_CONTEXT && !this.structured)) {
      this.optionReply(option, P.REP_ERR_INVALID);
      return;
    }
    if (!this.knownExport(parsed.exportName)) {
      this.optionReply(option, P.REP_ERR_UNKNOWN);
      return;
    }
    const list = option === P.OPT_LIST_META_CONTEXT;
    const match = parsed.queries.some((q) => q === P.BASE_ALLOCATION || (list && q === 'base:')) || (list && parsed.queries.length === 0);
    if (option === P.OPT_SET_META_CONTEXT) this.allocationContext = match;
    if (match) {
      const name = Buffer.from(P.BASE_ALLOCATION);
      const d = Buffer.alloc(4 + name.length);
      d.writeUInt32BE(BASE_ALLOCATION_ID, 0);
      name.copy(d, 4);
      this.optionReply(option, P.REP_META_CONTEXT, d);
    }
    this.optionReply(option, P.REP_ACK);
  }

  private async transmission(): Promise<void> {
    for (;;) {
      while (this.inFlight >= (this.opts.maxInFlight ?? 8)) await new Promise<void>((r) => (this.slotFreed = r));
      const h = await this.reader.readExact(28);
      if (h.readUInt32BE(0) !== P.REQUEST_MAGIC) return;
      const flags = h.readUInt16BE(4);
      const type = h.readUInt16BE(6);
      const handle = h.subarray(8, 16);
      const offset = Number(h.readBigUInt64BE(16));
      const length = h.readUInt32BE(24);
      if (type === P.CMD_DISC) {
        while (this.inFlight > 0) await new Promise<void>((r) => (this.slotFreed = r));
        this.socket.end();
        return;
      }
      if (type === P.CMD_WRITE) {
        if (length > MAX_REQUEST) return; // cannot stay in sync with a payload that large
        await this.reader.skip(length);
        this.sendError(handle, P.EPERM, 'the export is read-only');
        continue;
      }
      this.inFlight++;
      void this.handle(type, flags, handle, offset, length).finally(() => {
        this.inFlight--;
        const w = this.slotFreed;
        this.slotFreed = null;
        w?.();
      });
    }
  }

  private async handle(type: number, flags: number, handle: Buffer, offset: number, length: number): Promise<void> {
    const size = this.opts.source.size;
    const inRange = Number.isSafeInteger(offset) && offset + length <= size;
    try {
      switch (type) {
        case P.CMD_READ:
          if (!inRange || length > MAX_REQUEST) return this.sendError(handle, P.EINVAL, 'read outside the export or too large');
          return this.sendRead(handle, offset, await this.opts.source.read(offset, length));
        case P.CMD_BLOCK_STATUS:
          if (!this.structured || !this.allocationContext) return this.sendError(handle, P.EINVAL, 'no meta context negotiated');
          if (!inRange || length === 0) return this.sendError(handle, P.EINVAL, 'block status outside the export');
          return this.sendStatus(handle, offset, length, (flags & P.CMD_FLAG_REQ_ONE) !== 0);
        case P.CMD_FLUSH:
        case P.CMD_CACHE:
          return this.sendOk(handle);
        case P.CMD_TRIM:
        case P.CMD_WRITE_ZEROES:
          return this.sendError(handle, P.EPERM, 'the export is read-only');
        default:
          return this.sendError(handle, P.EINVAL, 'unknown command');
      }
    } catch (e) {
      (this.opts.logger ?? silentLogger).warn({ err: errorMessage(e), offset, length }, 'NBD export read failed');
      this.sendError(handle, P.EIO, 'read failed');
    }
  }

  private async sendStatus(handle: Buffer, offset: number, length: number, one: boolean): Promise<void> {
    const extents = await this.opts.source.extents(offset, length);
    const descriptors: ExportExtent[] = [];
    let covered = 0;
    for (const e of extents) {
      const n = Math.min(e.length, length - covered);
      if (n <= 0) break;
      const prev = descriptors[descriptors.length - 1];
      if (prev && prev.zero === e.zero) prev.length += n;
      else descriptors.push({ length: n, zero: e.zero });
      covered += n;
      if (descriptors.length >= MAX_EXTENTS_PER_REPLY) break;
    }
    if (descriptors.length === 0) return this.sendError(handle, P.EIO, 'no allocation information');
    const list = one ? descriptors.slice(0, 1) : descriptors;
    const payload = Buffer.alloc(4 + 8 * list.length);
    payload.writeUInt32BE(BASE_ALLOCATION_ID, 0);
    list.forEach((d, i) => {
      payload.writeUInt32BE(d.length, 4 + 8 * i);
      payload.writeUInt32BE(d.zero ? P.STATE_HOLE | P.STATE_ZERO : 0, 8 + 8 * i);
    });
    this.socket.write(Buffer.concat([chunkHeader(handle, P.REPLY_TYPE_BLOCK_STATUS, payload.length), payload]));
  }

  private sendRead(handle: Buffer, offset: number, data: Buffer): void {
    if (!this.structured) {
      this.socket.write(Buffer.concat([simpleReply(handle, 0), data]));
      return;
    }
    const off = Buffer.alloc(8);
    off.writeBigUInt64BE(BigInt(offset));
    this.socket.write(Buffer.concat([chunkHeader(handle, P.REPLY_TYPE_OFFSET_DATA, 8 + data.length), off, data]));
  }

  private sendOk(handle: Buffer): void {
    this.socket.write(this.structured ? chunkHeader(handle, P.REPLY_TYPE_NONE, 0) : simpleReply(handle, 0));
  }

  private sendError(handle: Buffer, errno: number, message: string): void {
    if (!this.structured) {
      this.socket.write(simpleReply(handle, errno));
      return;
    }
    const msg = Buffer.from(message, 'utf8');
    const p = Buffer.alloc(6 + msg.length);
    p.writeUInt32BE(errno, 0);
    p.writeUInt16BE(msg.length, 4);
    msg.copy(p, 6);
    this.socket.write(Buffer.concat([chunkHeader(handle, P.REPLY_TYPE_ERROR, p.length), p]));
  }
}

function simpleReply(handle: Buffer, errno: number): Buffer {
  const r = Buffer.alloc(16);
  r.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
  r.writeUInt32BE(errno, 4);
  handle.copy(r, 8);
  return r;
}

/** A structured reply chunk header; every reply here is one chunk, so it carries DONE. */
function chunkHeader(handle: Buffer, type: number, length: number): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
  h.writeUInt16BE(P.REPLY_FLAG_DONE, 4);
  h.writeUInt16BE(type, 6);
  handle.copy(h, 8);
  h.writeUInt32BE(length, 16);
  return h;
}

/** Export name and queries of a meta context option, or null when malformed. */
function parseMetaQueries(data: Buffer): { exportName: string; queries: string[] } | null {
  let p = 0;
  const str = (): string | null => {
    if (p + 4 > data.length) return null;
    const n = data.readUInt32BE(p);
    if (p + 4 + n > data.length) return null;
    const s = data.toString('utf8', p + 4, p + 4 + n);
    p += 4 + n;
    return s;
  };
  const exportName = str();
  if (exportName === null || p + 4 > data.length) return null;
  const count = data.readUInt32BE(p);
  p += 4;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    const q = str();
    if (q === null) return null;
    queries.push(q);
  }
  return p === data.length ? { exportName, queries } : null;
}
