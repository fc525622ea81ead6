import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient } from './client.js';
import { nbdDiskSource } from './disk-source.js';
import { NbdError } from './errors.js';
import { dataExtents, dirtyExtents } from './extents.js';
import { BASE_ALLOCATION, STATE_HOLE, STATE_ZERO, dirtyBitmapContext } from './protocol.js';
import { accepts, run, skipUnlessInstalled, startServer, type ServerProcess } from './testing.js';

const MiB = 1024 * 1024;
const KiB = 1024;

/** qemu-nbd serving `image` read-only on a unix socket in `dir`; stopped by PID in `after`. */
async function qemuNbd(dir: string, name: string, image: string, format: 'raw' | 'qcow2', extra: string[] = []): Promise<{ server: ServerProcess; socketPath: string }> {
  const socketPath = join(dir, `${name}.sock`);
  const args = ['--read-only', '--persistent', '--shared=8', '-k', socketPath, '-x', name, '-f', format, ...extra, image];
  const server = await startServer('qemu-nbd', args, () => accepts(socketPath));
  return { server, socketPath };
}

/** A 64 MiB sparse raw file: random data at [0, 24 MiB) and [40 MiB, 64 MiB), a hole between. */
function makeSparseRaw(path: string): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, randomBytes(24 * MiB), 0, 24 * MiB, 0);
    writeSync(fd, randomBytes(24 * MiB), 0, 24 * MiB, 40 * MiB);
    ftruncateSync(fd, 64 * MiB);
  } finally {
    closeSync(fd);
  }
}

describe('NBD client against qemu-nbd', { skip: skipUnlessInstalled('qemu-nbd', 'qemu-img', 'qemu-io') }, () => {
  let dir = '';
  let rawPath = '';
  let qcowPath = '';
  const servers: ServerProcess[] = [];
  let raw: { socketPath: string };
  let qcow: { socketPath: string };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-nbd-'));
    rawPath = join(dir, 'disk.raw');
    qcowPath = join(dir, 'disk.qcow2');
    makeSparseRaw(rawPath);
    run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', rawPath, qcowPath]);
    const r = await qemuNbd(dir, 'raw', rawPath, 'raw');
    const q = await qemuNbd(dir, 'vda', qcowPath, 'qcow2');
    servers.push(r.server, q.server);
    raw = r;
    qcow = q;
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('handshake reports the export; a full pipelined read of a raw export is byte-exact', async () => {
    const c = await NbdClient.connect({ socketPath: raw.socketPath, exportName: 'raw' });
    try {
      assert.equal(c.size, 64 * MiB);
      assert.equal(c.info.readOnly, true);
      assert.equal(c.info.structuredReplies, true);
      assert.ok(c.info.blockSize.maximum >= 4 * MiB, `max block ${c.info.blockSize.maximum}`);
      const buf = Buffer.alloc(c.size, 0xee);
      await c.readInto(buf, 0, c.size, 0, { requestSize: 1 * MiB, depth: 8 });
      assert.ok(buf.equals(readFileSync(rawPath)), 'bytes differ from the image file');
    } finally {
      await c.close();
    }
  });

  test('a qcow2 export reads byte-exact; its unallocated clusters come back as zeroes', async () => {
    const c = await NbdClient.connect({ socketPath: qcow.socketPath, exportName: 'vda' });
    try {
      const buf = Buffer.alloc(c.size, 0xee); // 0xee must be overwritten everywhere, holes included
      await c.readInto(buf, 0, c.size, 0);
      assert.ok(buf.equals(readFileSync(rawPath)), 'bytes differ from the source image');
      const hole = await c.read(30 * MiB, 1 * MiB, Buffer.alloc(1 * MiB, 0xff));
      assert.ok(hole.every((b) => b === 0), 'a hole read must fill the buffer with zeroes');
    } finally {
      await c.close();
    }
  });

  for (const kind of ['raw', 'qcow2'] as const) {
    test(`base:allocation reports the 16 MiB hole of a sparse ${kind} image`, async () => {
      const target = kind === 'raw' ? { socketPath: raw.socketPath, exportName: 'raw' } : { socketPath: qcow.socketPath, exportName: 'vda' };
      const c = await NbdClient.connect({ ...target, metaContexts: [BASE_ALLOCATION] });
      try {
        assert.ok(c.info.metaContexts.has(BASE_ALLOCATION));
        const map = (await c.mapExtents()).get(BASE_ALLOCATION)!;
        const covered = map.reduce((n, e) => n + e.length, 0);
        assert.equal(covered, c.size, 'the map covers the whole export');
        assert.deepEqual(dataExtents(map), [
          { offset: 0, length: 24 * MiB },
          { offset: 40 * MiB, length: 24 * MiB },
        ]);
        const hole = map.find((e) => e.offset === 24 * MiB);
        assert.deepEqual(hole, { offset: 24 * MiB, length: 16 * MiB, flags: STATE_HOLE | STATE_ZERO });
      } finally {
        await c.close();
      }
    });
  }

  test('pipelined reads of a big range keep several requests in flight and stay byte-exact', async () => {
    const c = await NbdClient.connect({ socketPath: raw.socketPath, exportName: 'raw' });
    const fh = await open(rawPath, 'r');
    try {
      let maxInFlight = 0;
      let bytes = 0;
      const expected = Buffer.alloc(2 * MiB);
      await c.readStream(0, c.size, async (data, offset) => {
        maxInFlight = Math.max(maxInFlight, c.inFlight);
        await fh.read(expected, 0, data.length, offset);
        assert.ok(data.equals(expected.subarray(0, data.length)), `bytes differ at ${offset}`);
        assert.equal(offset, bytes, 'pieces arrive in order');
        bytes += data.length;
      }, { requestSize: 2 * MiB, depth: 6 });
      assert.equal(bytes, c.size);
      assert.ok(maxInFlight >= 2, `only ${maxInFlight} request(s) were ever in flight`);
    } finally {
      await fh.close();
      await c.close();
    }
  });

  test('a read past the end is a server error (EINVAL) and the connection stays usable', async () => {
    const c = await NbdClient.connect({ socketPath: raw.socketPath, exportName: 'raw' });
    try {
      await assert.rejects(c.read(c.size - 512, 4096), (e: unknown) => e instanceof NbdError && e.failure === 'server' && e.errno === 22 && /EINVAL/.test(e.message));
      const tail = await c.read(c.size - 4096, 4096);
      assert.ok(tail.equals(readFileSync(rawPath).subarray(c.size - 4096)));
      await assert.rejects(c.readInto(Buffer.alloc(8192), 0, 8192, c.size - 4096), /outside the export/);
    } finally {
      await c.close();
    }
  });

  test('an unknown export is not-found; an unknown bitmap context is simply absent', async () => {
    await assert.rejects(NbdClient.connect({ socketPath: raw.socketPath, exportName: 'nope' }), (e: unknown) => e instanceof NbdError && e.failure === 'not-found');
    const c = await NbdClient.connect({ socketPath: raw.socketPath, exportName: 'raw', metaContexts: [dirtyBitmapContext('nope')] });
    try {
      assert.equal(c.info.metaContexts.size, 0);
      await assert.rejects(c.blockStatus(0, 4096), (e: unknown) => e instanceof NbdError && e.failure === 'unsupported');
    } finally {
      await c.close();
    }
  });

  test('qemu-nbd killed in the middle of a pipelined read: the read fails as closed, later calls too', async () => {
    const { server, socketPath } = await qemuNbd(dir, 'victim', rawPath, 'raw');
    servers.push(server);
    const c = await NbdClient.connect({ socketPath, exportName: 'victim' });
    let pieces = 0;
    const reading = c.readStream(0, c.size, async () => {
      if (++pieces === 1) await server.stop('SIGKILL');
    }, { requestSize: 1 * MiB, depth: 4 });
    await assert.rejects(reading, (e: unknown) => e instanceof NbdError && e.failure === 'closed');
    assert.ok(pieces < 64, `only part of the export was delivered (${pieces} MiB)`);
    await assert.rejects(c.read(0, 4096), (e: unknown) => e instanceof NbdError && e.failure === 'closed');
    await c.close(); // nothing left to close: returns at once
  });

  test('a qemu:dirty-bitmap context reports exactly the written ranges rounded to the granularity', async () => {
    const img = join(dir, 'cbt.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', img, '64M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 8M', img]); // before the bitmap: clean
    run('qemu-img', ['bitmap', '--add', '--enable', '-g', '65536', img, 'cp1']);
    const writes = ['write -P 0x5a 1M 64k', 'write -P 0x5b 10486760 100k', 'write -z 20M 128k', 'write -P 0x5c 66125823 512'];
    run('qemu-io', ['-f', 'qcow2', ...writes.flatMap((w) => ['-c', w]), img]);
    const flat = join(dir, 'cbt.raw');
    run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', img, flat]);
    const { server, socketPath } = await qemuNbd(dir, 'cbt', img, 'qcow2', ['-B', 'cp1']);
    servers.push(server);
    const context = dirtyBitmapContext('cp1');
    const c = await NbdClient.connect({ socketPath, exportName: 'cbt', metaContexts: [BASE_ALLOCATION, context] });
    try {
      const map = await c.mapExtents();
      const expected = [
        { offset: 1 * MiB, length: 64 * KiB }, // aligned 64 KiB write
        { offset: 10 * MiB, length: 128 * KiB }, // 100 KiB at +1000 crosses into the next granule
        { offset: 20 * MiB, length: 128 * KiB }, // a zero write is dirty too
        { offset: 63 * MiB, length: 128 * KiB }, // 512 bytes across the 63 MiB + 64 KiB edge
      ];
      assert.deepEqual(dirtyExtents(map.get(context)!), expected);
      const source = nbdDiskSource(c, { dirty: { checkpoint: 'cp1', context }, alignment: 64 * KiB });
      assert.deepEqual(await source.changedExtentsSince!('cp1'), expected);
      assert.equal(await source.changedExtentsSince!('cp0'), null, 'another checkpoint is not trusted');
      assert.deepEqual(await source.allocatedExtents!(), [
        { offset: 0, length: 8 * MiB },
        { offset: 10 * MiB, length: 128 * KiB },
        { offset: 63 * MiB, length: 128 * KiB },
      ]);
      const want = readFileSync(flat);
      for (const e of expected) {
        const got = Buffer.alloc(e.length);
        assert.equal(await source.read(got, 0, e.length, e.offset), e.length);
        assert.ok(got.equals(want.subarray(e.offset, e.offset + e.length)), `dirty range ${e.offset} differs`);
      }
    } finally {
      await c.close();
    }
  });
});
