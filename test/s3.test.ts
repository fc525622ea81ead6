import assert from 'node:assert/strict';
import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listAll } from '../src/backend/backend.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../src/backend/s3/s3.faultproxy.js';
import { freshPrefix, startTestS3, testBackend, type TestS3 } from '../src/backend/s3/s3.testing.js';
import { loadConfig } from '../src/config/config.js';
import { gcTarget, verifyTarget } from '../src/app/repo-tools.js';
import { mutateDisk, selectiveRestoreAndWait, sha256File, snapshotEnded, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';

/**
 * Issue 14 items 1–2 through the real service: LIFEBOAT_TARGET=s3://… on a real S3 server
 * (s3rver by default, LIFEBOAT_TEST_S3 when set). Full and incremental snapshots land in the
 * bucket (nothing on local disk), restore byte-exact from it, also when the wire between the
 * service and S3 breaks requests (a fault proxy sits in between), and an object damaged on the
 * server is caught by the repository's own hashes — never restored as wrong bytes.
 */
interface InvInstance {
  id: string;
  disks: { device: string; path: string }[];
}

describe('S3 backup target end to end (issue 14.1–2)', () => {
  let s3: TestS3;
  let h: Harness;
  let prefix: string;
  let target: string;
  let proxy: FaultProxy;
  /** What the proxy between the service and S3 does to request n (all pass unless a test says). */
  let faults: (n: number) => Fault = () => 'pass';
  let wid: string;
  let vmId: string;
  let diskPath: string;

  before(async () => {
    s3 = await startTestS3();
    prefix = freshPrefix(s3, 'e2e');
    // The service takes its credentials from the standard AWS variables (this process's env).
    process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
    proxy = await startFaultProxy(s3.endpoint, (_m, _p, n) => faults(n));
    target = `s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(proxy.endpoint)}${s3.region ? `&region=${s3.region}` : ''}`;
    h = await startHarness({ diskBytes: 3 * 1024 * 1024, env: { LIFEBOAT_TARGET: target } });
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    vmId = vm.id;
    diskPath = vm.disks[0]!.path;
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 's3', instances: [{ 'instance-id': vmId }] } });
    assert.equal(r.status, 202, r.text);
    wid = r.json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
  });
  after(async () => {
    await h?.close();
    await proxy?.close();
    if (s3) {
      const { cleanup } = testBackend(s3, { prefix });
      await cleanup();
      await s3.close();
    }
  });

  const getSnap = async (sid: string) => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot;
  const inventory = (): InvInstance[] => JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances;

  const snapshot = async (full: boolean): Promise<string> => (await takeSnapshotAndWait(h, h.alice, wid, full, 60_000)).id as string;

  /** Selective restore into a new instance; returns the restore record and the new disk's hash. */
  async function restore(sid: string): Promise<{ status: string; error_msg: string | null; sha: string | null }> {
    const done = await selectiveRestoreAndWait(h, h.alice, wid, sid, vmId, 60_000);
    const inst = done.status === 'available' ? inventory().find((i) => i.id === done.instances[0].id) : undefined;
    return { status: done.status, error_msg: done.error_msg, sha: inst ? sha256File(inst.disks[0]!.path) : null };
  }

  /** The pack objects under our prefix, as the S3 server lists them. */
  const packKeys = async (): Promise<string[]> => {
    const { backend } = testBackend(s3, { prefix });
    try {
      return (await listAll(backend, '')).filter((k) => k.startsWith('packs/'));
    } finally {
      backend.destroy();
    }
  };

  test('a full and an incremental snapshot go to S3 and both restore byte-exact', async () => {
    const truth1 = sha256File(diskPath);
    const s1 = await snapshot(true);
    const afterFull = await packKeys();
    assert.ok(afterFull.length > 0, 'the full snapshot stored packs in the bucket');
    assert.equal((await getSnap(s1)).warning_msg, null);

    mutateDisk(diskPath, 5);
    const truth2 = sha256File(diskPath);
    assert.notEqual(truth2, truth1);
    const s2 = await snapshot(false);
    const afterIncr = await packKeys();
    assert.ok(afterIncr.length > afterFull.length, 'the incremental stored only new packs');
    assert.ok(afterFull.every((k) => afterIncr.includes(k)));

    assert.equal((await restore(s1)).sha, truth1);
    assert.equal((await restore(s2)).sha, truth2);
    // Nothing went to a local target directory.
    assert.throws(() => statSync(join(h.home, 'target')), /ENOENT/);
  });

  test('over a flaky S3 (503s, resets, cut answers on every 4th request) a snapshot succeeds and restores byte-exact', async () => {
    const cycle: Fault[] = ['503', 'reset', 'truncate'];
    faults = (n) => (n % 4 === 0 ? cycle[(n / 4) % 3]! : 'pass');
    try {
      mutateDisk(diskPath, 4);
      const truth = sha256File(diskPath);
      const sid = await snapshot(true);
      assert.equal((await restore(sid)).sha, truth);
      assert.ok(proxy.counts['503'] > 0 && proxy.counts.reset > 0 && proxy.counts.truncate > 0, JSON.stringify(proxy.counts));
    } finally {
      faults = () => 'pass';
    }
  });

  test('repo verify (reading every chunk) passes and GC runs over S3, listing and sweeping', async () => {
    const config = loadConfig({ LIFEBOAT_HOME: h.home, LIFEBOAT_TARGET: target }, h.home);
    const v = await verifyTarget(config, { markBad: false, readDataSubset: 1 });
    assert.equal(v.ok, true, JSON.stringify(v.problems.slice(0, 2)));
    const packsBefore = await packKeys();
    const gc = await gcTarget(config, { dryRun: false });
    assert.equal(gc.reason, null);
    assert.equal(gc.swept, true);
    assert.equal(gc.missingChunks.length, 0);
    assert.deepEqual((await packKeys()).sort(), packsBefore.sort(), 'every pack is referenced: GC deletes none');
  });

  /** A full snapshot that writes a pack only it references, and s3rver's file of that pack. */
  async function snapshotWithOwnPack(seed: number): Promise<{ sid: string; file: string }> {
    mutateDisk(diskPath, seed); // new chunks: the snapshot writes a pack only it references
    const before = new Set(await packKeys());
    const sid = await snapshot(true);
    const made = (await packKeys()).filter((k) => !before.has(k));
    assert.ok(made.length > 0);
    // s3rver keeps object `a/b/c` as the file `<dir>/<bucket>/a/b/c._S3rver_object`.
    const file = join(s3.directory!, s3.bucket, ...`${prefix}/${made[0]}`.split('/').slice(0, -1), `${made[0]!.split('/').pop()}._S3rver_object`);
    return { sid, file };
  }

  test('a pack damaged on the S3 server fails the restore (own hash check), never wrong bytes', async (t) => {
    if (s3.directory === null) return t.skip('damages s3rver files on disk; not possible on an external S3');
    const { sid, file } = await snapshotWithOwnPack(3);
    const bytes = readFileSync(file);
    bytes[10] = bytes[10]! ^ 0xff; // inside the first stored chunk; length and ETag metadata unchanged
    writeFileSync(file, bytes);
    const r = await restore(sid);
    assert.equal(r.status, 'error');
    assert.match(r.error_msg ?? '', /corrupt/);
    assert.doesNotMatch(r.error_msg ?? '', /S3RVER|127\.0\.0\.1|_S3rver_/);
    assert.match((await getSnap(sid)).warning_msg ?? '', /damaged/i, 'the failed restore marked the snapshot');
  });

  test('a pack truncated on the S3 server fails the restore, never short or wrong bytes', async (t) => {
    if (s3.directory === null) return t.skip('truncates s3rver files on disk; not possible on an external S3');
    const { sid, file } = await snapshotWithOwnPack(5);
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const r = await restore(sid);
    assert.equal(r.status, 'error');
    assert.equal(r.sha, null);
    assert.match(r.error_msg ?? '', /no intact copy/); // the truncated copy counts as lost
    assert.doesNotMatch(r.error_msg ?? '', /S3RVER|127\.0\.0\.1|_S3rver_/);
  });

  test('an S3 answering 503 to everything: after the retries the snapshot ends error naming the cause, the workload is unlocked, /readyz says so; then a snapshot succeeds', async () => {
    mutateDisk(diskPath, 4);
    const truth = sha256File(diskPath);
    faults = () => '503';
    try {
      const r = await h.api(h.alice, 'POST', `/workloads/${wid}?full=1`);
      assert.equal(r.status, 200, r.text);
      const sid = r.json.snapshot.id as string;
      const failed = await snapshotEnded(h, h.alice, sid, 120_000);
      assert.equal(failed.status, 'error');
      assert.match(failed.error_msg, /^Snapshot failed: s3 backend: \w+ \S+ failed \((SlowDown, HTTP 503|HTTP 503 Service Unavailable)\)$/);
      assert.doesNotMatch(failed.error_msg, /127\.0\.0\.1|S3RVER/);
      await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
      const ready = await fetch(`${h.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.deepEqual(await ready.json(), { status: 'not ready', checks: { store: 'ok', target: 'unreachable' } });
    } finally {
      faults = () => 'pass';
    }
    assert.equal((await fetch(`${h.url}/readyz`)).status, 200);
    assert.equal((await restore(await snapshot(true))).sha, truth);
  });
});
