import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { alignedSharedMemory } from '../../lib/aligned-memory.js';
import { run, skipUnlessInstalled } from '../../nbd/testing.js';
import { FileDiskSink } from './file-disk.js';
import { planRefcounts, Qcow2DiskSink } from './qcow2-sink.js';

/**
 * Qcow2DiskSink against real qemu-img: every image it commits passes `qemu-img check` (no
 * corruption, no leaked cluster), reads back byte for byte what a raw FileDiskSink given the
 * same writes holds (`qemu-img compare`), keeps never-written and zero-only clusters
 * unallocated, and takes a persistent dirty bitmap (version 3).
 */
const skip = skipUnlessInstalled('qemu-img', 'qemu-io');
const KiB = 1024;
const MiB = 1024 * KiB;
const CLUSTER = 64 * KiB;
const sectors = (bytes: number) => Math.ceil(bytes / 512) * 512;

interface CheckReport {
  corruptions?: number;
  leaks?: number;
  'check-errors': number;
}

function check(file: string): CheckReport {
  // exit 0: clean; 2: corruptions; 3: leaks (the JSON says which)
  const r = spawnSync('qemu-img', ['check', '--output=json', '-f', 'qcow2', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img check: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as CheckReport;
}

function info(file: string): { format: string; 'virtual-size': number; 'format-specific': { data: { compat: string; bitmaps?: { name: string }[] } } } {
  return JSON.parse(run('qemu-img', ['info', '--output=json', '-f', 'qcow2', file])) as ReturnType<typeof info>;
}

/** Guest ranges qemu-img reports as allocated data. */
function dataRanges(file: string): [number, number][] {
  const map = JSON.parse(run('qemu-img', ['map', '--output=json', '-f', 'qcow2', file])) as { start: number; length: number; data: boolean }[];
  return map.filter((m) => m.data).map((m) => [m.start, m.start + m.length]);
}

/** The same writes into a raw FileDiskSink and a Qcow2DiskSink, both committed. */
async function both(dir: string, size: number, writes: [Buffer, number][]): Promise<{ raw: string; qcow2: string }> {
  const raw = join(dir, 'ref.raw');
  const qcow2 = join(dir, 'disk.qcow2');
  const r = await FileDiskSink.create(raw, size);
  const q = await Qcow2DiskSink.create(qcow2, size);
  // Concurrently, as the restore's slots write (distinct ranges).
  await Promise.all(writes.map(([buf, pos]) => q.write(buf, pos)));
  for (const [buf, pos] of writes) await r.write(buf, pos);
  await r.commit();
  assert.equal(existsSync(qcow2), false, 'nothing at the target before commit');
  await q.commit();
  return { raw, qcow2 };
}

describe('Qcow2DiskSink', { skip }, () => {
  const dirs: string[] = [];
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'lb-qcow2-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('scattered, unaligned, zero-only and rewriting writes: a clean qcow2 v3 equal to the raw image, zero clusters unallocated', async () => {
    const dir = newDir();
    const size = 1024 * MiB + 12_345; // the last cluster is partial; two L2 tables' regions
    const data = (n: number) => randomBytes(n);
    const writes: [Buffer, number][] = [
      [data(3 * CLUSTER), 0], // aligned, three clusters
      [data(5000), 10 * CLUSTER + 100], // inside one cluster
      [data(CLUSTER + 7), 20 * CLUSTER - 3], // straddles three clusters, unaligned
      [Buffer.alloc(2 * CLUSTER), 40 * CLUSTER], // zeros only: stays unallocated
      [Buffer.concat([Buffer.alloc(CLUSTER), data(CLUSTER)]), 50 * CLUSTER], // a zero cluster, then data
      [data(2 * CLUSTER), 512 * MiB - CLUSTER], // across the 512 MiB boundary of the L2 tables
      [data(12_345), 1024 * MiB], // the partial last cluster
    ];
    const { raw, qcow2 } = await both(dir, size, writes);
    const report = check(qcow2);
    assert.equal(report.corruptions ?? 0, 0);
    assert.equal(report.leaks ?? 0, 0);
    const i = info(qcow2);
    assert.equal(i.format, 'qcow2');
    assert.equal(i['virtual-size'], sectors(size), 'whole sectors, rounded up as qemu-img convert does');
    assert.equal(i['format-specific'].data.compat, '1.1');
    run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', raw, qcow2]);
    const allocated = dataRanges(qcow2);
    const isData = (pos: number) => allocated.some(([s, e]) => pos >= s && pos < e);
    assert.equal(isData(0), true);
    assert.equal(isData(40 * CLUSTER), false, 'a zero-only write allocates nothing');
    assert.equal(isData(50 * CLUSTER), false, 'the zero cluster of a write stays unallocated');
    assert.equal(isData(51 * CLUSTER), true);
    assert.equal(isData(100 * CLUSTER), false, 'never written');
    assert.equal(isData(512 * MiB), true);
    // Only the clusters written with data: 11 here.
    assert.ok(allocated.reduce((n, [s, e]) => n + e - s, 0) <= 11 * CLUSTER);
  });

  it('a rewrite with zeros of an allocated cluster is written (reads back as zeros)', async () => {
    const dir = newDir();
    const size = 4 * MiB;
    const writes: [Buffer, number][] = [[randomBytes(2 * CLUSTER), CLUSTER]];
    const q = await Qcow2DiskSink.create(join(dir, 'disk.qcow2'), size);
    const r = await FileDiskSink.create(join(dir, 'ref.raw'), size);
    for (const [buf, pos] of [...writes, [Buffer.alloc(CLUSTER + 100), CLUSTER + 50] as [Buffer, number]]) {
      await q.write(buf, pos);
      await r.write(buf, pos);
    }
    await Promise.all([q.commit(), r.commit()]);
    assert.equal(check(join(dir, 'disk.qcow2')).leaks ?? 0, 0);
    run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', join(dir, 'ref.raw'), join(dir, 'disk.qcow2')]);
  });

  it('large writes from page-aligned memory (the restore slots: direct I/O) read back exactly', async () => {
    const dir = newDir();
    const mem = Buffer.from(alignedSharedMemory(8 * MiB));
    randomBytes(8 * MiB).copy(mem);
    mem.fill(0, 2 * MiB, 3 * MiB); // a run of zero clusters inside the write
    const { raw, qcow2 } = await both(dir, 64 * MiB, [[mem, 16 * MiB]]);
    assert.equal(check(qcow2).leaks ?? 0, 0);
    run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', raw, qcow2]);
  });

  it('an empty disk, a disk never written, and a 5 TiB disk (two L1 clusters) with a few writes are clean', async () => {
    const TiB = 1024 * 1024 * MiB;
    const pattern = (byte: number, n: number) => Buffer.alloc(n, byte);
    for (const [size, writes] of [
      [0, []],
      [10 * MiB + 1, []],
      [5 * TiB, [[pattern(0x11, CLUSTER), 0], [pattern(0x22, 100), 4.5 * TiB + 7], [pattern(0x33, CLUSTER), 5 * TiB - CLUSTER]]],
    ] as [number, [Buffer, number][]][]) {
      const dir = newDir();
      const qcow2 = join(dir, 'disk.qcow2');
      const q = await Qcow2DiskSink.create(qcow2, size);
      for (const [buf, pos] of writes) await q.write(buf, pos);
      await q.commit();
      const report = check(qcow2);
      assert.equal(report.leaks ?? 0, 0, `size ${size}`);
      assert.equal(info(qcow2)['virtual-size'], sectors(size));
      for (const [buf, pos] of writes) {
        // qemu-io checks the pattern (qemu-img dd cannot seek past 4 TiB)
        const out = run('qemu-io', ['-f', 'qcow2', '-r', '-c', `read -P 0x${buf[0]!.toString(16)} ${pos} ${buf.length}`, '-c', `read -P 0 ${pos + buf.length} ${Math.min(512, size - pos - buf.length)}`, qcow2]);
        assert.doesNotMatch(out, /verification failed|error/i, `the bytes at ${pos}`);
      }
    }
  });

  it('takes a persistent dirty bitmap (version 3): the restored VM can be backed up incrementally', async () => {
    const dir = newDir();
    const { qcow2 } = await both(dir, 8 * MiB, [[randomBytes(CLUSTER), 0]]);
    run('qemu-img', ['bitmap', '--add', '-f', 'qcow2', qcow2, 'lifeboat-test']);
    assert.deepEqual(info(qcow2)['format-specific'].data.bitmaps?.map((b) => b.name), ['lifeboat-test']);
    assert.equal(check(qcow2).leaks ?? 0, 0);
  });

  it('abort leaves nothing; writes outside the disk are refused and change nothing', async () => {
    const dir = newDir();
    const q = await Qcow2DiskSink.create(join(dir, 'disk.qcow2'), MiB);
    await q.write(randomBytes(CLUSTER), 0);
    await assert.rejects(q.write(randomBytes(10), MiB - 5), /outside the disk/);
    await q.abort();
    assert.deepEqual(readdirSync(dir), []);
    await assert.rejects(q.write(randomBytes(10), 0), /aborted disk sink/);
  });
});

describe('planRefcounts', () => {
  it('covers every cluster, its own blocks and table included, with the fewest blocks', () => {
    for (const used of [1, 2, 32_766, 32_767, 32_768, 100_000, 32_768 * 8192 - 3]) {
      const p = planRefcounts(used);
      const total = used + p.blocks + p.tableClusters;
      assert.ok(p.blocks * 32_768 >= total, `${used}: blocks cover the file`);
      assert.ok((p.blocks - 1) * 32_768 < total, `${used}: no spare block`);
      assert.ok(p.tableClusters * 8192 >= p.blocks, `${used}: the table names every block`);
      assert.equal(p.firstBlock, used);
      assert.equal(p.tableAt, used + p.blocks);
    }
    assert.deepEqual(planRefcounts(32_767), { firstBlock: 32_767, blocks: 2, tableAt: 32_769, tableClusters: 1 });
  });
});
