import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createWorkloadAndWait, snapshotEnded, startHarness, takeSnapshotAndWait, waitFor, type Harness, type TestVm } from './harness.js';

/**
 * Reliability item F23's last case (shared/spec/reliability.md §2): an unencrypted workload that
 * includes an encrypted volume is rejected, with Trilio's 400 "Unencrypted workload cannot have
 * instance <uuid> with encrypted Volume <uuid>". On the local platform a disk says so with
 * `encrypted: true` in the inventory (on OpenStack: Cinder's `encrypted` of the volume). A volume
 * that becomes part of a member later (attached after the workload was made) fails the next
 * snapshot with the same words before anything is read.
 */
describe('encrypted volumes only in encrypted workloads (reliability F23)', () => {
  let h: Harness;
  const inventoryPath = () => join(h.home, 'inventory.json');
  /** Marks the first disk of `vm` encrypted in the inventory (the platform re-reads it). */
  function markEncrypted(vm: TestVm): string {
    const inv = JSON.parse(readFileSync(inventoryPath(), 'utf8'));
    const disk = inv.instances.find((i: { id: string }) => i.id === vm.id).disks[0];
    disk.encrypted = true;
    writeFileSync(`${inventoryPath()}.new`, JSON.stringify(inv, null, 2));
    renameSync(`${inventoryPath()}.new`, inventoryPath()); // whole, never half-written, to the platform's reader
    return disk.volume_id as string;
  }
  const create = (vm: TestVm, encryption: boolean) =>
    h.api(h.alice, 'POST', '/workloads', { workload: { name: encryption ? 'enc' : 'plain', instances: [{ 'instance-id': vm.id }], jobschedule: { enabled: false }, encryption } });
  const workloadCount = async () => (await h.api(h.alice, 'GET', '/workloads')).json.workloads.length as number;
  const vm = (name: string) => h.vms.find((v) => v.name === name)!;

  before(async () => {
    h = await startHarness({ diskBytes: 1024 * 1024 });
  });
  after(() => h?.close());

  test('create: an unencrypted workload is refused, an encrypted one protects it', async () => {
    const volume = markEncrypted(vm('vm-a3'));
    const refused = await create(vm('vm-a3'), false);
    assert.equal(refused.status, 400, refused.text);
    assert.deepEqual(refused.json, { badRequest: { code: 400, message: `Unencrypted workload cannot have instance ${vm('vm-a3').id} with encrypted Volume ${volume}` } });
    assert.equal(await workloadCount(), 0);

    const ok = await create(vm('vm-a3'), true);
    assert.equal(ok.status, 202, ok.text);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${ok.json.workload.id}`)).json.workload.status === 'available', 20_000, 'workload available');
    await takeSnapshotAndWait(h, h.alice, ok.json.workload.id, true);
  });

  test('a member that gains an encrypted volume: the snapshot fails reading nothing; modify is refused', async () => {
    const member = vm('vm-a2');
    const wid = await createWorkloadAndWait(h, h.alice, [member.id], 'plain');
    const volume = markEncrypted(member);
    const message = `Unencrypted workload cannot have instance ${member.id} with encrypted Volume ${volume}`;
    const r = await h.api(h.alice, 'POST', `/workloads/${wid}?full=1`);
    assert.equal(r.status, 200, r.text);
    const sid = r.json.snapshot.id as string;
    const failed = await snapshotEnded(h, h.alice, sid, 20_000);
    assert.equal(failed.status, 'error');
    assert.equal(failed.error_msg, `Snapshot failed: ${message}`);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
    assert.equal(existsSync(join(h.home, 'target', 'manifests', `${sid}.json`)), false);
    assert.equal(existsSync(join(h.home, 'target', 'disks', sid)) && readdirSync(join(h.home, 'target', 'disks', sid)).length > 0, false, 'a disk of it was stored');

    const modify = await h.api(h.alice, 'PUT', `/workloads/${wid}`, { workload: { instances: [{ 'instance-id': member.id }] } });
    assert.equal(modify.status, 400, modify.text);
    assert.equal(modify.json.badRequest.message, message);
  });
});
