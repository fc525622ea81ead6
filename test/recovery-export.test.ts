import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { NbdClient } from '../src/nbd/client.js';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { BASE_ALLOCATION } from '../src/nbd/protocol.js';
import type { Repository } from '../src/repository/repository.js';
import { DiskExport } from '../src/recovery/disk-export.js';
import { fsRepository, mustRun, newProjectId, pseudoRandom, runTool, snapshotFiles } from './recovery-fixtures.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CS = 64 * KiB;

/** 8 MiB + an odd tail: data, a 3 MiB hole, data, zeros in the middle of a chunk, odd end. */
function diskImage(): Buffer {
  const d = Buffer.alloc(8 * MiB + 12345);
  pseudoRandom(2 * MiB, 'a').copy(d, 0);
  pseudoRandom(MiB + 100, 'b').copy(d, 5 * MiB);
  d.fill(0, 5 * MiB + 4096, 5 * MiB + 8192);
  pseudoRandom(12345, 'c').copy(d, 8 * MiB);
  return d;
}

describe('snapshot disk exported over NBD from the repository', { skip: skipUnlessInstalled('qemu-img', 'qemu-io', 'nbdinfo') }, () => {
  let dir = '';
  let repo: Repository;
  let exp: DiskExport;
  let image = '';
  const data = diskImage();
  const pool = new ChunkPool(1);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-export-'));
    image = join(dir, 'disk.raw');
    writeFileSync(image, data);
    repo = await fsRepository(join(dir, 'repo'), CS);
    const snapshotId = await snapshotFiles(repo, newProjectId(), { 'vm:vda': image }, pool);
    const sockDir = join(dir, 'nbd');
    mkdirSync(sockDir, { mode: 0o700 });
    exp = await DiskExport.start({ repo, snapshotId, diskKey: 'vm:vda', socketPath: join(sockDir, 'disk.sock') });
  });
  after(async () => {
    await exp?.close();
    await pool.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is private to the service (0600)', () => {
    assert.equal(statSync(exp.socketPath).mode & 0o777, 0o600);
  });

  test('qemu-img compare: the export equals the source disk byte for byte', async () => {
    const r = await runTool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, exp.uri]);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /Images are identical/);
  });

  test('nbdinfo --map reports the hole and the data (base:allocation)', async () => {
    const map = JSON.parse(await mustRun('nbdinfo', ['--map', '--json', exp.uri])) as { offset: number; length: number; type: number }[];
    const holes = map.filter((e) => e.type === 3);
    assert.ok(holes.some((h) => h.offset <= 2 * MiB && h.offset + h.length >= 5 * MiB), JSON.stringify(map));
    assert.ok(map.some((e) => e.type === 0 && e.offset === 0));
    assert.equal(map.reduce((a, e) => a + e.length, 0), data.length);
  });

  test('our NBD client: structured reads, block status, and a read past the end fails', async () => {
    const c = await NbdClient.connect({ socketPath: exp.socketPath, metaContexts: [BASE_ALLOCATION] });
    try {
      assert.equal(c.size, data.length);
      assert.ok(c.info.readOnly);
      const buf = Buffer.alloc(c.size);
      await c.readInto(buf, 0, c.size, 0, { requestSize: 256 * KiB, depth: 4 });
      assert.ok(buf.equals(data));
      const odd = await c.read(5 * MiB + 4000, 300);
      assert.ok(odd.equals(data.subarray(5 * MiB + 4000, 5 * MiB + 4300)));
      const ext = (await c.mapExtents()).get(BASE_ALLOCATION)!;
      const zeroBytes = ext.filter((e) => e.flags & 2).reduce((a, e) => a + e.length, 0);
      // Whole zero chunks: [2 MiB, 5 MiB) and [6 MiB + one chunk, 8 MiB).
      assert.equal(zeroBytes, 3 * MiB + 2 * MiB - CS);
      await assert.rejects(c.read(data.length - 10, 20));
      assert.ok((await c.read(0, 16)).equals(data.subarray(0, 16)), 'the connection stays usable after a server error');
    } finally {
      await c.close();
    }
  });

  test('writes are refused and change nothing', async () => {
    const r = await runTool('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 0 4096', exp.uri]);
    assert.ok(r.status !== 0 || /(?:error|denied|read-only|not permitted)/i.test(r.stdout + r.stderr), r.stdout + r.stderr);
    const again = await runTool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', image, exp.uri]);
    assert.equal(again.status, 0);
  });

  test('qemu-img convert of the export keeps the hole sparse', async () => {
    const out = join(dir, 'copy.raw');
    await mustRun('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', exp.uri, out]);
    const st = statSync(out);
    assert.equal(st.size, Math.ceil(data.length / 512) * 512); // qemu-img rounds raw images up to sectors
    assert.ok(st.blocks * 512 < data.length - 2 * MiB, `copy allocates ${st.blocks * 512} bytes`);
  });
});
