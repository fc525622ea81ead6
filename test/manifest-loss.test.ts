import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/config.js';
import { verifyTarget } from '../src/app/repo-tools.js';
import { restoredDiskSha, selectiveRestoreAndWait, sha256File, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';

/**
 * Reliability item B8, its manifest half (shared/spec/reliability.md §2; the chunk half is in
 * integrity.api.test.ts): the manifest object of an `available` snapshot is deleted from the
 * target. Expected: list and show still work; `repo verify` (the admin API's job and the
 * command) reports it missing and the snapshot says so (warning_msg); a restore of it fails
 * cleanly, naming the cause, making no instance; the other snapshots restore byte-exact; the
 * next (incremental) snapshot, whose base is the one without a manifest, reads every disk in
 * full and restores byte-exact.
 */
describe('a deleted snapshot manifest (reliability B8)', () => {
  let h: Harness;
  let wid = '';
  let vmId = '';
  let diskPath = '';
  const snap = async (sid: string) => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot;
  const inventory = (): { id: string; name: string; disks: { path: string }[] }[] => JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances;

  before(async () => {
    h = await startHarness({ diskBytes: 2 * 1024 * 1024 });
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    vmId = vm.id;
    diskPath = vm.disks[0]!.path;
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'manifest-loss', instances: [{ 'instance-id': vmId }] } });
    assert.equal(r.status, 202, r.text);
    wid = r.json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
  });
  after(() => h.close());

  test('list and show work, verify reports it, its restore fails cleanly, the others restore, the next snapshot succeeds', async () => {
    const truth = sha256File(diskPath);
    const s1 = (await takeSnapshotAndWait(h, h.alice, wid, true, 30_000)).id as string;
    const s2 = (await takeSnapshotAndWait(h, h.alice, wid, false, 30_000)).id as string;
    const manifest = join(h.home, 'target', 'manifests', `${s2}.json`);
    assert.ok(existsSync(manifest));
    rmSync(manifest);

    const list = await h.api(h.alice, 'GET', `/snapshots?workload_id=${wid}`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.snapshots.map((s: { id: string }) => s.id).sort(), [s1, s2].sort());
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${s2}`)).status, 200);

    const started = await h.api(h.admin, 'POST', '/repo_verifications', { repo_verification: { target: 'default' } });
    assert.equal(started.status, 202, started.text);
    const run = await waitFor(async () => {
      const x = (await h.api(h.admin, 'GET', `/repo_verifications/${started.json.repo_verification.id}`)).json.repo_verification;
      return ['queued', 'running'].includes(x.status) ? null : x;
    }, 30_000, 'verify run (API)');
    assert.equal(run.status, 'damaged', JSON.stringify(run));
    assert.deepEqual(run.failed_snapshots, [s2]);
    assert.ok(run.problems.some((l: string) => l.includes(`manifests/${s2}.json`) && /manifest missing/.test(l)), JSON.stringify(run.problems));

    const v = await verifyTarget(loadConfig({ LIFEBOAT_HOME: h.home }, h.home), { markBad: true });
    assert.equal(v.ok, false);
    assert.ok(v.failedSnapshots.includes(s2), JSON.stringify(v.problems.slice(0, 3)));
    assert.ok(!v.failedSnapshots.includes(s1));
    assert.match((await snap(s2)).warning_msg ?? '', /manifest/i);

    const failed = await selectiveRestoreAndWait(h, h.alice, wid, s2, vmId, 30_000);
    assert.equal(failed.status, 'error');
    assert.match(failed.error_msg ?? '', /manifest/i);
    assert.ok(!(failed.error_msg as string).includes(h.home), failed.error_msg);
    assert.equal((await snap(s2)).status, 'available', 'a failed restore leaves the snapshot as it was');
    assert.equal(inventory().filter((i) => i.name.startsWith('r-')).length, 0, 'the failed restore made an instance');

    assert.equal(await restoredDiskSha(h, h.alice, wid, s1, vmId), truth);

    const s3 = (await takeSnapshotAndWait(h, h.alice, wid, false, 30_000)).id as string;
    assert.equal(await restoredDiskSha(h, h.alice, wid, s3, vmId), truth);
  });
});
