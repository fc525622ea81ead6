import type { Socket } from 'node:net';
import { ValidationError } from '../lib/errors.js';
import { NbdError, protocolError } from './errors.js';
import * as P from './protocol.js';
import type { SocketReader } from './reader.js';

/** What the handshake settled: the export and the features this connection may use. */
export interface ExportInfo {
  exportName: string;
  /** Export size in bytes. */
  size: number;
  /** Raw 16-bit transmission flags (NBD_FLAG_*). */
  transmissionFlags: number;
  readOnly: boolean;
  /** The server allows several connections to one export (reads may be spread over them). */
  canMultiConn: boolean;
  /** Block size constraints; defaults (1, 4096, 32 MiB) when the server sent none. */
  blockSize: { minimum: number; preferred: number; maximum: number };
  structuredReplies: boolean;
  /** Meta contexts the server agreed to, by name → context id. Requested names it lacks are absent. */
  metaContexts: ReadonlyMap<string, number>;
}

export interface HandshakeOptions {
  exportName: string;
  metaContexts: readonly string[];
  structuredReplies: boolean;
}

interface OptionReply {
  type: number;
  payload: Buffer;
}

const OPTION_NAMES: Record<number, string> = {
  [P.OPT_GO]: 'NBD_OPT_GO',
  [P.OPT_STRUCTURED_REPLY]: 'NBD_OPT_STRUCTURED_REPLY',
  [P.OPT_SET_META_CONTEXT]: 'NBD_OPT_SET_META_CONTEXT',
};

/**
 * Fixed-newstyle negotiation up to the transmission phase: structured replies (when wanted or
 * needed for meta contexts), meta contexts, then NBD_OPT_GO with the export name.
 */
export async function negotiate(socket: Socket, reader: SocketReader, opts: HandshakeOptions): Promise<ExportInfo> {
  const wantContexts = opts.metaContexts.length > 0;
  checkString('export name', opts.exportName);
  for (const c of opts.metaContexts) checkString('meta context', c);
  await greet(socket, reader);
  let structured = false;
  if (opts.structuredReplies || wantContexts) structured = await negotiateStructuredReplies(socket, reader, wantContexts);
  const contexts = wantContexts ? await negotiateMetaContexts(socket, reader, opts.exportName, opts.metaContexts) : new Map<string, number>();
  const info = await go(socket, reader, opts.exportName);
  return { ...info, exportName: opts.exportName, structuredReplies: structured, metaContexts: contexts };
}

function checkString(what: string, s: string): void {
  if (Buffer.byteLength(s) > 4096 || s.includes('\0')) throw new ValidationError(`NBD ${what} is longer than 4096 bytes or contains NUL`);
}

async function greet(socket: Socket, reader: SocketReader): Promise<void> {
  const g = await reader.readExact(16);
  if (g.readBigUInt64BE(0) !== P.NBDMAGIC) throw protocolError('the greeting does not start with NBDMAGIC');
  const second = g.readBigUInt64BE(8);
  if (second === P.OLDSTYLE_MAGIC) throw new NbdError('unsupported', 'the server speaks only the oldstyle handshake');
  if (second !== P.IHAVEOPT) throw protocolError('unknown handshake magic');
  const flags = (await reader.readExact(2)).readUInt16BE(0);
  if (!(flags & P.FLAG_FIXED_NEWSTYLE)) throw new NbdError('unsupported', 'the server does not offer fixed newstyle negotiation');
  const client = Buffer.alloc(4);
  client.writeUInt32BE(P.FLAG_FIXED_NEWSTYLE | (flags & P.FLAG_NO_ZEROES));
  socket.write(client);
}

function sendOption(socket: Socket, option: number, data: Buffer): void {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(P.IHAVEOPT, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(data.length, 12);
  socket.write(Buffer.concat([h, data]));
}

async function readOptionReply(reader: SocketReader, option: number): Promise<OptionReply> {
  const h = await reader.readExact(20);
  if (h.readBigUInt64BE(0) !== P.OPTION_REPLY_MAGIC) throw protocolError('bad option reply magic');
  if (h.readUInt32BE(8) !== option) throw protocolError(`reply to option ${h.readUInt32BE(8)} while ${OPTION_NAMES[option]} was pending`);
  const length = h.readUInt32BE(16);
  if (length > P.MAX_OPTION_REPLY) throw protocolError(`option reply of ${length} bytes`);
  return { type: h.readUInt32BE(12), payload: await reader.readExact(length) };
}

/** The error for an option the server refused; the server's own message (if any) is kept, shortened. */
function optionRefused(option: number, reply: OptionReply, exportName: string): NbdError {
  const text = reply.payload.toString('utf8', 0, Math.min(reply.payload.length, 200)).replace(/[^\x20-\x7e]/g, '?');
  const detail = text ? `: ${text}` : '';
  const name = OPTION_NAMES[option];
  if (reply.type === P.REP_ERR_UNKNOWN) return new NbdError('not-found', `export '${exportName}' not found${detail}`);
  if (reply.type === P.REP_ERR_UNSUP) return new NbdError('unsupported', `the server does not support ${name}${detail}`);
  return new NbdError('server', `${name} refused (reply type 0x${reply.type.toString(16)})${detail}`);
}

function isError(reply: OptionReply): boolean {
  return reply.type >= P.REP_ERROR_BIT;
}

/** Returns false when the server lacks structured replies and nothing needs them. */
async function negotiateStructuredReplies(socket: Socket, reader: SocketReader, required: boolean): Promise<boolean> {
  sendOption(socket, P.OPT_STRUCTURED_REPLY, Buffer.alloc(0));
  const r = await readOptionReply(reader, P.OPT_STRUCTURED_REPLY);
  if (r.type === P.REP_ACK) return true;
  if (r.type === P.REP_ERR_UNSUP && !required) return false;
  if (isError(r)) throw optionRefused(P.OPT_STRUCTURED_REPLY, r, '');
  throw protocolError(`unexpected reply type ${r.type} to NBD_OPT_STRUCTURED_REPLY`);
}

function lengthPrefixed(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.alloc(4 + b.length);
  out.writeUInt32BE(b.length, 0);
  b.copy(out, 4);
  return out;
}

async function negotiateMetaContexts(socket: Socket, reader: SocketReader, exportName: string, names: readonly string[]): Promise<Map<string, number>> {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(names.length);
  sendOption(socket, P.OPT_SET_META_CONTEXT, Buffer.concat([lengthPrefixed(exportName), count, ...names.map(lengthPrefixed)]));
  const contexts = new Map<string, number>();
  for (;;) {
    const r = await readOptionReply(reader, P.OPT_SET_META_CONTEXT);
    if (r.type === P.REP_ACK) return contexts;
    if (isError(r)) throw optionRefused(P.OPT_SET_META_CONTEXT, r, exportName);
    if (r.type !== P.REP_META_CONTEXT || r.payload.length < 5) throw protocolError(`unexpected reply type ${r.type} to NBD_OPT_SET_META_CONTEXT`);
    contexts.set(r.payload.toString('utf8', 4), r.payload.readUInt32BE(0));
  }
}

type GoResult = Omit<ExportInfo, 'exportName' | 'structuredReplies' | 'metaContexts'>;

async function go(socket: Socket, reader: SocketReader, exportName: string): Promise<GoResult> {
  const infoRequests = Buffer.alloc(4);
  infoRequests.writeUInt16BE(1, 0);
  infoRequests.writeUInt16BE(P.INFO_BLOCK_SIZE, 2);
  sendOption(socket, P.OPT_GO, Buffer.concat([lengthPrefixed(exportName), infoRequests]));
  let exportInfo: { size: number; flags: number } | null = null;
  let blockSize = { minimum: 1, preferred: 4096, maximum: P.DEFAULT_MAX_PAYLOAD };
  for (;;) {
    const r = await readOptionReply(reader, P.OPT_GO);
    if (isError(r)) throw optionRefused(P.OPT_GO, r, exportName);
    if (r.type === P.REP_ACK) break;
    if (r.type !== P.REP_INFO || r.payload.length < 2) throw protocolError(`unexpected reply type ${r.type} to NBD_OPT_GO`);
    const item = r.payload.readUInt16BE(0);
    if (item === P.INFO_EXPORT) exportInfo = parseExportInfo(r.payload);
    else if (item === P.INFO_BLOCK_SIZE) blockSize = parseBlockSize(r.payload);
    // other NBD_INFO items (name, description) are not needed
  }
  if (!exportInfo) throw protocolError('NBD_OPT_GO succeeded without NBD_INFO_EXPORT');
  const { size, flags } = exportInfo;
  return { size, transmissionFlags: flags, readOnly: (flags & P.TFLAG_READ_ONLY) !== 0, canMultiConn: (flags & P.TFLAG_CAN_MULTI_CONN) !== 0, blockSize };
}

function parseExportInfo(p: Buffer): { size: number; flags: number } {
  if (p.length !== 12) throw protocolError('NBD_INFO_EXPORT of the wrong length');
  const size = p.readBigUInt64BE(2);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new NbdError('unsupported', `export size ${size} is beyond 2^53`);
  const flags = p.readUInt16BE(10);
  if (!(flags & P.TFLAG_HAS_FLAGS)) throw protocolError('transmission flags lack NBD_FLAG_HAS_FLAGS');
  return { size: Number(size), flags };
}

function parseBlockSize(p: Buffer): ExportInfo['blockSize'] {
  if (p.length !== 14) throw protocolError('NBD_INFO_BLOCK_SIZE of the wrong length');
  const minimum = p.readUInt32BE(2);
  const preferred = p.readUInt32BE(6);
  const maximum = p.readUInt32BE(10);
  const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (!pow2(minimum) || !pow2(preferred) || minimum > preferred || maximum < preferred) throw protocolError('inconsistent NBD_INFO_BLOCK_SIZE');
  return { minimum, preferred, maximum: Math.min(maximum, P.DEFAULT_MAX_PAYLOAD) };
}
