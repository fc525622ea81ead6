import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { NbdClient } from './client.js';
import { NbdError } from './errors.js';
import * as P from './protocol.js';

/**
 * A scripted in-process server that negotiates properly (structured replies, NBD_OPT_GO) and
 * then answers each request with what the test's `onRequest` writes: the way to check how the
 * client treats replies real servers never send.
 */
interface Req {
  handle: Buffer;
  offset: number;
  length: number;
}
type OnRequest = (s: Socket, r: Req, index: number) => void;

const SIZE = 1024 * 1024;

function fakeServer(onRequest: () => OnRequest): Server {
  return createServer((s) => {
    const handler = onRequest();
    let buf = Buffer.alloc(0);
    let phase: 'flags' | 'options' | 'transmission' = 'flags';
    let index = 0;
    const greeting = Buffer.alloc(18);
    greeting.writeBigUInt64BE(P.NBDMAGIC, 0);
    greeting.writeBigUInt64BE(P.IHAVEOPT, 8);
    greeting.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
    s.write(greeting);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (phase === 'flags' && buf.length >= 4) {
          buf = buf.subarray(4);
          phase = 'options';
        } else if (phase === 'options' && buf.length >= 16 && buf.length >= 16 + buf.readUInt32BE(12)) {
          const opt = buf.readUInt32BE(8);
          buf = buf.subarray(16 + buf.readUInt32BE(12));
          if (opt === P.OPT_GO) {
            const info = Buffer.alloc(12);
            info.writeUInt16BE(P.INFO_EXPORT, 0);
            info.writeBigUInt64BE(BigInt(SIZE), 2);
            info.writeUInt16BE(P.TFLAG_HAS_FLAGS | P.TFLAG_READ_ONLY, 10);
            s.write(optionReply(opt, P.REP_INFO, info));
            phase = 'transmission';
          }
          s.write(optionReply(opt, P.REP_ACK, Buffer.alloc(0)));
        } else if (phase === 'transmission' && buf.length >= 28) {
          const r = { handle: Buffer.from(buf.subarray(8, 16)), offset: Number(buf.readBigUInt64BE(16)), length: buf.readUInt32BE(24) };
          const type = buf.readUInt16BE(6);
          buf = buf.subarray(28);
          if (type === P.CMD_DISC) s.end();
          else handler(s, r, index++);
        } else return;
      }
    });
  });
}

function optionReply(opt: number, type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(type, 12);
  h.writeUInt32BE(data.length, 16);
  return Buffer.concat([h, data]);
}

function chunk(r: Req, type: number, payload: Buffer, done = true, handle = r.handle): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
  h.writeUInt16BE(done ? P.REPLY_FLAG_DONE : 0, 4);
  h.writeUInt16BE(type, 6);
  handle.copy(h, 8);
  h.writeUInt32BE(payload.length, 16);
  return Buffer.concat([h, payload]);
}

function dataChunk(r: Req, offset: number, data: Buffer, done = true): Buffer {
  const off = Buffer.alloc(8);
  off.writeBigUInt64BE(BigInt(offset));
  return chunk(r, P.REPLY_TYPE_OFFSET_DATA, Buffer.concat([off, data]), done);
}

function errorChunk(r: Req, errno: number, message: string): Buffer {
  const m = Buffer.from(message);
  const p = Buffer.alloc(6);
  p.writeUInt32BE(errno, 0);
  p.writeUInt16BE(m.length, 4);
  return chunk(r, P.REPLY_TYPE_ERROR_BIT + 1, Buffer.concat([p, m]));
}

const isFailure = (failure: NbdError['failure'], re?: RegExp) => (e: unknown) => e instanceof NbdError && e.failure === failure && (!re || re.test(e.message));

describe('NBD client against misbehaving servers', () => {
  let onRequest: OnRequest = () => undefined;
  let server: Server;
  let port = 0;

  before(async () => {
    server = fakeServer(() => onRequest);
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((res) => server.close(() => res())));

  const connect = (timeoutMs?: number) => NbdClient.connect({ host: '127.0.0.1', port, timeoutMs });

  test('data outside the requested range fails every pending request as a protocol violation', async () => {
    onRequest = (s, r, i) => {
      if (i === 1) s.write(dataChunk(r, r.offset + r.length, Buffer.alloc(16)));
    };
    const c = await connect();
    const first = c.read(0, 4096);
    const second = c.read(8192, 4096);
    await assert.rejects(second, isFailure('protocol', /outside the requested range/));
    await assert.rejects(first, isFailure('protocol', /outside the requested range/));
    await assert.rejects(c.read(0, 512), isFailure('protocol'));
  });

  test('a reply that covers only part of a read, a bad magic, an unknown handle: protocol violations', async () => {
    const cases: [OnRequest, RegExp][] = [
      [(s, r) => s.write(dataChunk(r, r.offset, Buffer.alloc(r.length - 1))), /covers 4095 of 4096/],
      [(s) => s.write(Buffer.alloc(32, 0x41)), /bad reply magic/],
      [(s, r) => s.write(chunk(r, P.REPLY_TYPE_NONE, Buffer.alloc(0), true, Buffer.alloc(8, 0x7f))), /unknown handle/],
      [(s, r) => s.write(Buffer.concat([dataChunk(r, r.offset, Buffer.alloc(2048), false), dataChunk(r, r.offset + 1024, Buffer.alloc(3072))])), /overlapping/],
    ];
    for (const [handler, re] of cases) {
      onRequest = handler;
      const c = await connect();
      await assert.rejects(c.read(0, 4096), isFailure('protocol', re));
    }
  });

  test('an error chunk fails only its request, with the server message; chunks in any order fill the buffer', async () => {
    onRequest = (s, r, i) => {
      if (i === 0) return void s.write(errorChunk(r, 5, 'disk on fire'));
      const hole = Buffer.alloc(12);
      hole.writeBigUInt64BE(BigInt(r.offset), 0);
      hole.writeUInt32BE(r.length / 2, 8);
      s.write(dataChunk(r, r.offset + r.length / 2, Buffer.alloc(r.length / 2, 0xab), false));
      s.write(chunk(r, P.REPLY_TYPE_OFFSET_HOLE, hole));
    };
    const c = await connect();
    await assert.rejects(c.read(0, 4096), isFailure('server', /EIO: disk on fire/));
    const got = await c.read(4096, 4096, Buffer.alloc(4096, 0xff));
    assert.ok(got.subarray(0, 2048).every((b) => b === 0));
    assert.ok(got.subarray(2048).every((b) => b === 0xab));
    await c.close();
  });

  test('replies in reverse order reach the request they answer (matched by handle)', async () => {
    const held: [Socket, Req][] = [];
    onRequest = (s, r) => {
      held.push([s, r]);
      if (held.length < 4) return;
      for (const [sock, req] of held.reverse()) sock.write(dataChunk(req, req.offset, Buffer.alloc(req.length, req.offset / 4096)));
    };
    const c = await connect();
    const reads = [0, 1, 2, 3].map((i) => c.read(i * 4096, 4096));
    assert.equal(c.inFlight, 4);
    const bufs = await Promise.all(reads);
    bufs.forEach((b, i) => assert.ok(b.every((x) => x === i), `read ${i} got another request's data`));
    await c.close();
  });

  test('no server at the socket: a closed error that names the cause but not the path', async () => {
    await assert.rejects(NbdClient.connect({ socketPath: '/nonexistent/lifeboat-nbd.sock' }), (e: unknown) => isFailure('closed', /ENOENT/)(e) && !/nonexistent/.test((e as Error).message));
  });

  test('a server that never answers fails the request after the timeout', async () => {
    onRequest = () => undefined;
    const c = await connect(200);
    const t0 = Date.now();
    await assert.rejects(c.read(0, 4096), isFailure('timeout'));
    assert.ok(Date.now() - t0 >= 150, 'failed before the timeout');
    await assert.rejects(c.read(0, 4096), isFailure('timeout'));
  });
});
