import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, mkdir, chmod, symlink, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MissingObjectError } from '../../lib/errors.js';
import { listAll } from '../backend.js';
import { backendConformance } from '../backend.conformance.js';
import { FsBackend } from './fs.backend.js';

async function fresh() {
  const dir = await mkdtemp(join(tmpdir(), 'lb-fsb-'));
  return { dir, backend: new FsBackend(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

backendConformance('fs', fresh);

test('fs: a put leaves no temp file behind and listings skip crash leftovers', async () => {
  const { dir, backend, cleanup } = await fresh();
  try {
    await backend.put('x/obj', Buffer.from('data'));
    assert.deepEqual(await readdir(join(dir, 'x')), ['obj']);
    await writeFile(join(dir, 'x', '.tmp-deadbeef'), 'partial'); // a writer killed mid-put
    assert.deepEqual(await listAll(backend, 'x/'), ['x/obj']);
  } finally {
    await cleanup();
  }
});

// Streamed objects past the early-writeback threshold (4 MiB): the background fdatasyncs never
// change what is committed, and an abort while one may be running leaves no temp file.
test('fs: a streamed object of many MiB commits byte for byte; an abort past the writeback threshold leaves nothing', async () => {
  const { dir, backend, cleanup } = await fresh();
  try {
    const part = Buffer.alloc(1 << 20);
    const w = await backend.openWriter('big/obj');
    for (let i = 0; i < 13; i++) await w.write([part.fill(i + 1)]); // the caller reuses its buffer
    await w.commit();
    const got = await backend.get('big/obj');
    assert.equal(got.length, 13 << 20);
    for (let i = 0; i < 13; i++) assert.equal(got.subarray(i << 20, (i + 1) << 20).every((b) => b === i + 1), true, `MiB ${i}`);
    const a = await backend.openWriter('big/gone');
    for (let i = 0; i < 5; i++) await a.write([part]);
    await a.abort();
    assert.deepEqual(await readdir(join(dir, 'big')), ['obj']);
  } finally {
    await cleanup();
  }
});

// A folder the backend cannot read must make the listing throw, never look empty (GC would
// take "empty" for "nothing referenced"). chmod 000 blocks every user but root; as root (CI)
// the folder is a symlink to itself instead, which readdir refuses with ELOOP.
test('fs: a listing that fails throws instead of looking empty', async () => {
  const { dir, backend, cleanup } = await fresh();
  const asRoot = process.getuid?.() === 0;
  try {
    if (asRoot) {
      await symlink('locked', join(dir, 'locked'));
    } else {
      await backend.put('locked/a', Buffer.from('1'));
      await chmod(join(dir, 'locked'), 0o000);
    }
    await assert.rejects(listAll(backend, 'locked/'));
  } finally {
    if (!asRoot) await chmod(join(dir, 'locked'), 0o755);
    await cleanup();
  }
});

test('fs: a prefix that is a file, not a folder, makes list throw', async () => {
  const { dir, backend, cleanup } = await fresh();
  try {
    await mkdir(join(dir, 'a'), { recursive: true });
    await writeFile(join(dir, 'a', 'b'), 'x');
    await assert.rejects(listAll(backend, 'a/b/'));
  } finally {
    await cleanup();
  }
});

test('fs: temp files of killed writers are swept once older than the grace period, nothing else', async () => {
  const { dir, backend, cleanup } = await fresh();
  const packDir = join(dir, 'packs', 'p');
  const tmpNames = async () => (await readdir(packDir)).filter((n) => n.startsWith('.tmp-')).sort();
  try {
    await backend.put('packs/p/obj', Buffer.from('kept'));
    // A writer killed mid-stream neither commits nor aborts: its temp file is left behind.
    const killed = await backend.openWriter('packs/p/killed');
    await killed.write([Buffer.from('partial pack')]);
    const [killedTmp] = await tmpNames();
    assert.ok(killedTmp, 'the leftover exists');
    const live = await backend.openWriter('packs/p/live');
    await live.write([Buffer.from('still ')]);
    const liveTmp = (await tmpNames()).find((n) => n !== killedTmp)!;
    await writeFile(join(dir, 'packs', '.foreign'), 'not ours');
    // The killed writer's last write was two hours ago.
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(packDir, killedTmp), old, old);

    assert.equal(await backend.sweepLeftovers(3600_000), 1);
    assert.deepEqual(await tmpNames(), [liveTmp]);
    assert.equal(await backend.sweepLeftovers(3600_000), 0); // a young temp file is a live writer's
    assert.deepEqual((await readdir(join(dir, 'packs'))).sort(), ['.foreign', 'p']);
    assert.equal((await backend.get('packs/p/obj')).toString(), 'kept');
    // The live writer is unaffected; a writer whose file was swept fails loudly at commit.
    await live.write([Buffer.from('uploading')]);
    await live.commit();
    assert.equal((await backend.get('packs/p/live')).toString(), 'still uploading');
    await assert.rejects(killed.commit(), /ENOENT/);
    await killed.abort();
    assert.equal(await backend.stat('packs/p/killed'), null);
    assert.deepEqual(await tmpNames(), []);
  } finally {
    await cleanup();
  }
});

// Range reads of 256 KiB and more go O_DIRECT through bounce buffers (direct-read.ts): the
// aligned span is read and the range copied out, so any offset and length must come back
// exact, up to the object's last byte, with more reads in flight than there are buffers.
test('fs: large range reads at unaligned offsets return the exact bytes, to the end of the object; past it they throw', async () => {
  const { backend, cleanup } = await fresh();
  try {
    const data = Buffer.alloc(9 * (1 << 20) + 4321);
    for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const w = await backend.openWriter('p/pack');
    await w.write([data.subarray(0, 3_000_001), data.subarray(3_000_001)]);
    await w.commit();
    const ranges: [number, number][] = [
      [1, 300_000],
      [4095, (4 << 20) + 3],
      [5_000_000, data.length - 5_000_000],
      [data.length - 262_144, 262_144],
      [0, data.length],
      [123_457, 8 << 20],
    ];
    await Promise.all(
      ranges.map(async ([o, l]) => {
        const dst = Buffer.alloc(l + 7).fill(0xaa);
        await backend.getRangeInto!('p/pack', o, l, dst);
        assert.equal(dst.subarray(0, l).equals(data.subarray(o, o + l)), true, `range ${o}+${l}`);
        assert.equal(dst.subarray(l).every((b) => b === 0xaa), true, `nothing past ${o}+${l}`);
      }),
    );
    await assert.rejects(backend.getRangeInto!('p/pack', data.length - 262_143, 262_144, Buffer.alloc(262_144)), /shorter/);
    await assert.rejects(backend.getRangeInto!('p/none', 0, 1 << 20, Buffer.alloc(1 << 20)), MissingObjectError);
  } finally {
    await cleanup();
  }
});
