import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer } from 'node:net';
import { NbdError } from './errors.js';
import { SocketReader } from './reader.js';

test('a consumer that falls behind pauses the socket: buffering stays bounded, no byte is lost', async () => {
  const data = randomBytes(16 * 1024 * 1024);
  const server = createServer((s) => s.end(data));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  const port = (server.address() as { port: number }).port;
  try {
    const highWater = 256 * 1024;
    const reader = new SocketReader(createConnection({ host: '127.0.0.1', port }), highWater);
    const head = await reader.readExact(4);
    while (!reader.isPaused) await new Promise((r) => setImmediate(r)); // the consumer now sleeps
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r)); // let pending socket I/O run: no 'data' may follow
    assert.ok(reader.bufferedBytes < highWater + 1024 * 1024, `${reader.bufferedBytes} bytes buffered`);
    const rest = Buffer.alloc(data.length - 4);
    await reader.copyTo(rest, 0, rest.length);
    assert.ok(Buffer.concat([head, rest]).equals(data));
    await assert.rejects(reader.readExact(1), (e: unknown) => e instanceof NbdError && e.failure === 'closed');
  } finally {
    server.close();
  }
});
