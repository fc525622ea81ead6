import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listAll } from '../src/backend/backend.js';
import { freshPrefix, startTestS3, testBackend, type TestS3 } from '../src/backend/s3/s3.testing.js';
import { loadConfig } from '../src/config/config.js';
import { gcTarget, toolTargets, verifyTarget } from '../src/app/repo-tools.js';
import { mutateDisk, selectiveRestoreAndWait, sha256File, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';

/**
 * Issue 14 item 3: several backup targets in one service. A directory target (the default) and
 * an S3 target on a real s3rver, declared in LIFEBOAT_TARGETS; workloads choose one at create
 * time by `backup_target_types`; every snapshot's data, restore, delete, verify and GC stay on
 * the target it recorded.
 */
describe('several backup targets: a directory and S3 side by side (issue 14.3)', () => {
  let s3: TestS3;
  let h: Harness;
  let dir: string;
  let prefix: string;
  let targetsEnv: string;
  const vmOf = (name: string) => h.vms.find((v) => v.name === name)!;

  before(async () => {
    s3 = await startTestS3();
    prefix = freshPrefix(s3, 'targets');
    process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-targets-'));
    targetsEnv = `local=file://${dir};objects=s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(s3.endpoint)}${s3.region ? `&region=${s3.region}` : ''}`;
    h = await startHarness({ diskBytes: 2 * 1024 * 1024, env: { LIFEBOAT_TARGETS: targetsEnv } });
  });
  after(async () => {
    await h?.close();
    if (s3) {
      await testBackend(s3, { prefix }).cleanup();
      await s3.close();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Object keys under `folder/` on the S3 target and on the directory target. */
  const s3Keys = async (folder: string): Promise<string[]> => {
    const { backend } = testBackend(s3, { prefix });
    try {
      return (await listAll(backend, '')).filter((k) => k.startsWith(`${folder}/`));
    } finally {
      backend.destroy();
    }
  };
  const dirKeys = (folder: string): string[] => {
    try {
      return readdirSync(join(dir, folder), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
    } catch {
      return [];
    }
  };

  async function createWorkload(vm: string, backupTarget?: string): Promise<string> {
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: vm, instances: [{ 'instance-id': vmOf(vm).id }], ...(backupTarget ? { backup_target_types: backupTarget } : {}) } });
    assert.equal(r.status, 202, r.text);
    const wid = r.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
    return wid;
  }

  test('the admin lists both targets with type, default, status, capacity and usage; a member may not', async () => {
    const r = await h.api(h.admin, 'GET', '/backup_targets');
    assert.equal(r.status, 200, r.text);
    const list = r.json.backup_targets as Record<string, unknown>[];
    assert.deepEqual(
      list.map((t) => [t.name, t.type, t.is_default, t.status]),
      [
        ['local', 'nfs', 1, 'available'],
        ['objects', 's3', 0, 'available'],
      ],
    );
    const local = list[0]!;
    assert.equal(local.filesystem_export, dir);
    assert.ok(typeof local.capacity === 'number' && local.capacity > 0, 'a directory has the size of its file system');
    assert.equal(list[1]!.capacity, null, 'a bucket has no size');
    assert.equal(list[1]!.s3_bucket, s3.bucket);
    assert.deepEqual((list[1]!.backup_target_types as { name: string }[]).map((x) => x.name), ['objects']);
    const types = await h.api(h.admin, 'GET', '/backup_target_types');
    assert.deepEqual(types.json.backup_target_types.map((t: { name: string }) => t.name), ['local', 'objects']);
    assert.equal((await h.api(h.alice, 'GET', '/backup_targets')).status, 403);
  });

  test('an unknown backup_target_types is 400 and creates nothing', async () => {
    const before = (await h.api(h.alice, 'GET', '/workloads')).json.workloads.length;
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'x', instances: [{ 'instance-id': vmOf('vm-a2').id }], backup_target_types: 'tape' } });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(r.json, { badRequest: { code: 400, message: 'Invalid backup_target_types: no backup target type named "tape"' } });
    const bad = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'x', instances: [{ 'instance-id': vmOf('vm-a2').id }], backup_target_types: 7 } });
    assert.equal(bad.status, 400);
    assert.equal((await h.api(h.alice, 'GET', '/workloads')).json.workloads.length, before);
  });

  test('snapshots go to their workload\'s target, restore byte-exact from it; usage, delete, verify and GC follow the target', async () => {
    const onDir = await createWorkload('vm-a1'); // no choice: the default (local)
    const onS3 = await createWorkload('vm-a3', 'objects');
    // The detail view names each workload's target (the default when none was chosen).
    const targetOf = async (wid: string) => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.backup_target_types;
    assert.deepEqual([await targetOf(onDir), await targetOf(onS3)], ['local', 'objects']);
    const dirDisk = vmOf('vm-a1').disks[0]!.path;
    const s3Disk = vmOf('vm-a3').disks[0]!.path;

    const a1 = await takeSnapshotAndWait(h, h.alice, onDir, true);
    assert.equal(a1.status, 'available', a1.error_msg);
    const packsOnDir = dirKeys('packs').length;
    assert.ok(packsOnDir > 0, 'the default workload stored packs in the directory');
    assert.deepEqual(await s3Keys('packs'), [], 'and nothing in the bucket');

    const truthFull = sha256File(s3Disk);
    const b1 = await takeSnapshotAndWait(h, h.alice, onS3, true);
    assert.equal(b1.status, 'available', b1.error_msg);
    mutateDisk(s3Disk, 4);
    const truthIncr = sha256File(s3Disk);
    const b2 = await takeSnapshotAndWait(h, h.alice, onS3, false);
    assert.equal(b2.status, 'available', b2.error_msg);
    assert.equal(b2.snapshot_type, 'incremental');
    assert.ok((await s3Keys('packs')).length > 0, 'the S3 workload stored packs in the bucket');
    assert.equal(dirKeys('packs').length, packsOnDir, 'and nothing more in the directory');
    assert.deepEqual((await s3Keys('manifests')).length > 0 && dirKeys('manifests').length > 0, true);
    const media = (s: Record<string, unknown>) => (s.metadata as { key: string; value: string }[]).find((m) => m.key === 'backup_media_target')?.value;
    // Each snapshot records its target (a tenant sees its kind; the location is redacted).
    assert.match(media(b2) ?? '', /^s3:/);
    assert.match(media(a1) ?? '', /^file:/);

    // Restores read the snapshot's own target.
    const restored = async (wid: string, sid: string, vm: string) => {
      const done = await selectiveRestoreAndWait(h, h.alice, wid, sid, vmOf(vm).id);
      assert.equal(done.status, 'available', done.error_msg);
      const inv = JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances as { id: string; disks: { path: string }[] }[];
      return sha256File(inv.find((i) => i.id === done.instances[0].id)!.disks[0]!.path);
    };
    assert.equal(await restored(onS3, b1.id, 'vm-a3'), truthFull);
    assert.equal(await restored(onS3, b2.id, 'vm-a3'), truthIncr);
    assert.equal(await restored(onDir, a1.id, 'vm-a1'), sha256File(dirDisk));

    // Usage per target: what the snapshots recorded there store.
    const used = async () => Object.fromEntries((await h.api(h.admin, 'GET', '/backup_targets')).json.backup_targets.map((t: { name: string; used: number }) => [t.name, t.used]));
    const sizes = async (ids: string[]) => (await Promise.all(ids.map(async (id) => (await h.api(h.alice, 'GET', `/snapshots/${id}`)).json.snapshot.size as number))).reduce((x, y) => x + y, 0);
    assert.deepEqual(await used(), { local: await sizes([a1.id]), objects: await sizes([b1.id, b2.id]) });

    // A delete removes the manifest from the snapshot's target.
    const manifestsOnS3 = (await s3Keys('manifests')).length;
    assert.equal((await h.api(h.alice, 'DELETE', `/snapshots/${b1.id}`)).status, 200);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${b1.id}`)).status === 404, 20_000, 'snapshot deleted');
    await waitFor(async () => (await s3Keys('manifests')).length < manifestsOnS3, 10_000, 'manifest gone from the bucket');
    assert.ok(dirKeys('manifests').length > 0, 'the directory target keeps its snapshot');
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${onS3}`)).json.workload.status === 'available', 20_000, 'workload available');

    // The operator tools run per target: each verifies and collects only its own snapshots.
    const config = loadConfig({ LIFEBOAT_HOME: h.home, LIFEBOAT_TARGETS: targetsEnv }, h.home);
    assert.deepEqual(toolTargets(config, undefined).map((t) => t.name), ['local', 'objects']);
    assert.throws(() => toolTargets(config, 'tape'), /no backup target named "tape"; configured: local, objects/);
    for (const t of config.targets) {
      const v = await verifyTarget(config, { markBad: false }, t);
      assert.equal(v.ok, true, `${t.name}: ${JSON.stringify(v.problems.slice(0, 2))}`);
      assert.equal(v.snapshots, 1, `${t.name}: one snapshot of its own left`);
      const gc = await gcTarget(config, { dryRun: false }, t);
      assert.equal(gc.swept, true, `${t.name}: ${gc.reason}`);
      assert.equal(gc.missingChunks.length, 0);
    }
    // After GC the incremental (which now holds everything of the deleted full it shares) still restores.
    assert.equal(await restored(onS3, b2.id, 'vm-a3'), truthIncr);
  });
});
