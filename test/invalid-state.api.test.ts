import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { createWorkloadAndWait, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';

/**
 * Reliability item D16 (shared/spec/reliability.md §2): operations the current state forbids
 * answer 400 with the legacy message and change nothing. The states are real: a snapshot that
 * failed, and, with the service restarted in the `api` role (no worker, so jobs stay queued), a
 * restore and a snapshot that have started and not finished.
 */
describe('operations a state forbids answer 400 and change nothing (reliability D16)', () => {
  let h: Harness;
  let wid = '';
  let other = '';
  let good = '';
  let failed = '';
  const selective = (vmId: string) => ({
    restore: { options: { type: 'openstack', oneclickrestore: false, restore_type: 'selective', openstack: { instances: [{ id: vmId, include: true, name: 'r', vdisks: [] }] } } },
  });
  const vm = (name: string) => h.vms.find((v) => v.name === name)!;
  const workload = async (id: string) => (await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload;
  const snapshotIds = async (id: string) => ((await h.api(h.alice, 'GET', `/snapshots?workload_id=${id}`)).json.snapshots as { id: string }[]).map((s) => s.id).sort();
  const restoreCount = async () => (await h.api(h.alice, 'GET', '/restores')).json.restores.length as number;
  /** A 400 whose fault message contains `text`. */
  function refused(r: { status: number; json: { badRequest?: { message?: string } }; text: string }, text: string): void {
    assert.equal(r.status, 400, r.text);
    assert.ok(r.json.badRequest?.message?.includes(text), r.text);
  }

  before(async () => {
    h = await startHarness();
    wid = await createWorkloadAndWait(h, h.alice, [vm('vm-a3').id], 'd16');
    other = await createWorkloadAndWait(h, h.alice, [vm('vm-a1').id], 'd16-other');
    good = (await takeSnapshotAndWait(h, h.alice, wid, true)).id as string;
    const disk = vm('vm-a3').disks[0]!.path;
    renameSync(disk, `${disk}.gone`);
    try {
      const r = await h.api(h.alice, 'POST', `/workloads/${wid}?full=1`);
      assert.equal(r.status, 200, r.text);
      failed = r.json.snapshot.id;
      await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${failed}`)).json.snapshot.status === 'error', 20_000, 'snapshot error');
      await waitFor(async () => (await workload(wid)).status === 'available', 20_000, 'workload unlocked');
    } finally {
      renameSync(`${disk}.gone`, disk);
    }
  });
  after(async () => h?.close());

  test('a restore of a snapshot in error', async () => {
    const restores = await restoreCount();
    refused(await h.api(h.alice, 'POST', `/workloads/${wid}/snapshots/${failed}/restores`, selective(vm('vm-a3').id)), 'Snapshot status must be available');
    assert.equal(await restoreCount(), restores);
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${failed}`)).json.snapshot.status, 'error');
    assert.equal((await workload(wid)).status, 'available');
  });

  test('while a restore runs: snapshot, modify, delete its snapshot, another restore; while a snapshot runs: restore it, modify', async () => {
    await h.restart(undefined, 'api');
    const started = await h.api(h.alice, 'POST', `/workloads/${wid}/snapshots/${good}/restores`, selective(vm('vm-a3').id));
    assert.equal(started.status, 202, started.text);
    assert.equal((await workload(wid)).status, 'locked');
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${good}`)).json.snapshot.status, 'restoring');
    const snapshots = await snapshotIds(wid);
    const restores = await restoreCount();

    refused(await h.api(h.alice, 'POST', `/workloads/${wid}`, { snapshot: { name: 'x' } }), "Workload must be in the 'available' state to take a snapshot");
    refused(await h.api(h.alice, 'PUT', `/workloads/${wid}`, { workload: { name: 'renamed' } }), "Workload must be in the 'available' state to modify");
    refused(await h.api(h.alice, 'DELETE', `/snapshots/${good}`), "Snapshot status must be 'available' or 'error' or 'cancelled'");
    refused(await h.api(h.alice, 'POST', `/workloads/${wid}/snapshots/${good}/restores`, selective(vm('vm-a3').id)), 'Snapshot status must be available');
    assert.deepEqual(await snapshotIds(wid), snapshots);
    assert.equal(await restoreCount(), restores);
    assert.equal((await workload(wid)).name, 'd16');
    assert.equal((await workload(wid)).status, 'locked');
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${good}`)).json.snapshot.status, 'restoring');

    const running = await h.api(h.alice, 'POST', `/workloads/${other}`, { snapshot: { name: 'queued' } });
    assert.equal(running.status, 200, running.text);
    const sid = running.json.snapshot.id as string;
    refused(await h.api(h.alice, 'POST', `/workloads/${other}/snapshots/${sid}/restores`, selective(vm('vm-a1').id)), 'Snapshot status must be available');
    refused(await h.api(h.alice, 'PUT', `/workloads/${other}`, { workload: { name: 'renamed' } }), "Workload must be in the 'available' state to modify");
    assert.equal(await restoreCount(), restores);
    assert.equal((await workload(other)).name, 'd16-other');
    assert.notEqual((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.status, 'available');
  });
});
