import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileDiskSink, MIN_HOLE, RangeSet, openFileDiskSource } from './file-disk.js';
import { openDirect } from '../../lib/direct-io.js';
import { DIRECT_MIN, goesDirect } from './direct-io.js';
import { alignedSharedMemory } from '../../lib/aligned-memory.js';
import { fileExtents, fileExtentsSupported, sparseExtentsAvailable } from './sparse-extents.js';
import { cachedShare, pageCacheProbeAvailable } from './page-cache.js';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const MiB = 1024 * 1024;

describe('RangeSet', () => {
  it('coalesces and answers overlaps', () => {
    const s = new RangeSet();
    s.add(10, 20);
    s.add(30, 40);
    assert.equal(s.count, 2);
    assert.equal(s.overlaps(0, 10), false);
    assert.equal(s.overlaps(20, 30), false);
    assert.equal(s.overlaps(19, 21), true);
    assert.equal(s.overlaps(35, 36), true);
    assert.equal(s.overlaps(40, 50), false);
    s.add(20, 30); // touches both: one range
    assert.equal(s.count, 1);
    assert.equal(s.overlaps(25, 26), true);
    s.add(0, 5);
    s.add(100, 200);
    s.add(3, 150);
    assert.equal(s.count, 1);
    assert.equal(s.overlaps(199, 300), true);
    assert.equal(s.overlaps(200, 300), false);
  });
});

describe('file disks', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-disk-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('source reads the right bytes; changeToken is stable until the file changes', async () => {
    const file = path.join(dir, 'src.raw');
    const data = randomBytes(3 * MiB + 123);
    await writeFile(file, data);
    const a = await openFileDiskSource(file);
    const b = await openFileDiskSource(file);
    try {
      assert.equal(a.size, data.length);
      assert.equal(a.changeToken, b.changeToken, 'unchanged file: same token');
      const buf = Buffer.alloc(4096);
      assert.equal(await a.read(buf, 0, 4096, 2 * MiB + 5), 4096);
      assert.deepEqual(buf, data.subarray(2 * MiB + 5, 2 * MiB + 5 + 4096));
      // Short read at the end, into an offset of the buffer.
      assert.equal(await a.read(buf, 100, 1000, data.length - 23), 23);
      assert.deepEqual(buf.subarray(100, 123), data.subarray(data.length - 23));
    } finally {
      await a.close();
      await b.close();
      await a.close(); // idempotent
    }
    // Same size, content changed in place: mtime moves.
    const first = await openFileDiskSource(file);
    const before = first.changeToken;
    await first.close();
    await new Promise((r) => setTimeout(r, 5));
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('changed'), 0, 7, 1000);
    await fh.close();
    const c = await openFileDiskSource(file);
    assert.notEqual(c.changeToken, before);
    assert.equal(c.size, data.length);
    await c.close();
    // Replaced by another file with the same size and mtime: the inode differs.
    const other = path.join(dir, 'src2.raw');
    await writeFile(other, data);
    const st = await stat(file);
    await utimes(other, st.atime, st.mtime);
    const d = await openFileDiskSource(other);
    assert.notEqual(d.changeToken, c.changeToken);
    await d.close();
  });

  it('source on a missing file or a directory fails', async () => {
    await assert.rejects(openFileDiskSource(path.join(dir, 'nope.raw')), { code: 'ENOENT' });
    await assert.rejects(openFileDiskSource(dir), /not a regular file/);
  });

  it('sink writes sparse, only on commit, skipping zero blocks but not over written data', async () => {
    const target = path.join(dir, 'sink.raw');
    const size = 64 * MiB;
    const sink = await FileDiskSink.create(target, size);
    const a = randomBytes(MiB);
    await sink.write(a, 8 * MiB);
    await sink.write(Buffer.alloc(16 * MiB), 20 * MiB); // zeros over a hole: skipped
    const b = randomBytes(10000);
    await sink.write(b, 40 * MiB + 1);
    await sink.write(Buffer.alloc(4096), 8 * MiB + 4096); // zeros over written data: written
    await assert.rejects(stat(target), { code: 'ENOENT' }, 'nothing at the target before commit');
    await assert.rejects(sink.write(Buffer.alloc(1), size), /outside the disk/);
    await sink.commit();
    assert.deepEqual(await readdir(dir).then((l) => l.filter((n) => n.includes('sink'))), ['sink.raw'], 'no temp file left');
    const st = await stat(target);
    assert.equal(st.size, size);
    assert.ok(st.blocks * 512 < 3 * MiB, `sparse: ${st.blocks * 512} bytes allocated for a 64 MiB disk`);
    const got = await readFile(target);
    const want = Buffer.alloc(size);
    a.copy(want, 8 * MiB);
    want.fill(0, 8 * MiB + 4096, 8 * MiB + 8192);
    b.copy(want, 40 * MiB + 1);
    assert.ok(got.equals(want), 'content matches');
    await assert.rejects(sink.write(a, 0), /committed/);
  });

  it('sink writes large aligned runs from page-aligned memory with O_DIRECT, the rest buffered, byte for byte', async () => {
    await writeFile(path.join(dir, 'probe'), '');
    const probeFh = await openDirect(path.join(dir, 'probe'));
    await probeFh?.close();
    const target = path.join(dir, 'direct.raw');
    const size = 32 * MiB;
    const mem = Buffer.from(alignedSharedMemory(8 * MiB));
    mem.set(randomBytes(8 * MiB));
    mem.fill(0, MiB, MiB + 8192); // a short zero run: written with the data around it
    mem.fill(0, 2 * MiB, 2 * MiB + MIN_HOLE); // a long one splits the first write in two direct runs
    const want = Buffer.alloc(size);
    const sink = await FileDiskSink.create(target, size);
    const put = async (buf: Buffer, at: number) => {
      await sink.write(buf, at);
      buf.copy(want, at);
    };
    await put(mem.subarray(0, 4 * MiB), 0); // direct (two runs around the long zero run)
    await put(mem.subarray(4 * MiB, 4 * MiB + 64 * 1024), 8 * MiB); // small: buffered
    await put(mem.subarray(100, 100 + MiB), 12 * MiB); // not aligned in memory: buffered
    await put(mem.subarray(5 * MiB, 5 * MiB + 3 * 4096), MiB); // buffered rewrite inside the direct range
    await put(mem.subarray(6 * MiB, 6 * MiB + 512 * 1024), 8 * MiB); // direct over the buffered run
    await put(mem.subarray(4 * MiB, 4 * MiB + 8192 + 5), size - 8192 - 5); // the disk's unaligned tail
    const directAfterAligned = sink.directBytes;
    // Memory whose address JavaScript cannot see: direct if it happens to be aligned, else
    // refused (EINVAL) and written buffered; the bytes are right either way.
    const plain = Buffer.from(new SharedArrayBuffer(MiB));
    plain.set(randomBytes(MiB));
    await put(plain, 20 * MiB);
    await put(mem.subarray(0, MiB), 24 * MiB);
    await sink.commit();
    assert.ok((await readFile(target)).equals(want), 'content matches');
    if (probeFh) assert.equal(directAfterAligned, 4 * MiB - MIN_HOLE + 512 * 1024, 'the aligned large runs went direct, nothing else');
    else {
      assert.equal(sink.directBytes, 0);
      process.stdout.write(`# ${dir} has no O_DIRECT: every write went buffered\n`);
    }
  });

  it('inside one write, zeros shorter than MIN_HOLE between data are written and longer ones stay holes', async (t) => {
    if (!sparseExtentsAvailable()) return t.skip('build/Release/sparse_extents.node missing (npm ci builds it)');
    const target = path.join(dir, 'holes.raw');
    const data = randomBytes(4 * MiB);
    data.fill(0, 0, 3 * 4096); // leading zeros: skipped whatever their length
    data.fill(0, MiB, MiB + MIN_HOLE - 4096); // shorter than MIN_HOLE: written
    data.fill(0, 2 * MiB, 2 * MiB + MIN_HOLE); // MIN_HOLE: a hole
    data.fill(0, 4 * MiB - 4096); // trailing zeros: skipped
    const sink = await FileDiskSink.create(target, 8 * MiB);
    await sink.write(data, MiB);
    await sink.commit();
    assert.ok((await readFile(target)).subarray(MiB, 5 * MiB).equals(data), 'content matches');
    const fh = await open(target, 'r');
    try {
      const ext = fileExtents(fh.fd, 8 * MiB)!;
      const has = (off: number) => ext.some((e) => off >= e.offset && off < e.offset + e.length);
      assert.ok(has(2 * MiB) && has(2 * MiB + MIN_HOLE - 4097), `the short zero run is allocated: ${JSON.stringify(ext)}`);
      for (const hole of [MiB, 3 * MiB, 3 * MiB + MIN_HOLE - 1, 5 * MiB - 1]) assert.ok(!has(hole), `a hole at ${hole}: ${JSON.stringify(ext)}`);
    } finally {
      await fh.close();
    }
  });

  it('a write goes direct only when large and aligned (positions past 4 GiB too)', () => {
    const big = 2 ** 33;
    assert.equal(goesDirect(0, DIRECT_MIN, big), true);
    assert.equal(goesDirect(0, DIRECT_MIN, big + 512), false);
    assert.equal(goesDirect(4096, DIRECT_MIN - 4096, 0), false, 'too small');
    assert.equal(goesDirect(16, DIRECT_MIN, 0), false, 'memory offset not aligned');
    assert.equal(goesDirect(0, DIRECT_MIN + 100, 0), false, 'length not aligned');
  });

  it('sink abort leaves the target untouched and no temp file', async () => {
    const target = path.join(dir, 'keep.raw');
    await writeFile(target, 'original');
    const sink = await FileDiskSink.create(target, MiB);
    await sink.write(randomBytes(4096), 0);
    await sink.abort();
    await sink.abort(); // idempotent
    assert.equal(await readFile(target, 'utf8'), 'original');
    assert.deepEqual(await readdir(dir).then((l) => l.filter((n) => n.includes('keep'))), ['keep.raw']);
  });
});

describe('sparse extents (lseek SEEK_DATA/SEEK_HOLE helper)', () => {
  it('is built by npm ci and reports exactly where a sparse file holds data', async () => {
    assert.equal(sparseExtentsAvailable(), true, 'build/Release/sparse_extents.node missing: npm ci did not build it');
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-extents-'));
    try {
      const f = join(dir, 'sparse.raw');
      const size = 64 * 1024 * 1024;
      const fd = openSync(f, 'w');
      ftruncateSync(fd, size);
      writeSync(fd, Buffer.alloc(1024 * 1024, 7), 0, 1024 * 1024, 8 * 1024 * 1024);
      writeSync(fd, Buffer.alloc(4096, 9), 0, 4096, size - 4096);
      closeSync(fd);
      const src = await openFileDiskSource(f);
      try {
        assert.ok(src.allocatedExtents, 'the source offers allocatedExtents');
        const ext = await src.allocatedExtents!();
        const covered = (off: number) => ext.some((e) => off >= e.offset && off < e.offset + e.length);
        assert.ok(covered(8 * 1024 * 1024) && covered(9 * 1024 * 1024 - 1) && covered(size - 1));
        assert.ok(!covered(0) && !covered(32 * 1024 * 1024), JSON.stringify(ext));
        const total = ext.reduce((a, e) => a + e.length, 0);
        assert.ok(total < 4 * 1024 * 1024, `data extents cover ${total} bytes`);
        // The list describes the file when it is asked for, not when the source was opened.
        const w = openSync(f, 'r+');
        writeSync(w, Buffer.alloc(4096, 5), 0, 4096, 32 * 1024 * 1024);
        closeSync(w);
        const later = await src.allocatedExtents!();
        assert.ok(later.some((e) => e.offset <= 32 * 1024 * 1024 && 32 * 1024 * 1024 < e.offset + e.length), JSON.stringify(later));
      } finally {
        await src.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says whether it can answer for a file without listing its extents (an empty file too)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-extents-'));
    try {
      const f = join(dir, 'empty.raw');
      closeSync(openSync(f, 'w'));
      const fd = openSync(f, 'r');
      try {
        assert.equal(fileExtentsSupported(fd), true);
        assert.deepEqual(fileExtents(fd, 0), []);
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Writes `data` (page-aligned memory, a multiple of 4 KiB) to a new file with O_DIRECT, so none
 * of it is in the page cache; false where the filesystem offers no O_DIRECT.
 */
async function writeUncached(file: string, data: Buffer): Promise<boolean> {
  await writeFile(file, '');
  const fh = await openDirect(file);
  if (!fh) return false;
  try {
    await fh.write(data, 0, data.length, 0);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return true;
}

describe('page cache probe (cachestat or mincore helper) and direct source reads', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-cache-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const via of ['best', 'mincore'] as const) {
    it(`is built by npm ci and tells cached ranges from ranges only on the device (${via === 'best' ? 'cachestat where the kernel has it' : 'mincore'})`, async () => {
      const share = (fd: number, offset: number, length: number) => cachedShare(fd, offset, length, via);
      assert.equal(pageCacheProbeAvailable(), true, 'build/Release/page_cache.node missing: npm ci did not build it');
      const cached = path.join(dir, `cached-${via}.raw`);
      await writeFile(cached, randomBytes(2 * MiB)); // a buffered write leaves its pages cached
      const fh = await open(cached, 'r');
      try {
        assert.equal(share(fh.fd, 0, 2 * MiB), 1);
        assert.equal(share(fh.fd, 4096 + 17, 100), 1, 'an unaligned range is asked by its pages');
        assert.equal(share(fh.fd, 0, 0), null, 'an empty range has no share');
      } finally {
        await fh.close();
      }
      assert.equal(share(1 << 30, 0, 4096), null, 'a descriptor that is not open: cannot tell');
      const mem = Buffer.from(alignedSharedMemory(2 * MiB));
      mem.set(randomBytes(2 * MiB));
      const uncached = path.join(dir, `uncached-${via}.raw`);
      if (!(await writeUncached(uncached, mem))) return void process.stdout.write(`# ${dir} has no O_DIRECT: the uncached half not checked\n`);
      const u = await open(uncached, 'r');
      try {
        assert.equal(share(u.fd, 0, 2 * MiB), 0, 'written with O_DIRECT: nothing cached');
        await u.read(Buffer.alloc(64 * 1024), 0, 64 * 1024, MiB + 512 * 1024); // 16 pages (and whatever the kernel reads ahead)
        assert.equal(share(u.fd, 0, MiB), 0, 'the first MiB was not read (read-ahead goes forward)');
        const read = share(u.fd, MiB + 512 * 1024, 64 * 1024);
        assert.equal(read, 1, 'the 64 KiB just read are cached');
        const part = share(u.fd, MiB, MiB);
        assert.ok(part !== null && part >= 16 / 256 && part <= 1, `part of the second MiB is cached: ${part}`);
      } finally {
        await u.close();
      }
    });
  }

  it('source reads large aligned runs that are not cached with O_DIRECT, cached ones and the rest buffered, byte for byte', async () => {
    const size = 8 * MiB + 4096 + 100; // an unaligned tail
    const data = randomBytes(size);
    const mem = Buffer.from(alignedSharedMemory(size + 4096));
    data.copy(mem);
    const file = path.join(dir, 'source.raw');
    if (!(await writeUncached(file, mem.subarray(0, 8 * MiB + 8192)))) return void process.stdout.write(`# ${dir} has no O_DIRECT: nothing to check\n`);
    await truncate(file, size); // the tail past the direct write: cut to an unaligned size
    const src = await openFileDiskSource(file);
    try {
      const buf = Buffer.from(alignedSharedMemory(size + 4096));
      const expectRead = async (at: number, length: number, bufAt = 0) => {
        let got = 0;
        while (got < length) got += await src.read(buf, bufAt + got, length - got, at + got);
        assert.ok(buf.subarray(bufAt, bufAt + length).equals(data.subarray(at, at + length)), `bytes ${at}+${length}`);
      };
      await expectRead(0, 4 * MiB); // not cached, aligned, large: direct
      assert.equal(src.directBytes, 4 * MiB);
      await expectRead(4 * MiB, 64 * 1024); // too small: buffered (and now cached)
      await expectRead(4 * MiB + 100 * 4096, 512 * 1024, 100); // memory not aligned: buffered
      await expectRead(6 * MiB, size - 6 * MiB); // runs past the last whole block: buffered
      assert.equal(src.directBytes, 4 * MiB, 'none of those went direct');
      await expectRead(0, 4 * MiB); // the first read went direct, so it is still not cached
      assert.equal(src.directBytes, 8 * MiB);
      await readFile(file); // now every page is cached
      await expectRead(0, 4 * MiB);
      assert.equal(src.directBytes, 8 * MiB, 'cached data is copied, not read from the device again');
    } finally {
      await src.close();
    }
  });
});
