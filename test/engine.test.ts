import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { FsBackend } from '../src/backend/fs/fs.backend.js';
import { listAll, type Backend } from '../src/backend/backend.js';
import { ManualClock } from '../src/lib/clock.js';
import { ConflictError, CorruptMetadataError, IntegrityError, InvalidStateError, NotFoundError } from '../src/lib/errors.js';
import { newHexId, newId } from '../src/lib/ids.js';
import { Repository } from '../src/repository/repository.js';
import { decodePackIndex } from '../src/repository/pack-index.format.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink, MemDiskSource } from '../src/datamover/testing.js';
import { faultyBackend } from '../src/backend/testing.js';

const CS = 16 * 1024; // small chunks keep the tests fast
const pool = new ChunkPool(2);
after(() => pool.close());

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A disk with random, text-like and zero regions; deterministic per seed, distinct across seeds. */
function makeDisk(size: number, seed = 1): Buffer {
  const d = Buffer.alloc(size);
  let ctr = 0;
  const stream = (n: number) => {
    const parts: Buffer[] = [];
    for (let have = 0; have < n; have += 32) parts.push(createHash('sha256').update(`${seed}/${ctr++}`).digest());
    return Buffer.concat(parts).subarray(0, n);
  };
  for (let pos = 0; pos < size; ) {
    const r = stream(2);
    const len = Math.min(size - pos, (1 + (r[0]! % 12)) * 8192);
    const kind = r[1]! % 3;
    if (kind === 1) stream(len).copy(d, pos);
    else if (kind === 2) d.write(`lorem ipsum ${seed} dolor sit amet `.repeat(Math.ceil(len / 20)).slice(0, len), pos);
    pos += len;
  }
  return d;
}

/** Incompressible, deterministic data: one chunk = CS stored bytes, so pack layouts are predictable. */
function rnd(size: number, seed: number): Buffer {
  const parts: Buffer[] = [];
  for (let have = 0, i = 0; have < size; have += 32, i++) parts.push(createHash('sha256').update(`r${seed}/${i}`).digest());
  return Buffer.concat(parts).subarray(0, size);
}

async function newRepo(backend: Backend = new MemBackend(), clock = new ManualClock()) {
  const repo = await Repository.init(backend, { chunkSize: CS, packSize: 256 * 1024 }, { clock, leaseTtlMs: 60_000, graceMs: 10_000 });
  return { repo, backend, clock };
}

async function snapshot(
  repo: Repository,
  projectId: string,
  disks: Record<string, MemDiskSource>,
  opts: { base?: string; full?: boolean; cbtBase?: string } = {},
) {
  const snapshotId = newId();
  const w = await repo.beginSnapshot({ projectId, snapshotId });
  const summaries = [];
  for (const [diskKey, source] of Object.entries(disks)) {
    const base = opts.base ? await repo.findDiskIndex(opts.base, diskKey) : null;
    summaries.push(await backupDisk({ writer: w, diskKey, source, pool, base, full: opts.full, cbtBase: opts.cbtBase, meta: { dev: diskKey } }));
  }
  const manifest = await w.commit({ workload: 'wl-1', instances: [{ id: 'vm-1' }] });
  return { snapshotId, summaries, manifest, writer: w };
}

async function restore(repo: Repository, snapshotId: string, diskKey: string, size: number) {
  const sink = new MemDiskSink(size);
  const summary = await restoreDisk({ repo, snapshotId, diskKey, sink, pool });
  assert.equal(sink.state, 'committed');
  return { sink, summary };
}

function packKeys(b: MemBackend) {
  return [...b.objects.keys()].filter((k) => k.startsWith('packs/'));
}

describe('backup and restore', () => {
  test('round trip is byte-exact for holes, odd sizes and empty disks', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const odd = makeDisk(CS * 37 + 1234, 2);
    odd.fill(0, CS * 3, CS * 9); // aligned hole run
    odd.fill(0, CS * 20 + 100, CS * 22 + 50); // unaligned zeros
    const disks = { vda: new MemDiskSource(odd), vdb: new MemDiskSource(Buffer.alloc(0)), vdc: new MemDiskSource(Buffer.alloc(CS * 5)), vdd: new MemDiskSource(makeDisk(777, 3)) };
    const { snapshotId, summaries, manifest } = await snapshot(repo, p, disks);
    assert.ok(summaries[0]!.holes >= 6);
    assert.equal(summaries[2]!.holes, 5);
    assert.equal(summaries[2]!.bytesStored, 0);
    assert.deepEqual(manifest.meta, { workload: 'wl-1', instances: [{ id: 'vm-1' }] });
    assert.deepEqual(manifest.disks.map((d) => d.meta), [{ dev: 'vda' }, { dev: 'vdb' }, { dev: 'vdc' }, { dev: 'vdd' }]);
    for (const [k, src] of Object.entries(disks)) {
      const { sink, summary } = await restore(repo, snapshotId, k, src.size);
      assert.equal(sha(sink.data), sha(src.data), k);
      assert.equal(summary.holes, summaries.find((s) => s.diskKey === k)!.holes);
    }
    // Holes are never written: the all-zero disk needs no write at all.
    const { sink } = await restore(repo, snapshotId, 'vdc', CS * 5);
    assert.equal(sink.writes, 0);
    assert.deepEqual(await repo.listSnapshots(), [snapshotId]);
  });

  test('restores byte-exact through a single stored and raw slot and through one-chunk reads (groups at every pack offset)', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const disk = makeDisk(CS * 61 + 333, 5); // compressed and raw chunks mixed in every pack
    disk.fill(0, CS * 7, CS * 9);
    const { snapshotId } = await snapshot(repo, p, { vda: new MemDiskSource(disk) });
    for (const opts of [{ maxInFlight: 1 }, { maxInFlight: 1, readBytes: CS }, { maxInFlight: 3, readBytes: CS }]) {
      const sink = new MemDiskSink(disk.length);
      await restoreDisk({ repo, snapshotId, diskKey: 'vda', sink, pool, ...opts });
      assert.equal(sink.state, 'committed');
      assert.equal(sha(sink.data), sha(disk), JSON.stringify(opts));
    }
  });

  test('a second backup of the same data stores ~0 bytes; another project gets other chunk ids', async () => {
    const { repo, backend } = await newRepo();
    const data = makeDisk(CS * 40, 4);
    const p1 = newHexId();
    const a = await snapshot(repo, p1, { vda: new MemDiskSource(data) });
    assert.ok(a.summaries[0]!.bytesStored > 0);
    const b = await snapshot(repo, p1, { vda: new MemDiskSource(data) }, { full: true });
    assert.equal(b.summaries[0]!.bytesStored, 0);
    assert.equal(b.summaries[0]!.newChunks, 0);
    assert.equal(b.summaries[0]!.bytesRead, data.length);
    // Same bytes in another project: stored again, under different ids.
    const p2 = newHexId();
    const c = await snapshot(repo, p2, { vda: new MemDiskSource(data) });
    assert.ok(c.summaries[0]!.bytesStored > 0);
    const ia = await repo.readDiskIndex(a.manifest.disks[0]!.index);
    const ic = await repo.readDiskIndex(c.manifest.disks[0]!.index);
    assert.equal(ia.header.chunkCount, ic.header.chunkCount);
    const firstData = [...Array(ia.header.chunkCount).keys()].find((i) => ia.ids.subarray(i * 32, i * 32 + 32).some((x) => x !== 0))!;
    assert.notDeepEqual(ia.ids.subarray(firstData * 32, firstData * 32 + 32), ic.ids.subarray(firstData * 32, firstData * 32 + 32));
    assert.ok(packKeys(backend as MemBackend).some((k) => k.includes(p2)));
  });

  test('incremental with an equal changeToken reads nothing and restores the same disk', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const data = makeDisk(CS * 30 + 5, 5);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(data, 'tok-1') });
    const src = new MemDiskSource(data, 'tok-1');
    const s2 = await snapshot(repo, p, { vda: src }, { base: s1.snapshotId });
    assert.equal(s2.summaries[0]!.mode, 'change-token');
    assert.equal(src.reads, 0);
    assert.equal(s2.summaries[0]!.bytesStored, 0);
    // The base can be deleted: every snapshot is complete on its own.
    await repo.deleteSnapshot(s1.snapshotId);
    assert.equal((await repo.gc()).swept, true);
    const { sink } = await restore(repo, s2.snapshotId, 'vda', data.length);
    assert.equal(sha(sink.data), sha(data));
    assert.equal((await repo.verify()).ok, true);
  });

  test('incremental via changed extents reads only the changed chunks', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const v1 = makeDisk(CS * 64, 6);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(v1) });
    const v2 = Buffer.from(v1);
    randomBytes(5000).copy(v2, CS * 10 + 100); // inside chunk 10
    randomBytes(CS).copy(v2, CS * 40 + 8); // spans chunks 40 and 41
    const extents = [
      { offset: CS * 10 + 100, length: 5000 },
      { offset: CS * 40 + 8, length: CS },
    ];
    const src = new MemDiskSource(v2, 'tok-2', { changed: { base: 'ckpt-1', extents } });
    const s2 = await snapshot(repo, p, { vda: src }, { base: s1.snapshotId, cbtBase: 'ckpt-1' });
    assert.equal(s2.summaries[0]!.mode, 'changed-extents');
    assert.equal(src.bytesRead, 3 * CS);
    assert.equal(s2.summaries[0]!.newChunks, 3);
    const { sink } = await restore(repo, s2.snapshotId, 'vda', v2.length);
    assert.equal(sha(sink.data), sha(v2));
    // A lost checkpoint (null) falls back to reading everything.
    const src3 = new MemDiskSource(v2, 'tok-3', { changed: { base: 'other', extents: [] } });
    const s3 = await snapshot(repo, p, { vda: src3 }, { base: s2.snapshotId, cbtBase: 'ckpt-1' });
    assert.equal(s3.summaries[0]!.mode, 'read-all');
    assert.equal(src3.bytesRead, v2.length);
    assert.equal(s3.summaries[0]!.newChunks, 0);
  });

  test('a changed chunk that now reads as zeros is a hole in the incremental, not the base chunk', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const v1 = makeDisk(CS * 16, 11);
    randomBytes(2 * CS).copy(v1, CS * 3); // chunks 3 and 4 hold data in the base
    randomBytes(CS).copy(v1, CS * 9);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(v1) });
    const v2 = Buffer.from(v1);
    v2.fill(0, CS * 3, CS * 5); // the guest zeroed chunks 3 and 4 (a discard, a wipe)
    randomBytes(100).copy(v2, CS * 9); // and wrote into chunk 9
    const src = new MemDiskSource(v2, 'tok-2', { changed: { base: 'ckpt-1', extents: [{ offset: CS * 3, length: 2 * CS }, { offset: CS * 9, length: 100 }] } });
    const s2 = await snapshot(repo, p, { vda: src }, { base: s1.snapshotId, cbtBase: 'ckpt-1' });
    assert.equal(s2.summaries[0]!.mode, 'changed-extents');
    assert.equal(src.bytesRead, 3 * CS);
    assert.equal(s2.summaries[0]!.holes, s1.summaries[0]!.holes + 2);
    assert.equal(sha((await restore(repo, s2.snapshotId, 'vda', v2.length)).sink.data), sha(v2));
  });

  test('packs stream through openWriter, or are buffered for a backend without it; both restore byte-exact', async () => {
    const plain = new MemBackend();
    // The same store without the optional streaming/ranged-read methods.
    const bare: Backend = {
      put: (k, d) => plain.put(k, d),
      get: (k) => plain.get(k),
      getRange: (k, o, l) => plain.getRange(k, o, l),
      stat: (k) => plain.stat(k),
      list: (p) => plain.list(p),
      delete: (k) => plain.delete(k),
    };
    for (const backend of [new MemBackend(), bare]) {
      const { repo } = await newRepo(backend);
      const p = newHexId();
      const v = makeDisk(CS * 200 + 123, 9);
      const s = await snapshot(repo, p, { vda: new MemDiskSource(v) });
      assert.ok(s.writer.stats.packs > 3, 'several packs');
      const { sink } = await restore(repo, s.snapshotId, 'vda', v.length);
      assert.equal(sha(sink.data), sha(v));
      assert.equal((await repo.verify()).ok, true);
    }
  });

  test('a disk that grew is re-read past the old end; allocated extents skip reads of holes', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const v1 = makeDisk(CS * 10 + 300, 7);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(v1) });
    const v2 = Buffer.concat([v1, makeDisk(CS * 3, 8)]);
    const s2 = await snapshot(repo, p, { vda: new MemDiskSource(v2, 't', { changed: { base: 'c', extents: [] } }) }, { base: s1.snapshotId, cbtBase: 'c' });
    assert.equal(sha((await restore(repo, s2.snapshotId, 'vda', v2.length)).sink.data), sha(v2));
    const sparse = Buffer.alloc(CS * 20);
    randomBytes(CS * 2).copy(sparse, CS * 4);
    const src = new MemDiskSource(sparse, undefined, { allocated: [{ offset: CS * 4, length: CS * 2 }] });
    const s3 = await snapshot(repo, p, { vdb: src });
    assert.equal(src.bytesRead, CS * 2);
    assert.equal(s3.summaries[0]!.holes, 18);
    assert.equal(sha((await restore(repo, s3.snapshotId, 'vdb', sparse.length)).sink.data), sha(sparse));
  });

  test('scattered changed runs share batches (split at any batch size) and stay byte-exact, the short last chunk included', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const size = CS * 300 + 777;
    const v1 = makeDisk(size, 21);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(v1) });
    const v2 = Buffer.from(v1);
    // Runs of 1–3 chunks every 7 chunks, and the short last chunk.
    const extents: { offset: number; length: number }[] = [];
    for (let c = 3; c < 295; c += 7) extents.push({ offset: c * CS + 100, length: ((c % 3) + 1) * CS - 200 });
    extents.push({ offset: size - 500, length: 500 });
    for (const [k, e] of extents.entries()) v2.fill(k + 1, e.offset, e.offset + e.length);
    const changedChunks = new Set(extents.flatMap((e) => Array.from({ length: Math.floor((e.offset + e.length - 1) / CS) - Math.floor(e.offset / CS) + 1 }, (_, i) => Math.floor(e.offset / CS) + i)));
    for (const batchBytes of [CS * 4, CS * 5, undefined]) {
      const src = new MemDiskSource(v2, undefined, { changed: { base: 'c', extents } });
      const w = await repo.beginSnapshot({ projectId: p, snapshotId: newId() });
      const sum = await backupDisk({ writer: w, diskKey: 'vda', source: src, pool, base: await repo.findDiskIndex(s1.snapshotId, 'vda'), cbtBase: 'c', batchBytes });
      await w.commit({ workload: 'wl-1', instances: [] });
      assert.equal(sum.mode, 'changed-extents');
      assert.equal(src.bytesRead, (changedChunks.size - 1) * CS + (size % CS), `batchBytes ${batchBytes}: only the changed chunks are read`);
      assert.equal(sha((await restore(repo, w.snapshotId, 'vda', size)).sink.data), sha(v2), `batchBytes ${batchBytes}`);
    }
  });

  test('cancel mid-backup throws an AbortError and leaves no manifest', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const ac = new AbortController();
    const src = new MemDiskSource(makeDisk(CS * 200, 10));
    const orig = src.read.bind(src);
    src.read = async (...a) => {
      if (src.reads === 5) ac.abort();
      return orig(...a);
    };
    const snapshotId = newId();
    const w = await repo.beginSnapshot({ projectId: p, snapshotId });
    await assert.rejects(backupDisk({ writer: w, diskKey: 'vda', source: src, pool, signal: ac.signal, batchBytes: CS * 4, maxInFlight: 2 }), { name: 'AbortError' });
    assert.ok(src.bytesRead < CS * 200);
    await assert.rejects(w.commit({}), /cannot be committed/);
    await w.abort();
    assert.deepEqual(await repo.listSnapshots(), []);
  });

  test('progress is reported up to the disk size', async () => {
    const { repo } = await newRepo();
    const seen: number[] = [];
    const w = await repo.beginSnapshot({ projectId: newHexId(), snapshotId: newId() });
    await backupDisk({ writer: w, diskKey: 'd', source: new MemDiskSource(makeDisk(CS * 50, 11)), pool, onProgress: (x) => seen.push(x.bytesDone), batchBytes: CS * 8 });
    await w.commit(null);
    assert.ok(seen.length > 3);
    assert.equal(seen[seen.length - 1], CS * 50);
    assert.deepEqual([...seen].sort((a, b) => a - b), seen);
  });
});

/** `inner` whose reads of pack indexes (the chunk index's load) wait for `gate()` first. */
function gatedIndexReads(inner: Backend, gate: () => Promise<void>): Backend {
  return new Proxy(inner, {
    get(target, name) {
      if (name === 'get') return async (key: string) => (key.startsWith('index/') && (await gate()), target.get(key));
      const v: unknown = Reflect.get(target, name, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('a writer handed out while its chunk index loads (startSnapshot)', () => {
  test('the disk is read and hashed before the index arrives; lookups wait for it; dedup is as with a loaded index', async () => {
    let gate = Promise.resolve();
    const { repo } = await newRepo(gatedIndexReads(new MemBackend(), () => gate));
    const p = newHexId();
    const data = makeDisk(CS * 40, 21);
    const a = await snapshot(repo, p, { vda: new MemDiskSource(data) });
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const w = await repo.startSnapshot({ projectId: p, snapshotId: newId() });
    assert.equal(w.isReady, false);
    assert.throws(() => w.hasChunk(Buffer.alloc(32, 1)), InvalidStateError);
    const src = new MemDiskSource(data);
    let settled = false;
    const done = backupDisk({ writer: w, diskKey: 'vda', source: src, pool, batchBytes: CS * 8 }).finally(() => (settled = true));
    // Every batch in flight is read (and handed to the hash workers) while the index is held back.
    // (The reads need no worker and no timer: a bounded number of event-loop turns is enough.)
    for (let turn = 0; turn < 10_000 && src.bytesRead < CS * 8 * 5; turn++) await new Promise((r) => setImmediate(r));
    assert.equal(src.bytesRead, CS * 8 * 5);
    assert.equal(settled, false);
    assert.equal(w.isReady, false);
    open();
    const s = await done;
    assert.equal(w.isReady, true);
    assert.equal(s.bytesRead, data.length);
    assert.equal(s.newChunks, 0, 'every chunk deduplicated against the index that loaded meanwhile');
    assert.equal(s.bytesStored, 0);
    const m = await w.commit(null);
    const ia = await repo.readDiskIndex(a.manifest.disks[0]!.index);
    assert.deepEqual((await repo.readDiskIndex(m.disks[0]!.index)).ids, ia.ids);
    const { sink } = await restore(repo, m.snapshotId, 'vda', data.length);
    assert.equal(sha(sink.data), sha(data));
  });

  test('an index that cannot load: ready() and the backup fail with its cause, commit refuses, abort leaves no lease', async () => {
    const inner = new MemBackend();
    const backend = faultyBackend(inner, (op, key) => (op === 'list' && key.startsWith('index/') ? new Error('listing refused') : null));
    const { repo } = await newRepo(backend);
    const p = newHexId();
    const w = await repo.startSnapshot({ projectId: p, snapshotId: newId() });
    await assert.rejects(w.ready(), /listing refused/);
    await assert.rejects(backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(makeDisk(CS * 10, 22)), pool }), /listing refused/);
    await assert.rejects(w.commit(null), /cannot be committed/);
    await w.abort();
    assert.deepEqual(await listAll(inner, 'locks/'), []);
    assert.deepEqual(await listAll(inner, 'packs/'), [], 'nothing was written before the index loaded');
    // beginSnapshot waits for the index: it throws, and releases its lease.
    await assert.rejects(repo.beginSnapshot({ projectId: p, snapshotId: newId() }), /listing refused/);
    assert.deepEqual(await listAll(inner, 'locks/'), []);
  });
});

describe('integrity, verify and self-heal', () => {
  test('a flipped byte in a pack: verify names snapshot and disk; restore fails naming disk and chunk; other disks restore; next backup heals', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const d1 = makeDisk(CS * 8, 12);
    d1.write('x'.repeat(CS), 0); // a compressible chunk first
    const d2 = makeDisk(CS * 8, 13);
    // Two snapshots so that vdb lands in its own pack (the flip must hit only vda's chunks).
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(d1) });
    const s2 = await snapshot(repo, p, { vdb: new MemDiskSource(d2) });
    const vdaPack = packKeys(mem).find((k) => k.includes(s1.writer.writerId))!;
    const packBuf = mem.objects.get(vdaPack)!;
    packBuf[10] = packBuf[10]! ^ 0xff; // inside the first stored chunk

    const v = await repo.verify();
    assert.equal(v.ok, false);
    assert.equal(v.problems.length, 1);
    assert.equal(v.problems[0]!.kind, 'corrupt');
    assert.deepEqual(v.problems[0]!.affected, [{ snapshotId: s1.snapshotId, diskKey: 'vda' }]);
    assert.deepEqual(v.failedSnapshots, [s1.snapshotId]);
    const badChunk = v.problems[0]!.chunk;

    const sink = new MemDiskSink(d1.length);
    await assert.rejects(restoreDisk({ repo, snapshotId: s1.snapshotId, diskKey: 'vda', sink, pool }), (e: unknown) => {
      assert.ok(e instanceof IntegrityError);
      assert.match(e.message, /disk vda/);
      assert.match(e.message, new RegExp(badChunk));
      return true;
    });
    assert.equal(sink.state, 'aborted');
    assert.equal(sha((await restore(repo, s2.snapshotId, 'vdb', d2.length)).sink.data), sha(d2));

    // Self-heal: the next backup does not dedup against the bad copy and re-uploads it.
    const s3 = await snapshot(repo, p, { vda: new MemDiskSource(d1) }, { base: s1.snapshotId });
    assert.equal(s3.summaries[0]!.newChunks, 1);
    const v2 = await repo.verify();
    assert.equal(v2.ok, true, JSON.stringify(v2.problems));
    assert.equal(v2.healedChunks, 1);
    // Old snapshot restores again (from the intact copy).
    assert.equal(sha((await restore(repo, s1.snapshotId, 'vda', d1.length)).sink.data), sha(d1));
    // GC drops the bad copy's pack (rewriting its live chunks) and verify stays green.
    const r = await repo.gc({ repackBelow: 1.01 });
    assert.equal(r.swept, true);
    assert.ok(!mem.objects.has(vdaPack));
    const v3 = await repo.verify();
    assert.equal(v3.ok, true);
    assert.equal(v3.healedChunks, 0);
  });

  test('a deleted pack: verify reports missing; GC refuses to delete anything', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(makeDisk(CS * 8, 14)) });
    const s2 = await snapshot(repo, p, { vda: new MemDiskSource(makeDisk(CS * 8, 15)) });
    mem.objects.delete(packKeys(mem).find((k) => k.includes(s1.writer.writerId))!);
    const v = await repo.verify();
    assert.equal(v.ok, false);
    assert.ok(v.problems.length > 0 && v.problems.every((x) => x.kind === 'missing'));
    assert.deepEqual(v.failedSnapshots, [s1.snapshotId]);
    await repo.deleteSnapshot(s2.snapshotId);
    const before = mem.objects.size;
    const r = await repo.gc();
    assert.equal(r.swept, false);
    assert.ok(r.missingChunks.length > 0);
    assert.equal(mem.objects.size, before);
  });

  test('truncated or corrupt manifests and indexes give clean errors', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const s = await snapshot(repo, newHexId(), { vda: new MemDiskSource(makeDisk(CS * 4, 16)) });
    const mk = `manifests/${s.snapshotId}.json`;
    const good = mem.objects.get(mk)!;
    mem.objects.set(mk, good.subarray(0, good.length >> 1));
    await assert.rejects(repo.readManifest(s.snapshotId), IntegrityError);
    const edited = Buffer.from(good.toString().replace('"wl-1"', '"wl-2"'));
    mem.objects.set(mk, edited);
    await assert.rejects(repo.readManifest(s.snapshotId), (e: unknown) => e instanceof CorruptMetadataError && e.kind === 'corrupt-metadata' && /checksum/.test(e.message));
    // A manifest stored under another snapshot's name is corrupt metadata, not a bad request.
    const other = newId();
    mem.objects.set(`manifests/${other}.json`, good);
    await assert.rejects(repo.readManifest(other), (e: unknown) => e instanceof CorruptMetadataError && e.kind === 'corrupt-metadata');
    mem.objects.delete(`manifests/${other}.json`);
    mem.objects.set(mk, good);
    const dk = s.manifest.disks[0]!.index;
    const di = mem.objects.get(dk)!;
    mem.objects.set(dk, di.subarray(0, di.length - 7));
    await assert.rejects(repo.readDiskIndex(dk), IntegrityError);
    await assert.rejects(restoreDisk({ repo, snapshotId: s.snapshotId, diskKey: 'vda', sink: new MemDiskSink(CS * 4), pool }), IntegrityError);
    const v = await repo.verify();
    assert.equal(v.ok, false);
    assert.equal(v.metadataProblems[0]!.snapshotId, s.snapshotId);
  });
});

describe('delete and garbage collection', () => {
  test('GC after deleting a snapshot frees space but keeps what other manifests reference', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const shared = rnd(CS * 16, 17); // exactly one pack
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(Buffer.concat([shared, rnd(CS * 32, 18)])) });
    const s2 = await snapshot(repo, p, { vda: new MemDiskSource(Buffer.concat([shared, rnd(CS * 32, 19)])) });
    const size = () => [...mem.objects.values()].reduce((n, b) => n + b.length, 0);
    const before = size();
    assert.equal(await repo.deleteSnapshot(s1.snapshotId), true);
    assert.equal(await repo.deleteSnapshot(s1.snapshotId), false); // idempotent
    await assert.rejects(repo.readManifest(s1.snapshotId), (e: unknown) => e instanceof NotFoundError && /manifest of snapshot .* is missing/.test((e as Error).message));
    const r = await repo.gc();
    assert.equal(r.swept, true, r.reason ?? '');
    assert.ok(r.packsDeleted + r.packsRepacked > 0, JSON.stringify(r));
    assert.ok(size() < before * 0.75, `${size()} vs ${before}`);
    assert.equal((await repo.verify()).ok, true);
    const { sink } = await restore(repo, s2.snapshotId, 'vda', CS * 48);
    assert.equal(sha(sink.data), sha(Buffer.concat([shared, rnd(CS * 32, 19)])));
    assert.equal(packKeys(mem).filter((k) => k.includes(s1.writer.writerId)).length, 1); // the shared pack
    // Running GC again changes nothing.
    const r2 = await repo.gc();
    assert.equal(r2.packsDeleted + r2.packsRepacked, 0);
  });

  test('GC deletes nothing when a listing throws, when no manifest exists, or when a known snapshot is missing', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(makeDisk(CS * 8, 20)) });
    const s2 = await snapshot(repo, p, { vda: new MemDiskSource(makeDisk(CS * 8, 21)) });
    await repo.deleteSnapshot(s1.snapshotId);
    const keysBefore = [...mem.objects.keys()].filter((k) => !k.startsWith('locks/')).sort();
    const orig = mem.list.bind(mem);
    mem.list = (prefix: string) => {
      if (prefix === 'manifests/') throw new Error('S3 ListObjects failed: 503');
      return orig(prefix);
    };
    await assert.rejects(repo.gc(), /503/);
    mem.list = orig;
    assert.equal((await repo.gc({ knownSnapshotIds: [s2.snapshotId, newId()] })).swept, false);
    // A listing that "succeeds" empty while the DB still knows snapshots.
    mem.list = (prefix: string) => (prefix === 'manifests/' ? (async function* () {})() : orig(prefix));
    const r = await repo.gc();
    assert.equal(r.swept, false);
    assert.match(r.reason!, /no snapshot manifest/);
    mem.list = orig;
    assert.deepEqual([...mem.objects.keys()].filter((k) => !k.startsWith('locks/')).sort(), keysBefore);
  });

  test('GC keeps chunks a running writer may reuse, and sweeps them after it ends', async () => {
    const { repo } = await newRepo();
    const p = newHexId();
    const data = makeDisk(CS * 16, 22);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(data) });
    const keep = await snapshot(repo, p, { vdz: new MemDiskSource(makeDisk(CS * 2, 23)) }); // so GC is not "empty"
    await repo.deleteSnapshot(s1.snapshotId);
    // S2 starts before GC and dedups against S1's now unreferenced chunks.
    const s2id = newId();
    const w = await repo.beginSnapshot({ projectId: p, snapshotId: s2id });
    const r = await repo.gc();
    assert.equal(r.swept, true);
    assert.ok(r.pendingPacks > 0);
    const sum = await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool });
    assert.equal(sum.newChunks, 0); // reused S1's chunks
    await w.commit(null);
    assert.equal((await repo.verify()).ok, true);
    assert.equal(sha((await restore(repo, s2id, 'vda', data.length)).sink.data), sha(data));
    void keep;
  });

  test('a writer that starts after GC planned a deletion does not dedup against condemned packs', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const data = rnd(CS * 16, 24); // exactly one pack
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(data) });
    await snapshot(repo, p, { vdz: new MemDiskSource(rnd(CS * 2, 25)) });
    await repo.deleteSnapshot(s1.snapshotId);
    // Simulate GC killed right after publishing its plan.
    const packs = packKeys(mem).filter((k) => k.includes(s1.writer.writerId)).map((k) => k.split('/')[2]!.replace('.pack', ''));
    await mem.put('gc/plan.json', Buffer.from(JSON.stringify({ planId: 'x'.repeat(32), createdAt: 0, condemned: { [p]: packs } })));
    const s2 = await snapshot(repo, p, { vda: new MemDiskSource(data) });
    assert.equal(s2.summaries[0]!.newChunks, 16); // no dedup against the condemned pack
    const r = await repo.gc(); // a new GC: one of the two identical packs goes
    assert.equal(r.swept, true);
    const left = packKeys(mem).filter((k) => k.includes(s1.writer.writerId) || k.includes(s2.writer.writerId));
    assert.equal(left.length, 1);
    assert.equal(await mem.stat('gc/plan.json'), null);
    assert.equal((await repo.verify()).ok, true);
    assert.equal(sha((await restore(repo, s2.snapshotId, 'vda', data.length)).sink.data), sha(data));
  });

  test('crash between packs and manifest: repo verifies, next backup works, GC cleans up after the lease expires', async () => {
    const clock = new ManualClock();
    const { repo, backend } = await newRepo(new MemBackend(), clock);
    const mem = backend as MemBackend;
    const p = newHexId();
    const ok = await snapshot(repo, p, { vda: new MemDiskSource(makeDisk(CS * 8, 26)) });
    const w = await repo.beginSnapshot({ projectId: p, snapshotId: newId() });
    await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(makeDisk(CS * 40, 27)), pool });
    await w.abort({ simulateCrash: true }); // packs, pack index and disk index written; no manifest; lease left
    assert.deepEqual(await repo.listSnapshots(), [ok.snapshotId]);
    assert.equal((await repo.verify()).ok, true);
    const s3 = await snapshot(repo, p, { vda: new MemDiskSource(makeDisk(CS * 8, 28)) });
    assert.equal((await repo.verify()).ok, true);
    // While the dead writer's lease has not expired, its packs are protected.
    const r1 = await repo.gc();
    assert.equal(r1.swept, true);
    assert.ok(packKeys(mem).some((k) => k.includes(w.writerId)));
    clock.advance(60_000 + 10_000 + 1);
    const r2 = await repo.gc();
    assert.equal(r2.swept, true);
    assert.ok(!packKeys(mem).some((k) => k.includes(w.writerId)));
    assert.equal(r2.leasesRemoved, 1);
    assert.deepEqual(await listAll(mem, `disks/${w.snapshotId}/`), []);
    assert.equal((await repo.verify()).ok, true);
    assert.equal(sha((await restore(repo, s3.snapshotId, 'vda', CS * 8)).sink.data), sha(makeDisk(CS * 8, 28)));
  });

  test("a per-host part's disks outlive its writer while the snapshot's writer lives; the manifest adopts them; an aborted snapshot's part is collected", async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const s0 = await snapshot(repo, p, { vda: new MemDiskSource(rnd(CS * 16, 60)) });
    await snapshot(repo, p, { vda: new MemDiskSource(rnd(CS * 8, 61)) });
    const run = async () => {
      const snapshotId = newId();
      const parent = await repo.beginSnapshot({ projectId: p, snapshotId });
      await backupDisk({ writer: parent, diskKey: 'vm1:vda', source: new MemDiskSource(rnd(CS * 20, 62)), pool });
      const part = await repo.beginSnapshot({ projectId: p, snapshotId });
      await backupDisk({ writer: part, diskKey: 'vm2:vda', source: new MemDiskSource(rnd(CS * 24, 63)), pool });
      const disks = await part.finishPart();
      assert.deepEqual(disks.map((d) => d.diskKey), ['vm2:vda']);
      return { snapshotId, parent, part, disks };
    };
    const a = await run();
    // GC while the part's writer is gone and the parent still writes: the part's index and packs stay.
    assert.equal(await repo.deleteSnapshot(s0.snapshotId), true);
    const r = await repo.gc();
    assert.equal(r.swept, true, r.reason ?? '');
    assert.equal(r.diskIndexesRemoved, 0);
    assert.equal((await listAll(mem, `disks/${a.snapshotId}/`)).filter((k) => k.includes(a.part.writerId)).length, 1);
    assert.ok(packKeys(mem).some((k) => k.includes(a.part.writerId)));
    // Only this snapshot's indexes, once each.
    const other = await run();
    assert.throws(() => a.parent.adoptDisks(other.disks), /is not one of snapshot/);
    a.parent.adoptDisks(a.disks);
    assert.throws(() => a.parent.adoptDisks(a.disks), /already written/);
    const m = await a.parent.commit({ workload: 'wl-1' });
    assert.deepEqual(m.disks.map((d) => d.diskKey).sort(), ['vm1:vda', 'vm2:vda']);
    assert.equal(sha((await restore(repo, a.snapshotId, 'vm2:vda', CS * 24)).sink.data), sha(rnd(CS * 24, 63)));
    assert.equal(sha((await restore(repo, a.snapshotId, 'vm1:vda', CS * 20)).sink.data), sha(rnd(CS * 20, 62)));
    // The other snapshot fails: its parent aborts, and the next GC takes the part's objects.
    await other.parent.abort();
    const r2 = await repo.gc();
    assert.equal(r2.swept, true, r2.reason ?? '');
    assert.deepEqual(await listAll(mem, `disks/${other.snapshotId}/`), []);
    assert.ok(!packKeys(mem).some((k) => k.includes(other.part.writerId)));
    assert.equal((await repo.verify()).ok, true);
  });

  test('GC killed mid-sweep is resumable', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const shared = rnd(CS * 16, 29);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(Buffer.concat([shared, rnd(CS * 24, 30)])) });
    const s2 = await snapshot(repo, p, { vda: new MemDiskSource(Buffer.concat([shared, rnd(CS * 8, 31)])) });
    await repo.deleteSnapshot(s1.snapshotId);
    // Kill GC at its N-th delete, for several N; after each kill the repo must verify.
    for (let killAt = 1; killAt < 6; killAt++) {
      let n = 0;
      const orig = mem.delete.bind(mem);
      mem.delete = async (k: string) => {
        if (!k.startsWith('locks/') && ++n === killAt) throw new Error('killed');
        return orig(k);
      };
      await repo.gc().catch(() => {});
      mem.delete = orig;
      const v = await repo.verify();
      assert.equal(v.ok, true, `killAt=${killAt}: ${JSON.stringify(v.problems.slice(0, 2))}`);
    }
    for (const k of [...mem.objects.keys()].filter((x) => x.startsWith('locks/'))) mem.objects.delete(k); // leases of the "killed" GCs
    assert.equal((await repo.gc()).swept, true);
    assert.equal((await repo.verify()).ok, true);
    assert.equal(packKeys(mem).filter((k) => k.includes(s1.writer.writerId)).length, 1); // only the shared pack
    assert.equal(sha((await restore(repo, s2.snapshotId, 'vda', CS * 24)).sink.data), sha(Buffer.concat([shared, rnd(CS * 8, 31)])));
  });
});

describe('garbage collection: plan, decide, execute', () => {
  test('the report counts what was planned (dry run, nothing deleted) and then done', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const shared = rnd(CS * 16, 40); // exactly one pack, kept by s2
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(Buffer.concat([shared, rnd(CS * 32, 41)])) });
    await snapshot(repo, p, { vda: new MemDiskSource(Buffer.concat([shared, rnd(CS * 8, 42)])) });
    await repo.deleteSnapshot(s1.snapshotId);
    const before = new Map(mem.objects);
    const dry = await repo.gc({ dryRun: true });
    assert.equal(dry.swept, false);
    assert.equal(dry.reason, 'dry run');
    assert.ok(dry.packsDeleted + dry.packsRepacked >= 2, JSON.stringify(dry)); // s1's unshared data
    assert.deepEqual([...mem.objects.keys()].filter((k) => !k.startsWith('locks/')).sort(), [...before.keys()].filter((k) => !k.startsWith('locks/')).sort());
    assert.equal(await mem.stat('gc/plan.json'), null); // a dry run publishes no plan either

    const r = await repo.gc();
    assert.equal(r.swept, true, r.reason ?? '');
    assert.equal(r.reason, null);
    assert.equal(r.manifests, 1);
    assert.equal(r.packsDeleted, dry.packsDeleted); // the dry run predicted the real one
    assert.equal(r.packsRepacked, dry.packsRepacked);
    assert.equal(r.bytesFreed, [...before].filter(([k]) => k.startsWith('packs/') && !mem.objects.has(k)).reduce((n, [, v]) => n + v.length, 0));
    assert.ok(r.bytesFreed >= CS * 32);
    assert.equal(r.packIndexesRewritten, 1);
    assert.equal(r.pendingPacks, 0);
    assert.deepEqual(r.missingChunks, []);
    // One consolidated index for the project, recording the exact length of every pack it names
    // (writers check packs against it before they dedup).
    const idx = [...mem.objects.keys()].filter((k) => k.startsWith(`index/${p}/`));
    assert.equal(idx.length, 1);
    const { header } = decodePackIndex(idx[0]!, mem.objects.get(idx[0]!)!);
    assert.deepEqual(header.packLengths, header.packs.map((pk) => mem.objects.get(`packs/${p}/${pk}.pack`)!.length));
    assert.equal((await repo.verify()).ok, true);
  });

  test('a GC refused because a snapshot was committed while it ran leaves no plan: later writers dedup against that snapshot', async () => {
    /** Runs `hook` once, right after GC publishes its plan (between its mark and its decision). */
    class PlanHook extends MemBackend {
      hook: (() => Promise<void>) | null = null;
      override async put(key: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
        await super.put(key, data);
        if (key !== 'gc/plan.json' || !this.hook) return;
        const h = this.hook;
        this.hook = null;
        await h();
      }
    }
    const mem = new PlanHook();
    const { repo } = await newRepo(mem);
    const p = newHexId();
    await snapshot(repo, p, { vdz: new MemDiskSource(rnd(CS * 2, 45)) }); // so GC is not "empty"
    const old = rnd(CS * 8, 46);
    const fresh = rnd(CS * 4, 47);
    const victim = await snapshot(repo, p, { vda: new MemDiskSource(old) });
    await repo.deleteSnapshot(victim.snapshotId);
    // A full starts, reuses the deleted snapshot's chunks and stores new ones; it commits after
    // GC marked (its packs look unreferenced, the victim's too) and before GC decides.
    const data = Buffer.concat([old, fresh]);
    const sid = newId();
    const w = await repo.beginSnapshot({ projectId: p, snapshotId: sid });
    const first = await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool, full: true });
    assert.equal(first.newChunks, 4, 'the victim\'s chunks are reused');
    mem.hook = async () => void (await w.commit(null));
    const r = await repo.gc();
    assert.equal(r.swept, false);
    assert.match(r.reason ?? '', /committed during GC/);
    assert.equal(await mem.stat('gc/plan.json'), null, 'the refused plan is gone');
    // The next backup of the same bytes finds every chunk (none in a pack wrongly condemned).
    const next = await snapshot(repo, p, { vda: new MemDiskSource(data) });
    assert.equal(next.summaries[0]!.newChunks, 0);
    assert.equal((await repo.verify()).ok, true);
    assert.equal(sha((await restore(repo, sid, 'vda', data.length)).sink.data), sha(data));
  });

  test('orphan packs of a dead writer (no pack index, no manifest) are collected once its lease is older than ttl + grace', async () => {
    const clock = new ManualClock();
    const { repo, backend } = await newRepo(new MemBackend(), clock);
    const mem = backend as MemBackend;
    const p = newHexId();
    await snapshot(repo, p, { vda: new MemDiskSource(rnd(CS * 4, 43)) }); // so GC is not "empty"
    // A writer killed right after putting a pack: no pack index, no disk index, no manifest,
    // and its lease stays behind (no heartbeat any more).
    const dead = await repo.acquireLease('writer', p, newId());
    const orphan = `packs/${p}/${dead.record.id}-000000.pack`;
    await mem.put(orphan, rnd(CS * 3, 44));
    await dead.release(false);
    // The leftover exists, and while the lease may still be live GC must not touch it.
    const r1 = await repo.gc();
    assert.equal(r1.swept, true);
    assert.ok(mem.objects.has(orphan));
    assert.equal(r1.pendingPacks, 1);
    clock.advance(60_000); // ttl: not yet dead (grace left)
    assert.ok((await repo.gc()).pendingPacks === 1 && mem.objects.has(orphan));
    clock.advance(10_000 + 1); // past ttl + grace since the last heartbeat
    const r2 = await repo.gc();
    assert.equal(r2.swept, true);
    assert.ok(!mem.objects.has(orphan));
    assert.equal(r2.packsDeleted, 1);
    assert.equal(r2.leasesRemoved, 1);
    assert.equal(r2.pendingPacks, 0);
    assert.equal(await mem.stat(`locks/${dead.record.id}.json`), null);
  });

  test('temp files of killed fs writers are removed by GC once older than the leftover grace', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lb-gc-fs-'));
    try {
      const fs = new FsBackend(dir);
      const { repo } = await newRepo(fs);
      const p = newHexId();
      await snapshot(repo, p, { vda: new MemDiskSource(rnd(CS * 4, 45)) });
      // A pack stream killed mid-write leaves its temp file; another one is still being written.
      const killed = await fs.openWriter(`packs/${p}/${newHexId()}-000000.pack`);
      await killed.write([rnd(CS, 46)]);
      const tmpOf = async () => (await readdir(join(dir, 'packs', p))).filter((n) => n.startsWith('.tmp-'));
      const [leftover] = await tmpOf();
      assert.ok(leftover);
      const live = await fs.openWriter(`packs/${p}/${newHexId()}-000000.pack`);
      await live.write([rnd(CS, 47)]);
      const old = new Date(Date.now() - 2 * 3600_000);
      await utimes(join(dir, 'packs', p, leftover), old, old);
      const r = await repo.gc({ leftoverGraceMs: 3600_000 });
      assert.equal(r.swept, true);
      assert.equal(r.leftoversRemoved, 1);
      assert.equal((await tmpOf()).length, 1); // the live writer's
      await live.abort();
      await killed.abort();
      assert.equal((await repo.verify()).ok, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a damaged chunk met while repacking stops GC with an integrity error; nothing is deleted', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const keep = rnd(CS * 4, 48);
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(Buffer.concat([keep, rnd(CS * 12, 49)])) });
    const s2 = await snapshot(repo, p, { vda: new MemDiskSource(keep) });
    await repo.deleteSnapshot(s1.snapshotId);
    // Flip a byte of a chunk s2 still uses (verify has not run, so no bad-marker warns GC).
    const id = (await repo.readDiskIndex(s2.manifest.disks[0]!.index)).ids.subarray(0, 32);
    const entry = [...mem.objects]
      .filter(([k]) => k.startsWith(`index/${p}/`))
      .flatMap(([k, v]) => decodePackIndex(k, v).entries)
      .find((e) => e.id.equals(id))!;
    const packBytes = mem.objects.get(`packs/${p}/${entry.pack}.pack`)!;
    packBytes[entry.offset + 5] = packBytes[entry.offset + 5]! ^ 0xff;
    const before = [...mem.objects.keys()].filter((k) => !k.startsWith('locks/'));
    await assert.rejects(repo.gc({ repackBelow: 1.01 }), (e: unknown) => e instanceof IntegrityError && /damaged/.test(e.message));
    for (const k of before) assert.ok(mem.objects.has(k), `${k} survives`);
  });

  test('a lost pack no snapshot needs any more leaves the pack index, with its lost-marker', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    const p = newHexId();
    const s1 = await snapshot(repo, p, { vda: new MemDiskSource(rnd(CS * 20, 53)) });
    await snapshot(repo, p, { vda: new MemDiskSource(rnd(CS * 4, 54)) });
    // s1's packs are lost (as integrity's pack check reports them), then s1 is deleted.
    const lostPacks = packKeys(mem).filter((k) => k.includes(s1.writer.writerId));
    assert.ok(lostPacks.length > 0);
    for (const k of lostPacks) {
      mem.objects.delete(k);
      await mem.put(`bad/${p}/lost-${k.split('/')[2]!.replace('.pack', '')}`, Buffer.from('{}'));
    }
    await repo.deleteSnapshot(s1.snapshotId);
    const named = () =>
      [...mem.objects]
        .filter(([k]) => k.startsWith(`index/${p}/`))
        .flatMap(([k, v]) => decodePackIndex(k, v).header.packs)
        .filter((pk) => pk.startsWith(s1.writer.writerId));
    assert.ok(named().length > 0, 'the leftover: indexes still name the lost packs');
    const r = await repo.gc();
    assert.equal(r.swept, true, r.reason ?? '');
    assert.deepEqual(named(), []);
    assert.equal(r.badMarkersRemoved, lostPacks.length);
    assert.deepEqual(await listAll(mem, `bad/${p}/`), []);
    // Every pack the consolidated index names exists, with its exact length recorded.
    const [idx] = [...mem.objects].filter(([k]) => k.startsWith(`index/${p}/`));
    const { header } = decodePackIndex(idx![0], idx![1]);
    assert.deepEqual(header.packLengths, header.packs.map((pk) => mem.objects.get(`packs/${p}/${pk}.pack`)?.length));
    assert.equal((await repo.verify()).ok, true);
  });

  test('a second GC while one runs is refused with a conflict, and leaves no lease behind', async () => {
    const { repo, backend } = await newRepo();
    const mem = backend as MemBackend;
    await snapshot(repo, newHexId(), { vda: new MemDiskSource(rnd(CS * 2, 50)) });
    const first = await repo.acquireLease('gc', null, null); // a running GC
    await assert.rejects(repo.gc(), ConflictError);
    assert.deepEqual(await listAll(mem, 'locks/'), [`locks/${first.record.id}.json`]);
    await first.release();
    assert.equal((await repo.gc()).swept, true);
  });
});

describe('disk index publication', () => {
  test('an id the writer never stored: the disk index is refused naming the chunk, after the packs were flushed; nothing names it', async () => {
    const { repo, backend } = await newRepo();
    const p = newHexId();
    const snapshotId = newId();
    const w = await repo.beginSnapshot({ projectId: p, snapshotId });
    const summary = await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(rnd(CS * 8, 3)), pool, meta: null });
    const ids = Buffer.alloc(4 * 32);
    const stored = (await repo.readDiskIndex(summary.disk.index)).ids;
    stored.copy(ids, 0, 0, 32); // chunk 0: stored; chunk 1: a hole; chunk 2: never stored
    ids.fill(7, 64, 96);
    const header = { projectId: p, snapshotId, diskKey: 'vdb', size: 4 * CS, chunkSize: CS, chunkCount: 4, holes: 1, changeToken: null, createdAt: 0 };
    await assert.rejects(w.writeDiskIndex({ header, ids }, { storedBytes: 0 }), /disk vdb: chunk 2 is not stored \(internal error\)/);
    const disks = (await listAll(backend, `disks/${snapshotId}/`)).filter((k) => !k.includes(summary.disk.index.split('/').pop()!));
    assert.deepEqual(disks, [], 'no index of vdb was written');
    await w.abort();
  });
});
