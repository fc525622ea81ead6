import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import type { Backend } from '../src/backend/backend.js';
import { faultyBackend } from '../src/backend/testing.js';
import { ManualClock } from '../src/lib/clock.js';
import { newHexId, newId } from '../src/lib/ids.js';
import { Repository } from '../src/repository/repository.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink, MemDiskSource } from '../src/datamover/testing.js';
import { decodePackIndex, encodePackIndex } from '../src/repository/pack-index.format.js';

/**
 * Issue 10 item 1 at the engine level: a snapshot never deduplicates against data that is not
 * there (deleted/truncated pack, copy known bad), an unreadable pack index is rebuilt from the
 * packs, and sampled verify reads about the share asked for.
 */
const CS = 16 * 1024;
const pool = new ChunkPool(2);
after(() => pool.close());

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Incompressible, deterministic data: one chunk = CS stored bytes. */
function rnd(size: number, seed: number): Buffer {
  const parts: Buffer[] = [];
  for (let have = 0, i = 0; have < size; have += 32, i++) parts.push(createHash('sha256').update(`i${seed}/${i}`).digest());
  return Buffer.concat(parts).subarray(0, size);
}

async function newRepo() {
  const backend = new MemBackend();
  const repo = await Repository.init(backend, { chunkSize: CS, packSize: 128 * 1024 }, { clock: new ManualClock(), leaseTtlMs: 60_000, graceMs: 10_000 });
  return { repo, mem: backend };
}

async function snapshot(repo: Repository, projectId: string, data: Buffer, opts: { full?: boolean; base?: string } = {}) {
  const snapshotId = newId();
  const w = await repo.beginSnapshot({ projectId, snapshotId });
  const base = opts.base ? await repo.findDiskIndex(opts.base, 'vda') : null;
  const summary = await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool, full: opts.full, base });
  await w.commit(null);
  return { snapshotId, summary, writer: w };
}

async function restoredSha(repo: Repository, snapshotId: string, size: number): Promise<string> {
  const sink = new MemDiskSink(size);
  await restoreDisk({ repo, snapshotId, diskKey: 'vda', sink, pool });
  return sha(sink.data);
}

const flip = (b: Buffer, at: number) => {
  b[at] = b[at]! ^ 0xff;
};
const packsOf = (mem: MemBackend, writerId: string) => [...mem.objects.keys()].filter((k) => k.startsWith('packs/') && k.includes(writerId));

describe('pack check: a snapshot never deduplicates against a lost pack', () => {
  test('delete a pack → the next full snapshot re-uploads its chunks, reports the loss, restores byte-exact', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 20, 1);
    const s1 = await snapshot(repo, p, data, { full: true });
    const lostKey = packsOf(mem, s1.writer.writerId)[0]!;
    mem.objects.delete(lostKey);
    // Reproduction of the old behaviour: the pack index alone made every chunk look stored.
    const s2 = await snapshot(repo, p, data, { full: true });
    assert.equal(s2.writer.integrity.lostPacks!.length, 1);
    assert.match(s2.writer.integrity.lostPacks![0]!.reason, /missing/);
    assert.equal(s2.summary.newChunks, s2.writer.integrity.lostPacks![0]!.chunks);
    assert.equal(s2.writer.integrity.lostChunks.length, s2.summary.newChunks);
    assert.equal(await restoredSha(repo, s2.snapshotId, data.length), sha(data));
    // The old snapshot heals too: its chunks have an intact copy again.
    assert.equal(await restoredSha(repo, s1.snapshotId, data.length), sha(data));
    assert.equal((await repo.verify()).ok, true);
  });

  test('an incremental (change token) re-reads chunks of a lost pack', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 20, 2);
    const snapshotId = newId();
    const w = await repo.beginSnapshot({ projectId: p, snapshotId });
    await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data, 't1'), pool });
    await w.commit(null);
    mem.objects.delete(packsOf(mem, w.writerId)[1]!);
    const s2 = newId();
    const w2 = await repo.beginSnapshot({ projectId: p, snapshotId: s2 });
    const sum = await backupDisk({ writer: w2, diskKey: 'vda', source: new MemDiskSource(data, 't1'), pool, base: await repo.findDiskIndex(snapshotId, 'vda') });
    await w2.commit(null);
    assert.equal(sum.mode, 'change-token');
    assert.equal(sum.newChunks, w2.integrity.lostChunks.length);
    assert.ok(sum.newChunks > 0);
    assert.equal(await restoredSha(repo, s2, data.length), sha(data));
  });

  test('a changed-extents incremental re-reads chunks of a lost pack besides the changed ones, and says its reads are done only after those too', async () => {
    // No changed chunk, fewer changed batches than slots, more changed batches than slots.
    for (const changedChunks of [[], [3], [0, 8, 16, 24, 32, 40, 48, 56]]) {
      const what = `changed chunks ${changedChunks.join()}`;
      const { repo, mem } = await newRepo();
      const p = newHexId();
      const data = rnd(CS * 60, 5);
      const snapshotId = newId();
      const w = await repo.beginSnapshot({ projectId: p, snapshotId });
      await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool });
      await w.commit(null);
      mem.objects.delete(packsOf(mem, w.writerId)[1]!);
      const base = (await repo.findDiskIndex(snapshotId, 'vda'))!;
      const v = Buffer.from(data);
      for (const c of changedChunks) v.fill(c + 1, c * CS, c * CS + 100);
      const src = new MemDiskSource(v, undefined, { changed: { base: 'c', extents: changedChunks.map((c) => ({ offset: c * CS, length: 100 })) } });
      let readsAtDone = -1;
      let lastProgress = 0;
      const s2 = newId();
      const w2 = await repo.beginSnapshot({ projectId: p, snapshotId: s2 });
      const sum = await backupDisk({
        writer: w2,
        diskKey: 'vda',
        source: src,
        pool,
        base,
        cbtBase: 'c',
        batchBytes: CS * 2,
        maxInFlight: 3,
        onReadsDone: () => {
          assert.equal(readsAtDone, -1, `${what}: told once`);
          readsAtDone = src.reads;
        },
        onProgress: (x) => (lastProgress = x.bytesDone),
      });
      await w2.commit(null);
      assert.equal(sum.mode, 'changed-extents', what);
      const lostIds = new Set(w2.integrity.lostChunks);
      const lostChunks = Array.from({ length: 60 }, (_, i) => i).filter((i) => lostIds.has(base.ids.subarray(i * 32, i * 32 + 32).toString('hex')));
      assert.ok(lostChunks.length > 0, `${what}: the lost pack's chunks are found`);
      const read = new Set([...changedChunks, ...lostChunks]);
      assert.equal(src.bytesRead, read.size * CS, `${what}: the changed chunks and the lost ones are read, nothing else`);
      assert.equal(readsAtDone, src.reads, `${what}: onReadsDone after the last read`);
      assert.equal(lastProgress, v.length, `${what}: progress ends at the disk size`);
      assert.equal(await restoredSha(repo, s2, v.length), sha(v), what);
    }
  });

  test('a lost pack whose loss was reported is not reported again (its chunks stay excluded)', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const s1 = await snapshot(repo, p, rnd(CS * 10, 8));
    const lostKey = packsOf(mem, s1.writer.writerId)[0]!;
    mem.objects.delete(lostKey);
    const s2 = await snapshot(repo, p, rnd(CS * 10, 9)); // other data: nothing heals the loss
    const lost = s2.writer.integrity.lostPacks!;
    assert.equal(lost.length, 1);
    assert.equal(lost[0]!.reported, false);
    assert.equal(s2.writer.integrity.lostChunks.length, lost[0]!.chunks);
    await repo.markLostPackReported(p, lost[0]!.pack, lost[0]!.reason);
    const s3 = await snapshot(repo, p, rnd(CS * 10, 9));
    assert.equal(s3.writer.integrity.lostPacks![0]!.reported, true);
    assert.deepEqual(s3.writer.integrity.lostChunks, []);
    assert.equal(s3.summary.newChunks, 0);
  });

  test('a truncated pack (length differs from the index) is not trusted', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 6, 3);
    const s1 = await snapshot(repo, p, data);
    const key = packsOf(mem, s1.writer.writerId)[0]!;
    const idxKey = [...mem.objects.keys()].find((k) => k.startsWith('index/'))!;
    assert.ok(decodePackIndex(idxKey, mem.objects.get(idxKey)!).header.packLengths, 'new indexes record pack lengths');
    mem.objects.set(key, mem.objects.get(key)!.subarray(0, CS * 3));
    const s2 = await snapshot(repo, p, data, { full: true });
    assert.match(s2.writer.integrity.lostPacks![0]!.reason, /bytes/);
    assert.equal(s2.summary.newChunks, 6);
    assert.equal(await restoredSha(repo, s2.snapshotId, data.length), sha(data));
  });
});

describe('pack check: sizes from the listing, or a stat per pack', () => {
  // The same damage (one pack lost, one truncated) found either way: over a backend whose
  // listing has sizes with no stat at all, over one without listSizes with a stat per pack.
  for (const withSizes of [true, false]) {
    test(withSizes ? 'a backend whose listing has sizes: no stat' : 'a backend without listSizes: one stat per pack', async () => {
      const mem = new MemBackend();
      const inner: Backend = withSizes ? mem : { put: mem.put.bind(mem), get: mem.get.bind(mem), getRange: mem.getRange.bind(mem), stat: mem.stat.bind(mem), list: mem.list.bind(mem), delete: mem.delete.bind(mem) };
      let packStats = 0;
      const counted = faultyBackend(inner, (op, key) => {
        if (op === 'stat' && key.startsWith('packs/')) packStats++;
        return null;
      });
      const repo = await Repository.init(counted, { chunkSize: CS, packSize: 128 * 1024 }, { clock: new ManualClock(), leaseTtlMs: 60_000, graceMs: 10_000 });
      const p = newHexId();
      const data = rnd(CS * 24, 5);
      const s1 = await snapshot(repo, p, data);
      const [lost, cut, ...rest] = packsOf(mem, s1.writer.writerId);
      assert.ok(rest.length > 0, 'several packs');
      mem.objects.delete(lost!);
      mem.objects.set(cut!, mem.objects.get(cut!)!.subarray(0, CS));
      packStats = 0;
      const w = await repo.beginSnapshot({ projectId: p, snapshotId: newId() });
      assert.equal(packStats, withSizes ? 0 : rest.length + 1); // the lost pack is not listed
      assert.deepEqual(w.integrity.lostPacks!.map((l) => l.pack).sort(), [lost!, cut!].map((k) => k.split('/')[2]!.replace('.pack', '')).sort());
      await w.abort();
    });
  }
});

describe('repositories written before pack lengths were recorded', () => {
  test('an index without packLengths: whole packs are trusted, a pack cut into its chunks is not', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 6, 10);
    const s1 = await snapshot(repo, p, data);
    // Rewrite the pack index as an older writer did: same entries, no packLengths.
    const idxKey = [...mem.objects.keys()].find((k) => k.startsWith(`index/${p}/`))!;
    const { header, entries } = decodePackIndex(idxKey, mem.objects.get(idxKey)!);
    mem.objects.set(idxKey, Buffer.concat(encodePackIndex(p, header.createdAt, entries)));
    assert.equal(decodePackIndex(idxKey, mem.objects.get(idxKey)!).header.packLengths, undefined);
    const s2 = await snapshot(repo, p, data, { full: true });
    assert.deepEqual(s2.writer.integrity.lostPacks, []);
    assert.equal(s2.summary.newChunks, 0);
    // Cut off the trailer and part of the last chunk: below the lower bound.
    const key = packsOf(mem, s1.writer.writerId)[0]!;
    mem.objects.set(key, mem.objects.get(key)!.subarray(0, CS * 6 - 10));
    const s3 = await snapshot(repo, p, data, { full: true });
    assert.equal(s3.writer.integrity.lostPacks!.length, 1);
    assert.match(s3.writer.integrity.lostPacks![0]!.reason, /at least/);
    assert.equal(await restoredSha(repo, s3.snapshotId, data.length), sha(data));
  });
});

describe('index repair', () => {
  test('truncate a pack index → the next snapshot rebuilds it from the packs and succeeds', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 12, 4);
    const s1 = await snapshot(repo, p, data);
    const idxKey = [...mem.objects.keys()].find((k) => k.startsWith(`index/${p}/`))!;
    mem.objects.set(idxKey, mem.objects.get(idxKey)!.subarray(0, 40));
    const s2 = await snapshot(repo, p, data, { full: true });
    const rep = s2.writer.integrity.repair!;
    assert.deepEqual(rep.unreadableIndexes.map((x) => x.key), [idxKey]);
    assert.equal(rep.packsReindexed, packsOf(mem, s1.writer.writerId).length);
    assert.ok(rep.written && mem.objects.has(rep.written));
    assert.ok(!mem.objects.has(idxKey), 'the unreadable index is gone once the rebuilt one is durable');
    assert.equal(s2.summary.newChunks, 0, 'rebuilt index: everything deduplicated');
    assert.equal(await restoredSha(repo, s1.snapshotId, data.length), sha(data));
    assert.equal(await restoredSha(repo, s2.snapshotId, data.length), sha(data));
    assert.equal((await repo.verify()).ok, true);
  });

  test('restore works with a corrupt pack index (rebuilt in memory, nothing written)', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 5, 5);
    const s1 = await snapshot(repo, p, data);
    const idxKey = [...mem.objects.keys()].find((k) => k.startsWith(`index/${p}/`))!;
    const buf = Buffer.from(mem.objects.get(idxKey)!);
    buf[buf.length - 40] = buf[buf.length - 40]! ^ 0x01;
    mem.objects.set(idxKey, buf);
    const before = mem.objects.size;
    assert.equal(await restoredSha(repo, s1.snapshotId, data.length), sha(data));
    assert.equal(mem.objects.size, before);
  });

  test('repair-index: drops unreadable indexes, indexes uncovered packs, idempotent', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 12, 6);
    const s1 = await snapshot(repo, p, data);
    for (const k of [...mem.objects.keys()].filter((x) => x.startsWith('index/'))) mem.objects.delete(k);
    const [r] = await repo.repairIndex();
    assert.equal(r!.projectId, p);
    assert.equal(r!.repair.packsReindexed, packsOf(mem, s1.writer.writerId).length);
    assert.ok(r!.repair.written);
    const again = await repo.repairIndex();
    assert.equal(again[0]!.repair.packsReindexed, 0);
    assert.equal(again[0]!.repair.written, null);
    const v = await repo.verify();
    assert.equal(v.ok, true, JSON.stringify(v.problems.slice(0, 2)));
    const s2 = await snapshot(repo, p, data, { full: true });
    assert.equal(s2.summary.newChunks, 0);
  });
});

describe('sampled verify (--read-data-subset)', () => {
  test('reads about the share asked for, finds damage in what it reads, checks every pack for presence and length', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const data = rnd(CS * 8 * 40, 7); // 40 packs of 8 chunks (128 KiB)
    const s1 = await snapshot(repo, p, data);
    const packKeys = packsOf(mem, s1.writer.writerId);
    assert.equal(packKeys.length, 40);
    const full = await repo.verify({ markBad: false });
    assert.equal(full.ok, true);
    const part = await repo.verify({ markBad: false, readDataSubset: 0.25 });
    assert.equal(part.ok, true);
    assert.equal(part.sampled, 0.25);
    assert.equal(part.packsRead, 10);
    assert.ok(Math.abs(part.bytesRead / full.bytesRead - 0.25) < 0.01, `read ${part.bytesRead} of ${full.bytesRead}`);
    assert.equal(part.chunksChecked + part.chunksSkipped, full.chunksChecked);

    // One flipped chunk per pack: a sample finds exactly the damage in the packs it read.
    for (const k of packKeys) flip(mem.objects.get(k)!, 10);
    const bad = await repo.verify({ markBad: false, readDataSubset: 0.25 });
    assert.equal(bad.ok, false);
    assert.equal(bad.problems.length, 10);
    assert.ok(bad.problems.every((x) => x.kind === 'corrupt'));
    assert.deepEqual(bad.failedSnapshots, [s1.snapshotId]);

    // A truncated pack is found whether or not the sample reads it (length from the index).
    for (const k of packKeys) flip(mem.objects.get(k)!, 10);
    mem.objects.set(packKeys[0]!, mem.objects.get(packKeys[0]!)!.subarray(0, CS));
    for (let i = 0; i < 3; i++) {
      const t = await repo.verify({ markBad: false, readDataSubset: 0.05 });
      assert.equal(t.ok, false);
      assert.ok(t.problems.length >= 8 && t.problems.some((x) => /bytes/.test(x.detail)), JSON.stringify(t.problems[0]));
    }
    await assert.rejects(repo.verify({ readDataSubset: 0 }), /readDataSubset/);
  });
});

describe('verify against the records: a committed snapshot without a manifest', () => {
  test('is reported missing when the records name it before and after the listing, not when it was deleted meanwhile', async () => {
    const { repo, mem } = await newRepo();
    const p = newHexId();
    const a = await snapshot(repo, p, rnd(CS * 4, 61));
    const b = await snapshot(repo, p, rnd(CS * 4, 62));
    mem.objects.delete(`manifests/${b.snapshotId}.json`);
    const answers = (...lists: string[][]) => {
      let i = 0;
      return async () => lists[Math.min(i++, lists.length - 1)]!;
    };

    const lost = await repo.verify({ expectedSnapshots: answers([a.snapshotId, b.snapshotId]) });
    assert.equal(lost.ok, false);
    assert.deepEqual(lost.failedSnapshots, [b.snapshotId]);
    assert.deepEqual(lost.metadataProblems, [{ key: `manifests/${b.snapshotId}.json`, snapshotId: b.snapshotId, message: 'manifest missing' }]);

    const deletedMeanwhile = await repo.verify({ expectedSnapshots: answers([a.snapshotId, b.snapshotId], [a.snapshotId]) });
    assert.equal(deletedMeanwhile.ok, true, JSON.stringify(deletedMeanwhile.metadataProblems));
    const committedMeanwhile = await repo.verify({ expectedSnapshots: answers([a.snapshotId], [a.snapshotId, b.snapshotId]) });
    assert.equal(committedMeanwhile.ok, true, JSON.stringify(committedMeanwhile.metadataProblems));
    assert.equal((await repo.verify()).ok, true, 'without records only what the target holds is checked');
  });
});
