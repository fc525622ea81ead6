import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, waitFor, type Harness, type TestUser } from './harness.js';

/**
 * The five endpoints of snapshots-api.md (the vendor's page), checked field by field against
 * its examples, plus tempest flows F3–F6 and the bad-input rules.
 */
const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;
const TS0 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000000$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SUMMARY_KEYS = ['created_at', 'description', 'host', 'id', 'name', 'snapshot_type', 'status', 'workload_id'];
const DETAIL_KEYS = [
  'created_at', 'description', 'error_msg', 'finished_at', 'host', 'id', 'instances', 'metadata', 'name', 'pinned', 'progress_msg', 'progress_percent',
  'project_id', 'restore_size', 'restores_info', 'size', 'snapshot_type', 'status', 'time_taken', 'updated_at', 'uploaded_size', 'user_id', 'warning_msg', 'workload_id',
];
const METADATA_KEYS = ['backup_media_target', 'cancel_requested', 'data_transfer_time', 'hostnames', 'object_store_transfer_time', 'pause_at_snapshot', 'policy_id', 'preferredgroup', 'topology', 'workload_approx_backup_size'];
const sorted = (o: object) => Object.keys(o).sort();

describe('snapshots API over HTTP (snapshots-api.md)', () => {
  let h: Harness;
  let wid: string;
  let full: string;

  const take = (u: TestUser, w: string, query = '', body: unknown = { snapshot: { name: 'Tempest-test-snapshot', description: 'Test', full: 'True' } }) =>
    h.api(u, 'POST', `/workloads/${w}${query}`, body);
  const waitSnap = (u: TestUser, w: string, sid: string, states = ['available', 'error', 'cancelled']) =>
    waitFor(async () => {
      const s = (await h.api(u, 'GET', `/workloads/${w}/snapshots/${sid}`)).json.snapshot;
      return states.includes(s.status) ? s : null;
    }, 20_000, `snapshot ${sid}`);
  const waitWorkload = (u: TestUser, w: string) =>
    waitFor(async () => (await h.api(u, 'GET', `/workloads/${w}`)).json.workload.status === 'available', 20_000, 'workload available');

  before(async () => {
    h = await startHarness();
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'w1', instances: [{ 'instance-id': h.vms[0]!.id }, { 'instance-id': h.vms[1]!.id }], jobschedule: {}, metadata: {} } });
    wid = r.json.workload.id;
    await waitWorkload(h.alice, wid);
  });
  after(async () => h.close());

  test('Take Snapshot: 200, summary with status creating and host ""; workload locked; first snapshot is full', async () => {
    const r = await take(h.alice, wid); // incremental asked: the first one is full anyway
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('content-type')?.startsWith('application/json'), true);
    assert.match(r.headers.get('x-compute-request-id')!, /^req-/);
    const s = r.json.snapshot;
    assert.deepEqual(sorted(s), SUMMARY_KEYS);
    assert.equal(s.status, 'creating');
    assert.equal(s.host, '');
    assert.equal(s.snapshot_type, 'full');
    assert.equal(s.workload_id, wid);
    assert.equal(s.name, 'Tempest-test-snapshot');
    assert.equal(s.description, 'Test');
    assert.match(s.id, UUID);
    assert.match(s.created_at, TS);
    full = s.id;
    // A second take while locked → 400 with the legacy message.
    const busy = await take(h.alice, wid);
    assert.equal(busy.status, 400);
    assert.deepEqual(busy.json, { badRequest: { code: 400, message: "Invalid state: Workload must be in the 'available' state to take a snapshot" } });
    await waitSnap(h.alice, wid, full);
    await waitWorkload(h.alice, wid);
  });

  test('Show Snapshot: every field of the GUIDE example, with its type and format', async () => {
    for (const path of [`/snapshots/${full}`, `/workloads/${wid}/snapshots/${full}`]) {
      const r = await h.api(h.alice, 'GET', path);
      assert.equal(r.status, 200);
      const s = r.json.snapshot;
      assert.deepEqual(sorted(s), DETAIL_KEYS.sort());
      assert.equal(s.status, 'available', s.error_msg);
      assert.match(s.created_at, TS0);
      assert.match(s.updated_at, TS0);
      assert.match(s.finished_at, TS0);
      assert.equal(s.user_id.length, 32);
      assert.equal(s.project_id, h.alice.projectId);
      assert.equal(s.host, 'TVM1');
      assert.equal(s.progress_percent, 100);
      assert.equal(s.progress_msg, 'Snapshot of workload is complete');
      assert.equal(s.warning_msg, null);
      assert.equal(s.error_msg, null);
      assert.equal(s.pinned, false);
      assert.equal(s.restores_info, '');
      assert.equal(typeof s.time_taken, 'number');
      assert.ok(Number.isInteger(s.size) && s.size > 0);
      assert.equal(s.uploaded_size, s.size);
      const diskBytes = h.vms.slice(0, 2).flatMap((v) => v.disks).length;
      assert.equal(diskBytes, 4);
      assert.ok(s.restore_size > 3 * 1024 * 1024, String(s.restore_size));

      assert.equal(s.instances.length, 2);
      const inst = s.instances.find((i: { id: string }) => i.id === h.vms[0]!.id);
      assert.deepEqual(sorted(inst), ['flavor', 'id', 'metadata', 'name', 'nics', 'security_group', 'status', 'vdisks']);
      assert.equal(inst.name, 'vm-a1');
      assert.equal(inst.status, 'available');
      assert.deepEqual(sorted(inst.metadata), ['availability_zone', 'config_drive', 'data_transfer_time', 'object_store_transfer_time', 'root_partition_type', 'trilio_ordered_interfaces', 'vm_metadata', 'workload_id', 'workload_name']);
      assert.equal(inst.metadata.workload_id, wid);
      assert.equal(inst.metadata.workload_name, 'w1');
      assert.deepEqual(JSON.parse(inst.metadata.vm_metadata).workload_id, wid);
      assert.deepEqual(inst.flavor, { vcpus: '1', ram: '512', disk: '1', ephemeral: '0' });
      assert.deepEqual(inst.security_group, [{ name: 'default', security_group_type: 'neutron' }]);
      const nic = inst.nics[0];
      assert.deepEqual(sorted(nic), ['ip_address', 'mac_address', 'network']);
      assert.deepEqual(sorted(nic.network), ['cidr', 'id', 'name', 'network_type', 'subnet']);
      assert.equal(nic.network.cidr, null);
      assert.equal(nic.network.network_type, 'neutron');
      assert.deepEqual(sorted(nic.network.subnet), ['cidr', 'gateway_ip', 'id', 'ip_version', 'name']);
      assert.equal(nic.network.subnet.ip_version, 4);
      assert.equal(inst.vdisks.length, 2);
      const vol = inst.vdisks.find((v: { volume_mountpoint: string }) => v.volume_mountpoint === '/dev/vda');
      assert.deepEqual(sorted(vol), ['availability_zone', 'label', 'metadata', 'resource_id', 'restore_size', 'vm_id', 'volume_id', 'volume_mountpoint', 'volume_name', 'volume_size', 'volume_type'].sort());
      assert.equal(vol.label, null);
      assert.match(vol.resource_id, UUID);
      assert.equal(vol.vm_id, inst.id);
      assert.equal(typeof vol.restore_size, 'number');
      assert.equal(vol.volume_size, '1');
      assert.deepEqual(vol.metadata, { readonly: 'False', attached_mode: 'rw' });
      const img = inst.vdisks.find((v: { volume_mountpoint: string }) => v.volume_mountpoint === '/dev/vdb');
      assert.ok('image_id' in img && !('volume_id' in img));

      assert.deepEqual(s.metadata.map((m: { key: string }) => m.key).sort(), METADATA_KEYS);
      for (const m of s.metadata) {
        assert.deepEqual(sorted(m), ['created_at', 'deleted', 'deleted_at', 'id', 'key', 'snapshot_id', 'updated_at', 'value', 'version']);
        assert.match(m.created_at, TS0);
        assert.equal(m.deleted, false);
        assert.equal(m.deleted_at, null);
        assert.equal(m.snapshot_id, full);
        assert.equal(typeof m.value, 'string');
        assert.equal(m.version, '4.1.124');
      }
      const md = Object.fromEntries(s.metadata.map((m: { key: string; value: string }) => [m.key, m.value]));
      assert.deepEqual(JSON.parse(md.hostnames).sort(), ['vm-a1', 'vm-a2']);
      assert.equal(md.cancel_requested, '0');
      assert.equal(md.preferredgroup, '[]');
      assert.equal(md.topology, '"\\"\\""');
    }
  });

  test('F3/F4: incremental after a change, list filters and order, show via both paths', async () => {
    const r = await take(h.alice, wid); // no ?full → incremental
    assert.equal(r.json.snapshot.snapshot_type, 'incremental');
    const inc = await waitSnap(h.alice, wid, r.json.snapshot.id);
    assert.equal(inc.status, 'available', inc.error_msg);
    // unchanged disks: the incremental stores (almost) nothing new
    const fullSize = (await h.api(h.alice, 'GET', `/snapshots/${full}`)).json.snapshot.size;
    assert.ok(inc.size < fullSize / 10, `incremental stored ${inc.size} vs full ${fullSize}`);
    await waitWorkload(h.alice, wid);

    const list = (await h.api(h.alice, 'GET', `/snapshots?workload_id=${wid}`)).json.snapshots;
    assert.deepEqual(list.map((s: { id: string }) => s.id), [full, inc.id]);
    for (const s of list) assert.deepEqual(sorted(s), SUMMARY_KEYS);
    assert.deepEqual((await h.api(h.alice, 'GET', `/workloads/${wid}/snapshots`)).json.snapshots.map((s: { id: string }) => s.id), [full, inc.id]);
    assert.equal((await h.api(h.alice, 'GET', '/snapshots?host=TVM1')).json.snapshots.length, 2);
    assert.equal((await h.api(h.alice, 'GET', '/snapshots?host=other')).json.snapshots.length, 0);
    assert.equal((await h.api(h.alice, 'GET', '/snapshots?status=available')).json.snapshots.length, 2);
    assert.equal((await h.api(h.alice, 'GET', '/snapshots?date_from=2000-01-01T00:00:00')).json.snapshots.length, 2);
    assert.equal((await h.api(h.alice, 'GET', '/snapshots?date_from=2000-01-01T00:00:00&date_to=2000-01-02T00:00:00')).json.snapshots.length, 0);
    const gi = (await h.api(h.alice, 'GET', '/snapshots?get_instances=True')).json.snapshots[0];
    assert.ok(Array.isArray(gi.instances) && gi.instances[0].vdisks && !('security_group' in gi.instances[0]));
    const det = (await h.api(h.alice, 'GET', '/snapshots/detail')).json.snapshots;
    assert.equal(det.length, 2);
    assert.deepEqual(sorted(det[0]), DETAIL_KEYS.sort());
  });

  test('F6: reset forces the next snapshot full', async () => {
    assert.equal((await h.api(h.alice, 'POST', `/workloads/${wid}/reset`)).status, 202);
    await waitWorkload(h.alice, wid);
    const r = await take(h.alice, wid);
    assert.equal(r.json.snapshot.snapshot_type, 'full');
    const s = await waitSnap(h.alice, wid, r.json.snapshot.id);
    assert.equal(s.snapshot_type, 'full');
    await waitWorkload(h.alice, wid);
    // and the one after is incremental again; body snapshot_type overrides the query
    const b = await take(h.alice, wid, '?full=1', { snapshot: { snapshot_type: 'incremental' } });
    assert.equal(b.json.snapshot.snapshot_type, 'incremental');
    await waitSnap(h.alice, wid, b.json.snapshot.id);
    await waitWorkload(h.alice, wid);
    const c = await h.api(h.alice, 'POST', `/workloads/${wid}?full=True`);
    assert.equal(c.status, 200);
    assert.equal(c.json.snapshot.snapshot_type, 'full');
    assert.equal(c.json.snapshot.name, 'Snapshot');
    assert.equal(c.json.snapshot.description, 'no-description');
    await waitSnap(h.alice, wid, c.json.snapshot.id);
    await waitWorkload(h.alice, wid);
  });

  test('Cancel Snapshot: GET, 200 with an empty body; a no-op on a final state', async () => {
    const r = await h.api(h.alice, 'GET', `/snapshots/${full}/cancel`);
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
    assert.equal(r.headers.get('content-length'), '0');
    assert.match(r.headers.get('content-type')!, /application\/json/);
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${full}`)).json.snapshot.status, 'available');
  });

  test('Delete Snapshot: 200 {"task":{"id"}}; snapshot disappears; task readable; workload available again', async () => {
    const list = (await h.api(h.alice, 'GET', `/snapshots?workload_id=${wid}`)).json.snapshots;
    const victim = list[1].id;
    const r = await h.api(h.alice, 'DELETE', `/snapshots/${victim}`);
    assert.equal(r.status, 200);
    assert.deepEqual(sorted(r.json), ['task']);
    assert.deepEqual(sorted(r.json.task), ['id']);
    assert.match(r.json.task.id, UUID);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${victim}`)).status === 404, 20_000, 'snapshot gone');
    await waitWorkload(h.alice, wid);
    const t = await h.api(h.alice, 'GET', `/task/${r.json.task.id}`);
    assert.equal(t.status, 200);
    assert.equal(t.json.task.status, 'done');
    assert.equal(t.json.task.display_name, 'Snapshot Delete');
    // deleting again → 404 (idempotent from the user's view, never 500)
    assert.equal((await h.api(h.alice, 'DELETE', `/snapshots/${victim}`)).status, 404);
    // nested path
    const other = list[2].id;
    assert.equal((await h.api(h.alice, 'DELETE', `/workloads/${wid}/snapshots/${other}`)).status, 200);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${other}`)).status === 404, 20_000);
    await waitWorkload(h.alice, wid);
    // every remaining snapshot still has its manifest on the target
    const manifests = readdirSync(join(h.home, 'target', 'manifests'));
    const remaining = (await h.api(h.alice, 'GET', `/snapshots?workload_id=${wid}`)).json.snapshots.map((s: { id: string }) => s.id);
    for (const id of remaining) assert.ok(manifests.some((m) => m.startsWith(id)), `manifest of ${id}`);
    assert.ok(!manifests.some((m) => m.startsWith(victim)));
  });

  test('a workload with snapshots cannot be deleted', async () => {
    const r = await h.api(h.alice, 'DELETE', `/workloads/${wid}`);
    assert.equal(r.status, 400);
    assert.equal(r.json.badRequest.message, 'This workload contains snapshots. Please delete all snapshots and try again..');
  });

  describe('bad input', () => {
    test('dates must be YYYY-MM-DDTHH:MM:SS', async () => {
      for (const q of ['date_from=2024/01/01', 'date_from=2024-01-01', 'date_to=yesterday', 'date_from=2024-02-30T00:00:00', 'date_from=2024-01-01T00:00:00Z']) {
        const r = await h.api(h.alice, 'GET', `/snapshots?${q}`);
        assert.equal(r.status, 400, q);
        assert.match(r.json.badRequest.message, /Format YYYY-MM-DDTHH:MM:SS/);
      }
    });

    test("another project's snapshot and workload answer like missing ones", async () => {
      const missing = crypto.randomUUID();
      for (const [m, p] of [['GET', `/snapshots/${full}`], ['DELETE', `/snapshots/${full}`], ['GET', `/snapshots/${full}/cancel`], ['GET', `/workloads/${wid}/snapshots/${full}`]] as const) {
        const a = await h.api(h.bob, m, p);
        const b = await h.api(h.bob, m, p.replaceAll(full, missing).replaceAll(wid, missing));
        assert.equal(a.status, 404, `${m} ${p}`);
        assert.equal(a.text.replaceAll(full, 'X').replaceAll(wid, 'X'), b.text.replaceAll(missing, 'X'));
      }
      assert.equal((await take(h.bob, wid)).status, 404);
      assert.equal((await h.api(h.bob, 'GET', `/snapshots?workload_id=${wid}`)).status, 404);
      assert.equal((await h.api(h.bob, 'GET', '/snapshots')).json.snapshots.length, 0);
      assert.equal((await h.api(h.bob, 'GET', '/snapshots?all=true')).json.snapshots.length, 0);
      assert.ok((await h.api(h.admin, 'GET', '/snapshots?all=true')).json.snapshots.length >= 1);
      // the snapshot is untouched
      assert.equal((await h.api(h.alice, 'GET', `/snapshots/${full}`)).json.snapshot.status, 'available');
    });

    test('nested path with a different workload → 404; non-UUID ids → 404', async () => {
      assert.equal((await h.api(h.alice, 'GET', `/workloads/${crypto.randomUUID()}/snapshots/${full}`)).status, 404);
      assert.equal((await h.api(h.alice, 'GET', '/snapshots/not-a-uuid')).status, 404);
      assert.equal((await h.api(h.alice, 'POST', '/workloads/not-a-uuid')).status, 404);
      assert.equal((await h.api(h.alice, 'GET', '/task/nope')).status, 404);
    });

    test('malformed take bodies → 400, nothing created', async () => {
      const before = (await h.api(h.alice, 'GET', '/snapshots')).json.snapshots.length;
      for (const body of ['{bad', '[]', { snapshot: 'x' }, { snapshot: { name: 7 } }, { snapshot: { snapshot_type: 'weekly' } }, { snapshot: { is_scheduled: 'perhaps' } }]) {
        const r = await take(h.alice, wid, '', body);
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      }
      assert.equal((await take(h.alice, wid, '?full=maybe')).status, 400);
      assert.equal((await h.api(h.alice, 'GET', '/snapshots')).json.snapshots.length, before);
      assert.equal((await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status, 'available');
    });
  });
});
