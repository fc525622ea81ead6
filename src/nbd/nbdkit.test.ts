import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient } from './client.js';
import { NbdError } from './errors.js';
import { accepts, freePort, skipUnlessInstalled, startServer, type ServerProcess } from './testing.js';

const MiB = 1024 * 1024;

describe('NBD client against nbdkit', { skip: skipUnlessInstalled('nbdkit') }, () => {
  let dir = '';
  const servers: ServerProcess[] = [];

  async function nbdkit(name: string, args: string[]): Promise<{ server: ServerProcess; socketPath: string }> {
    const socketPath = join(dir, `${name}.sock`);
    const server = await startServer('nbdkit', ['--foreground', '-U', socketPath, ...args], () => accepts(socketPath));
    servers.push(server);
    return { server, socketPath };
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-nbdkit-'));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('over TCP: the pattern plugin reads back as its 8-byte big-endian offsets', async () => {
    const port = await freePort();
    const server = await startServer('nbdkit', ['--foreground', '-i', '127.0.0.1', '-p', String(port), 'pattern', 'size=8M'], () => accepts(port));
    servers.push(server);
    const c = await NbdClient.connect({ host: '127.0.0.1', port });
    try {
      assert.equal(c.size, 8 * MiB);
      const buf = Buffer.alloc(c.size);
      await c.readInto(buf, 0, c.size, 0, { requestSize: 512 * 1024, depth: 4 });
      for (let i = 0; i < buf.length; i += 8) if (buf.readBigUInt64BE(i) !== BigInt(i)) assert.fail(`byte ${i} holds ${buf.readBigUInt64BE(i)}`);
    } finally {
      await c.close();
    }
  });

  test('an injected EIO on reads is a server error; the connection stays usable for block status', async () => {
    const { socketPath } = await nbdkit('eio', ['--filter=error', 'memory', 'size=1M', 'error-pread=EIO', 'error-pread-rate=100%']);
    const c = await NbdClient.connect({ socketPath, metaContexts: ['base:allocation'] });
    try {
      await assert.rejects(c.read(0, 4096), (e: unknown) => e instanceof NbdError && e.failure === 'server' && e.errno === 5);
      const map = await c.mapExtents();
      assert.equal(map.get('base:allocation')!.reduce((n, e) => n + e.length, 0), 1 * MiB);
    } finally {
      await c.close();
    }
  });

  test('server killed while reads wait on it: every pending read fails as closed', async () => {
    const { server, socketPath } = await nbdkit('slow', ['--filter=delay', 'memory', 'size=16M', 'delay-read=30']);
    const c = await NbdClient.connect({ socketPath });
    const reads = [c.read(0, 4096), c.read(1 * MiB, 4096), c.read(2 * MiB, 1 * MiB)];
    for (const r of reads) r.catch(() => undefined);
    assert.equal(c.inFlight, 3);
    await server.stop('SIGKILL');
    for (const r of reads) await assert.rejects(r, (e: unknown) => e instanceof NbdError && e.failure === 'closed');
    assert.equal(c.inFlight, 0);
  });
});
