import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type Socket } from 'node:net';
import { NbdError } from './errors.js';
import { SocketReader } from './reader.js';

/** A TCP server that sends `data` to each client and closes; its port. */
async function serving(data: Buffer): Promise<{ port: number; close: () => void }> {
  const server = createServer((s) => s.end(data));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

/** Both ways of receiving: Node's 'data' events, and onread (payloads straight into the caller's buffer). */
const modes: [string, (port: number, highWater?: number) => SocketReader][] = [
  ['data events', (port, highWater) => new SocketReader(createConnection({ host: '127.0.0.1', port }), highWater)],
  [
    'onread',
    (port, highWater) => {
      const reader = new SocketReader(null, highWater);
      const socket: Socket = createConnection({ host: '127.0.0.1', port, onread: reader.onread() });
      reader.attach(socket);
      return reader;
    },
  ],
];

for (const [mode, open] of modes) {
  test(`${mode}: a consumer that falls behind pauses the socket: buffering stays bounded, no byte is lost`, async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const server = await serving(data);
    try {
      const highWater = 256 * 1024;
      const reader = open(server.port, highWater);
      const head = await reader.readExact(4);
      while (!reader.isPaused) await new Promise((r) => setImmediate(r)); // the consumer now sleeps
      for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r)); // let pending socket I/O run: no more may arrive
      assert.ok(reader.bufferedBytes < highWater + 1024 * 1024, `${reader.bufferedBytes} bytes buffered`);
      const rest = Buffer.alloc(data.length - 4);
      await reader.copyTo(rest, 0, rest.length);
      assert.ok(Buffer.concat([head, rest]).equals(data));
      await assert.rejects(reader.readExact(1), (e: unknown) => e instanceof NbdError && e.failure === 'closed');
    } finally {
      server.close();
    }
  });

  test(`${mode}: headers and payloads of every size interleave without a byte out of place`, async () => {
    // Frames [u32 length][payload], lengths from 0 to 3 MiB: headers land in staging, payloads
    // partly staged (what came with the header) and partly read straight into the target.
    const sizes = [0, 1, 7, 4095, 16 * 1024, 16 * 1024 + 1, 65536, 3 << 20, 5, 2 << 20, 123457, 0, 1 << 20];
    const frames = sizes.map((n) => {
      const f = Buffer.alloc(4 + n);
      f.writeUInt32BE(n, 0);
      randomBytes(n).copy(f, 4);
      return f;
    });
    const server = await serving(Buffer.concat(frames));
    try {
      const reader = open(server.port);
      for (const f of frames) {
        const n = (await reader.readExact(4)).readUInt32BE(0);
        assert.equal(n, f.length - 4);
        const target = Buffer.alloc(n + 10, 0xee); // payload at offset 5: neighbours must stay untouched
        if (n > 0) await reader.copyTo(target, 5, n);
        assert.ok(target.subarray(5, 5 + n).equals(f.subarray(4)), `payload of ${n} bytes`);
        assert.ok(target.subarray(0, 5).every((b) => b === 0xee) && target.subarray(5 + n).every((b) => b === 0xee), `bytes around a ${n}-byte payload`);
      }
      await assert.rejects(reader.readExact(1), (e: unknown) => e instanceof NbdError && e.failure === 'closed');
      // onread: most payload bytes never passed through a staging buffer.
      if (mode === 'onread') assert.ok(reader.directBytes > 0.9 * (6 << 20), `${reader.directBytes} bytes read straight into the targets`);
      else assert.equal(reader.directBytes, 0);
    } finally {
      server.close();
    }
  });

  test(`${mode}: a payload cut short by the server fails the waiting copy`, async () => {
    const server = await serving(randomBytes(100_000));
    try {
      const reader = open(server.port);
      await assert.rejects(reader.copyTo(Buffer.alloc(200_000), 0, 200_000), (e: unknown) => e instanceof NbdError && e.failure === 'closed');
    } finally {
      server.close();
    }
  });
}
