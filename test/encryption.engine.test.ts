import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { ManualClock } from '../src/lib/clock.js';
import { CorruptMetadataError, EncryptionKeyError } from '../src/lib/errors.js';
import { sha256 } from '../src/repository/chunk-codec.js';
import type { Manifest } from '../src/repository/manifest.format.js';
import { newHexId, newId } from '../src/lib/ids.js';
import { Repository } from '../src/repository/repository.js';
import { FileKeySource } from '../src/repository/key-source.js';
import { FLAG_SEALED } from '../src/repository/chunk-codec.js';
import { SEALED_FEATURE } from '../src/repository/format.js';
import { CONFIG_KEY, keys } from '../src/repository/keys.js';
import { decodePackIndex } from '../src/repository/pack-index.format.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink, MemDiskSource } from '../src/datamover/testing.js';

// Encrypted workloads in the repository (README "Encrypted workloads"): every object of an
// encrypted scope is sealed, restores are byte-exact through the ordinary read path, dedup stays
// inside the scope, a wrong or missing key-encryption key fails naming the workload, and verify
// checks the GCM tags (with the key) — a plain scope's objects stay exactly as before.

const CS = 16 * 1024;
const pool = new ChunkPool(1);
const dir = mkdtempSync(join(tmpdir(), 'lb-enc-'));
after(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});
const MARKER = Buffer.from(`ENCRYPTION-MARKER-${randomBytes(8).toString('hex')}`);

/** Random (stored raw: the marker would be visible in a plain pack), text and zero regions, each with the marker. */
function disk(size: number): Buffer {
  const d = Buffer.alloc(size);
  for (let pos = 0; pos + 3 * CS <= size; pos += 4 * CS) {
    randomBytes(CS).copy(d, pos);
    d.write(`compressible text ${pos} `.repeat(CS / 16).slice(0, CS), pos + CS);
    MARKER.copy(d, pos + 100);
    MARKER.copy(d, pos + CS + 100);
  }
  return d;
}

const opts = (keySource: FileKeySource | null) => ({ clock: new ManualClock(), keySource });

async function backup(repo: Repository, scope: string, data: Buffer, encrypted: boolean, base: string | null = null): Promise<string> {
  const snapshotId = newId();
  const w = await repo.beginSnapshot({ projectId: scope, snapshotId, encryptedFor: encrypted ? { workloadId: scope, projectId: newHexId() } : null });
  const baseIndex = base ? await repo.findDiskIndex(base, 'vda') : null;
  await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool, base: baseIndex, meta: null });
  await w.commit({ workload: { name: 'secret-workload-name' } });
  return snapshotId;
}

async function restored(repo: Repository, snapshotId: string, size: number): Promise<Buffer> {
  const sink = new MemDiskSink(size);
  await restoreDisk({ repo, snapshotId, diskKey: 'vda', sink, pool });
  return sink.data;
}

function objectsOf(b: MemBackend, pred: (key: string) => boolean): [string, Buffer][] {
  return [...b.objects].filter(([k]) => pred(k));
}

describe('encrypted workloads in the repository', () => {
  const keyFile = join(dir, 'encryption.key');
  const b = new MemBackend();
  const wid = newId();
  const project = newHexId();
  const data = disk(24 * CS);
  let repo: Repository;
  let encSnap = '';
  let plainSnap = '';

  test('the key file is made on first use (0600); full + incremental restore byte-exact; the marker is on the target only in the plain scope', async () => {
    repo = await Repository.init(b, { chunkSize: CS }, opts(new FileKeySource(keyFile)));
    encSnap = await backup(repo, wid, data, true);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const changed = Buffer.from(data);
    randomBytes(CS).copy(changed, 4 * CS);
    MARKER.copy(changed, 4 * CS + 7);
    const inc = await backup(repo, wid, changed, true, encSnap);
    plainSnap = await backup(repo, project, data, false);
    assert.deepEqual(await restored(repo, encSnap, data.length), data);
    assert.deepEqual(await restored(repo, inc, changed.length), changed);
    assert.deepEqual(await restored(repo, plainSnap, data.length), data);

    const encrypted = objectsOf(b, (k) => k.includes(wid) || k.includes(encSnap) || k.includes(inc));
    assert.ok(encrypted.some(([k]) => k.startsWith('packs/')) && encrypted.some(([k]) => k.startsWith('manifests/')) && encrypted.some(([k]) => k.startsWith('disks/')) && encrypted.some(([k]) => k.startsWith('index/')));
    for (const [k, v] of b.objects) {
      const plainScope = k.includes(project) || k.includes(plainSnap);
      if (!plainScope) {
        assert.equal(v.indexOf(MARKER), -1, `${k} holds the marker`);
        assert.equal(v.indexOf('secret-workload-name'), -1, `${k} holds the workload name`);
      }
    }
    // The test can fail: the same data of the plain workload is visible on the target.
    assert.ok(objectsOf(b, (k) => k.startsWith(`packs/${project}/`)).some(([, v]) => v.indexOf(MARKER) >= 0), 'the plain pack shows the marker');
    assert.ok(objectsOf(b, (k) => k === keys.manifest(plainSnap)).some(([, v]) => v.indexOf('secret-workload-name') >= 0));
    const config = JSON.parse(b.objects.get(CONFIG_KEY)!.toString('utf8')) as { features: string[] };
    assert.deepEqual(config.features, [SEALED_FEATURE]);
  });

  test('chunks of the encrypted scope carry the sealed flag; dedup stays inside the key scope', async () => {
    const [idxKey] = objectsOf(b, (k) => k.startsWith(`index/${wid}/`))[0]!;
    const { entries } = decodePackIndex(idxKey, b.objects.get(idxKey)!);
    assert.ok(entries.length > 0 && entries.every((e) => (e.flags & FLAG_SEALED) !== 0));
    const plainIdx = objectsOf(b, (k) => k.startsWith(`index/${project}/`));
    const plainEntries = plainIdx.flatMap(([k, v]) => decodePackIndex(k, v).entries);
    assert.ok(plainEntries.every((e) => (e.flags & FLAG_SEALED) === 0));
    const encIds = new Set(entries.map((e) => e.id.toString('hex')));
    assert.ok(plainEntries.every((e) => !encIds.has(e.id.toString('hex'))), 'the same data has other chunk ids in the encrypted scope');
  });

  test('a wrong or missing key-encryption key fails naming the workload, never with data', async () => {
    const otherKey = join(dir, 'other.key');
    writeFileSync(otherKey, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    const wrong = await Repository.open(b, opts(new FileKeySource(otherKey)));
    await assert.rejects(restored(wrong, encSnap, data.length), (e: unknown) => e instanceof EncryptionKeyError && e.message.includes(`Workload ${wid} is encrypted`) && /wrong key file/.test(e.message));
    const missing = await Repository.open(b, opts(new FileKeySource(join(dir, 'absent.key'))));
    await assert.rejects(restored(missing, encSnap, data.length), (e: unknown) => e instanceof EncryptionKeyError && e.message.includes(`Workload ${wid}`) && /missing/.test(e.message));
    // The plain workload is not affected by the encrypted one's key.
    assert.deepEqual(await restored(wrong, plainSnap, data.length), data);
  });

  test('verify without the key checks the structure of the encrypted scope and says its contents were not checked', async () => {
    const none = await Repository.open(b, opts(null));
    const v = await none.verify({ markBad: false });
    assert.equal(v.ok, true, JSON.stringify(v.metadataProblems));
    assert.equal(v.encryptedUnchecked.length, 1);
    const u = v.encryptedUnchecked[0]!;
    assert.equal(u.scope, wid);
    assert.match(u.reason, /^contents not checked: key not available \(Workload .* no key-encryption key source/);
    assert.equal(u.snapshots.length, 2);
    assert.ok(u.packs > 0 && u.sealedObjects >= 2 + 2 + 1, JSON.stringify(u));
    assert.ok(!v.snapshotIds.some((id) => u.snapshots.includes(id)), 'the encrypted snapshots are not reported as verified');
    assert.ok(v.snapshotIds.includes(plainSnap) && v.chunksChecked > 0, 'the plain scope is verified as always');
    // Structure damage is found without the key: a truncated pack, a plain disk index in the scope.
    const [packKey, pack] = objectsOf(b, (k) => k.startsWith(`packs/${wid}/`))[0]!;
    const [diskKey, disk] = objectsOf(b, (k) => k.startsWith(`disks/${encSnap}/`))[0]!;
    try {
      b.objects.set(packKey, pack.subarray(0, pack.length - 10));
      b.objects.set(diskKey, Buffer.from('LBDIDX01 not sealed'));
      const bad = await none.verify({ markBad: false });
      assert.equal(bad.ok, false);
      assert.ok(bad.metadataProblems.some((p) => p.key === packKey), JSON.stringify(bad.metadataProblems));
      assert.ok(bad.metadataProblems.some((p) => p.snapshotId === encSnap && /is not sealed, but it belongs to encrypted workload/.test(p.message)), JSON.stringify(bad.metadataProblems));
      assert.ok(bad.failedSnapshots.includes(encSnap));
    } finally {
      b.objects.set(packKey, pack);
      b.objects.set(diskKey, disk);
    }
  });

  test('verify checks the GCM tags: whole with the key, a flipped ciphertext byte is found', async () => {
    const ok = await repo.verify();
    assert.equal(ok.ok, true, JSON.stringify(ok.problems));
    assert.ok(ok.chunksChecked > 0);
    const [packKey, pack] = objectsOf(b, (k) => k.startsWith(`packs/${wid}/`))[0]!;
    const flipped = Buffer.from(pack);
    flipped[40] = flipped[40]! ^ 1;
    b.objects.set(packKey, flipped);
    const bad = await repo.verify();
    assert.equal(bad.ok, false);
    assert.ok(bad.problems.some((p) => /authentication/.test(JSON.stringify(p))), JSON.stringify(bad.problems));
  });

  test('a plaintext manifest placed in an encrypted scope is refused, never trusted', async () => {
    const key = keys.manifest(encSnap);
    const sealed = b.objects.get(key)!;
    const real = await repo.readManifest(encSnap);
    try {
      // What an attacker with write access to the target (and no key) can write: a well-formed plain manifest.
      const forge = (m: Manifest) => {
        const checksum = sha256(Buffer.from(JSON.stringify(m), 'utf8')).toString('hex');
        b.objects.set(key, Buffer.from(JSON.stringify({ ...m, checksum }, null, 1), 'utf8'));
      };
      const refused = (e: unknown) => e instanceof CorruptMetadataError && /is not sealed, but it belongs to encrypted workload/.test(e.message) && e.message.includes(key);
      forge(real);
      await assert.rejects(repo.readManifest(encSnap), refused);
      await assert.rejects(restored(repo, encSnap, data.length), refused);
      // A fresh repository (no scope opened yet) finds out from the target that the scope is encrypted.
      await assert.rejects((await Repository.open(b, opts(null))).readManifest(encSnap), refused);
      const verdict = await repo.verify({ markBad: false });
      assert.ok(verdict.metadataProblems.some((p) => p.key === key && /not sealed/.test(p.message)), JSON.stringify(verdict.metadataProblems));
      // Pointed at a plain scope, it is still refused when it says the workload is encrypted...
      forge({ ...real, projectId: project, meta: { workload: { name: 'x', encryption: true } } });
      await assert.rejects(repo.readManifest(encSnap), refused);
      // ...and when the caller knows the snapshot is the encrypted workload's (restore jobs do).
      forge({ ...real, projectId: project, meta: { workload: { name: 'x' } } });
      await assert.rejects(repo.readManifest(encSnap, { encryptedScope: wid }), (e: unknown) => e instanceof CorruptMetadataError && e.message.includes(`encrypted workload ${wid}`));
    } finally {
      b.objects.set(key, sealed);
    }
    // The sealed original is accepted again (the pack damage of the test before makes a full restore fail here).
    assert.equal((await repo.readManifest(encSnap, { encryptedScope: wid })).projectId, wid);
  });
});

describe('key sources: a Barbican secret as the key-encryption key (reader below the repository)', () => {
  const b = new MemBackend();
  const wid = newId();
  const secretUuid = '6a0f7d6e-8c1b-4f57-9d1e-2b9d4c1e7a10';
  let payload: Buffer | Error = randomBytes(32);
  const reads: string[] = [];
  const reader = async (uuid: string) => {
    reads.push(uuid);
    if (payload instanceof Error) throw payload;
    return payload;
  };
  const data = disk(8 * CS);
  const keyFile = join(dir, 'barbican-default.key');

  test('a workload naming a secret gets its data key wrapped by the secret, the file stays the default; each snapshot and restore reads the secret again', async () => {
    const repo = await Repository.init(b, { chunkSize: CS }, { ...opts(new FileKeySource(keyFile)), secretKeys: reader });
    const snapshotId = newId();
    const w = await repo.beginSnapshot({ projectId: wid, snapshotId, encryptedFor: { workloadId: wid, projectId: newHexId(), secretUuid } });
    await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool, base: null, meta: null });
    await w.commit({ workload: { name: 'w', encryption: true } });
    const rec = JSON.parse(b.objects.get(keys.dataKey(wid))!.toString('utf8')) as { kek: { source: string; ref: string } };
    assert.deepEqual({ source: rec.kek.source, ref: rec.kek.ref }, { source: 'barbican', ref: secretUuid });
    assert.throws(() => statSync(keyFile), /ENOENT/, 'the key file was not used');
    const before = reads.length;
    const sink = new MemDiskSink(data.length);
    await repo.readManifest(snapshotId, { encryptedScope: wid });
    await restoreDisk({ repo, snapshotId, diskKey: 'vda', sink, pool });
    assert.deepEqual(sink.data, data);
    assert.equal(reads.length, before + 1, 'the restore re-read the secret once');

    // Revoked (Barbican says so) → the next restore fails naming workload and secret, and the key is forgotten.
    payload = new Error(`Barbican secret ${secretUuid} is not readable by Lifeboat's service user u1`);
    const named = (e: unknown) => e instanceof EncryptionKeyError && e.message.includes(`Workload ${wid} is encrypted`) && e.message.includes(`Barbican secret ${secretUuid}`);
    await assert.rejects(repo.readManifest(snapshotId, { encryptedScope: wid }), named);
    await assert.rejects(restoreDisk({ repo, snapshotId, diskKey: 'vda', sink: new MemDiskSink(data.length), pool }), (e: unknown) => e instanceof Error && /cannot be opened|not open/.test(e.message));
    // The payload replaced by another key → refused by fingerprint, never garbage.
    payload = randomBytes(32);
    await assert.rejects(repo.readManifest(snapshotId, { encryptedScope: wid }), (e: unknown) => named(e) && /was changed/.test((e as Error).message));
    payload = randomBytes(16);
    await assert.rejects(repo.readManifest(snapshotId, { encryptedScope: wid }), (e: unknown) => named(e) && /not a 256-bit key/.test((e as Error).message));
    // A node that does not read Barbican says so.
    const noBarbican = await Repository.open(b, opts(new FileKeySource(keyFile)));
    await assert.rejects(noBarbican.readManifest(snapshotId, { encryptedScope: wid }), (e: unknown) => named(e) && /does not read Barbican/.test((e as Error).message));
  });
});
