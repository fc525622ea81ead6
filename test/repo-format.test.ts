import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { ManualClock } from '../src/lib/clock.js';
import { newId } from '../src/lib/ids.js';
import { CorruptMetadataError } from '../src/lib/errors.js';
import { Repository } from '../src/repository/repository.js';
import { ChunkCodec, chunkId, FLAG_SEALED, newChunkHasher } from '../src/repository/chunk-codec.js';
import { SEALED_MAGIC } from '../src/repository/envelope.js';
import { CURRENT_FORMAT_VERSION, UnsupportedFormatError } from '../src/repository/format.js';
import { CONFIG_KEY, keys } from '../src/repository/keys.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink, MemDiskSource } from '../src/datamover/testing.js';

// The repository format version (src/repository/format.ts, README "Format version"): new targets
// are written at the current version, pre-version (v1) targets are still read, and anything newer
// or unknown is refused with the versions named, before any other object is read.

const CS = 16 * 1024;
const pool = new ChunkPool(1);
after(() => pool.close());
const PROJECT = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';

/** Text, random and zero regions: compressed, raw and hole chunks all occur. */
function disk(size: number): Buffer {
  const d = Buffer.alloc(size);
  for (let pos = 0, i = 0; pos < size; pos += 3 * CS, i++) {
    d.write(`format test ${i} `.repeat(CS / 16).slice(0, CS), pos);
    for (let k = 0; k < CS && pos + CS + k < size; k += 32) createHash('sha256').update(`${i}/${k}`).digest().copy(d, pos + CS + k);
  }
  return d;
}

async function backupOnce(repo: Repository, data: Buffer): Promise<string> {
  const snapshotId = newId();
  const w = await repo.beginSnapshot({ projectId: PROJECT, snapshotId });
  await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool, base: null, meta: null });
  await w.commit(null);
  return snapshotId;
}

async function restored(repo: Repository, snapshotId: string, size: number): Promise<Buffer> {
  const sink = new MemDiskSink(size);
  await restoreDisk({ repo, snapshotId, diskKey: 'vda', sink, pool });
  return sink.data;
}

function config(b: MemBackend): Record<string, unknown> {
  return JSON.parse(b.objects.get(CONFIG_KEY)!.toString('utf8')) as Record<string, unknown>;
}

function setConfig(b: MemBackend, c: Record<string, unknown>): void {
  b.objects.set(CONFIG_KEY, Buffer.from(JSON.stringify(c)));
}

const opts = { clock: new ManualClock() };

describe('repository format version', () => {
  test('a new target is written at the current version, naming its chunk id hash and features', async () => {
    const b = new MemBackend();
    const repo = await Repository.init(b, { chunkSize: CS }, opts);
    const c = config(b);
    assert.equal(c.format, `lifeboat-repo/v${CURRENT_FORMAT_VERSION}`);
    assert.equal(c.chunkIdHash, 'blake3-keyed');
    assert.deepEqual(c.features, []);
    assert.deepEqual(repo.format, { version: CURRENT_FORMAT_VERSION, chunkIdHash: 'blake3-keyed', features: [] });
  });

  test('a target written before the version was explicit (v1) is still read and restores byte-exact', async () => {
    const b = new MemBackend();
    const data = disk(10 * CS + 123);
    const sid = await backupOnce(await Repository.init(b, { chunkSize: CS, chunkIdHash: 'hmac-sha256' }, opts), data);
    // Exactly the config a pre-version Lifeboat wrote: no chunkIdHash, no features.
    const { chunkIdHash: _h, features: _f, ...old } = config(b);
    setConfig(b, { ...old, format: 'lifeboat-repo/v1' });
    const repo = await Repository.open(b, opts);
    assert.equal(repo.format.version, 1);
    assert.equal(repo.format.chunkIdHash, 'hmac-sha256');
    assert.ok((await restored(repo, sid, data.length)).equals(data));
    const again = await backupOnce(repo, data); // and written to: the objects are the same in v1 and v2
    assert.ok((await restored(repo, again, data.length)).equals(data));
    assert.equal((await repo.verify()).ok, true);
  });

  for (const hash of ['blake3-keyed', 'hmac-sha256'] as const) {
    test(`a ${hash} target backs up, dedups, restores byte-exact and verifies; its ids are ${hash} ids`, async () => {
      const b = new MemBackend();
      const repo = await Repository.init(b, { chunkSize: CS, chunkIdHash: hash }, opts);
      assert.equal(config(b).chunkIdHash, hash);
      const data = disk(12 * CS + 5);
      const s1 = await backupOnce(repo, data);
      const packs = () => [...b.objects.keys()].filter((k) => k.startsWith('packs/')).length;
      const before = packs();
      const s2 = await backupOnce(repo, data);
      assert.equal(packs(), before, 'the second backup of the same data stores nothing new');
      for (const s of [s1, s2]) assert.ok((await restored(repo, s, data.length)).equals(data));
      const di = await repo.findDiskIndex(s1, 'vda');
      assert.deepEqual(di!.ids.subarray(0, 32), chunkId(repo.projectKey(PROJECT), data.subarray(0, CS)));
      assert.equal((await repo.verify()).ok, true);
    });
  }

  test('a newer or unknown version, chunk id hash or feature is refused with the versions named', async () => {
    const b = new MemBackend();
    await Repository.init(b, { chunkSize: CS }, opts);
    const good = config(b);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...good, format: 'lifeboat-repo/v3' }, /format v3, newer than this Lifeboat reads \(v1–v2\)/],
      [{ ...good, format: 'lifeboat-repo/v0' }, /format v0 is no longer read \(this Lifeboat reads v1–v2\)/],
      [{ ...good, format: 'restic' }, /not a Lifeboat repository this version knows \(format "restic"; this Lifeboat reads lifeboat-repo\/v1 to lifeboat-repo\/v2\)/],
      [{ ...good, format: undefined }, /format undefined/],
      [{ ...good, chunkIdHash: 'sha1' }, /chunk ids use "sha1", which this Lifeboat does not know \(it knows hmac-sha256, blake3-keyed\)/],
      [{ ...good, chunkIdHash: undefined }, /chunk ids use undefined/],
      [{ ...good, features: ['zstd-dict', 'encryption-v9'] }, /features this Lifeboat lacks \(zstd-dict, encryption-v9; format v2\)/],
    ];
    for (const [c, message] of cases) {
      setConfig(b, c);
      for (const open of [() => Repository.open(b, opts), () => Repository.init(b, {}, opts)]) {
        await assert.rejects(open(), (e: unknown) => e instanceof UnsupportedFormatError && e.kind === 'corrupt-metadata' && message.test(e.message), `${JSON.stringify(c)}`);
      }
    }
    setConfig(b, { ...good, features: 'none' });
    await assert.rejects(Repository.open(b, opts), /repository config is damaged \(features\)/);
  });

  test('a damaged sealed (encrypted) object and a sealed chunk without its data key are refused, never misread; so are unknown chunk flags', async () => {
    const b = new MemBackend();
    const repo = await Repository.init(b, { chunkSize: CS }, opts);
    const sid = await backupOnce(repo, disk(4 * CS));
    const key = keys.manifest(sid);
    b.objects.set(key, Buffer.concat([Buffer.from(SEALED_MAGIC, 'latin1'), Buffer.alloc(40, 7)]));
    await assert.rejects(repo.readManifest(sid), (e: unknown) => e instanceof CorruptMetadataError && e.message === `${key} has a bad sealed header length`);

    const codec = new ChunkCodec();
    const hasher = newChunkHasher(repo.projectKey(PROJECT));
    const raw = Buffer.alloc(100, 1);
    assert.equal(codec.decodeVerify(raw, FLAG_SEALED, Buffer.alloc(100), hasher, hasher.id(raw)), 'chunk is encrypted and its data key is not available');
    assert.equal(codec.decodeVerify(raw, 8, Buffer.alloc(100), hasher, hasher.id(raw)), 'unknown stored-form flags 0x8');
    assert.equal(codec.decodeVerify(raw, 0, Buffer.alloc(100), hasher, hasher.id(raw)), null);
  });
});
