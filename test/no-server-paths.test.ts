import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { startHarness, waitFor, type Harness } from './harness.js';

/**
 * A tenant never reads where the server keeps its files: a snapshot that fails because its
 * disk image vanished says so in error_msg/progress_msg, with the image path replaced by
 * `[path]` in every view (the server log keeps the full text for the operator).
 */
describe('no server path reaches a tenant', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
  });

  test('a snapshot failing on a vanished disk image shows the failure without the image path', async () => {
    const vm = h.vms[2]!;
    const c = await h.api(h.alice, 'POST', '/workloads', {
      workload: { name: 'w', workload_type_id: '2ddd528d-c9b4-4d7e-8722-cc395140255a', source_platform: 'openstack', instances: [{ 'instance-id': vm.id }], jobschedule: {}, metadata: {} },
    });
    assert.equal(c.status, 202, c.text);
    const w = c.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${w}`)).json.workload.status === 'available', 20_000, 'available');
    const disk = vm.disks[0]!.path;
    renameSync(disk, `${disk}.gone`);
    try {
      const s = await h.api(h.alice, 'POST', `/workloads/${w}?full=1`);
      assert.equal(s.status, 200, s.text);
      const sid = s.json.snapshot.id as string;
      const failed = await waitFor(async () => {
        const x = await h.api(h.alice, 'GET', `/snapshots/${sid}`);
        return x.json.snapshot.status === 'error' ? x : null;
      }, 20_000, 'snapshot error');
      assert.match(failed.json.snapshot.error_msg, /^Snapshot failed: /);
      const views = [failed.text, (await h.api(h.alice, 'GET', '/snapshots/detail')).text, (await h.api(h.alice, 'GET', `/workloads/${w}`)).text];
      for (const v of views) {
        assert.ok(!v.includes(h.home), `a view shows a server path: ${v.slice(0, 300)}`);
        assert.ok(!v.includes(disk));
      }
    } finally {
      renameSync(`${disk}.gone`, disk);
    }
  });
});
