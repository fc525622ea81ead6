import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mutateDisk, sha256File, startHarness, waitFor, type Harness } from './harness.js';
import { runLifeboat } from './process.js';
import { f8SelectiveRestoreOptions } from './tempest-bodies.js';

/**
 * Restores over HTTP with tempest's payloads (F7 one-click, F8 selective, F9 in-place), checked
 * byte for byte: every restored disk's SHA-256 equals its source at snapshot time.
 */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface InvInstance {
  id: string;
  name: string;
  nics: { network: { id: string; name: string; subnet?: { id: string } } }[];
  disks: { device: string; path: string; volume_id?: string }[];
}
const inventory = (h: Harness): InvInstance[] => JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances;
const diskPath = (h: Harness, vm: string, dev: string) => inventory(h).find((i) => i.id === vm)!.disks.find((d) => d.device === dev)!.path;

describe('restores over HTTP', () => {
  let h: Harness;
  let wid: string;
  const vm1 = () => h.vms[0]!; // 2 disks
  const vm2 = () => h.vms[1]!; // 2 disks
  /** snapshot id → `${vm}:${device}` → sha256 of the source at snapshot time */
  const truth = new Map<string, Map<string, string>>();

  const waitWorkload = () => waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
  async function snapshot(full: boolean): Promise<string> {
    const hashes = new Map<string, string>();
    for (const vm of [vm1(), vm2()]) for (const d of vm.disks) hashes.set(`${vm.id}:${d.device}`, sha256File(d.path));
    const r = await h.api(h.alice, 'POST', `/workloads/${wid}${full ? '?full=1' : ''}`, { snapshot: { name: 'Tempest-test-snapshot', description: 'Test', full: 'True' } });
    assert.equal(r.status, 200, r.text);
    const sid = r.json.snapshot.id;
    const s = await waitFor(async () => {
      const x = (await h.api(h.alice, 'GET', `/workloads/${wid}/snapshots/${sid}`)).json.snapshot;
      return ['available', 'error'].includes(x.status) ? x : null;
    }, 20_000);
    assert.equal(s.status, 'available', s.error_msg);
    await waitWorkload();
    truth.set(sid, hashes);
    return sid;
  }
  async function restore(sid: string, body: unknown) {
    const r = await h.api(h.alice, 'POST', `/workloads/${wid}/snapshots/${sid}/restores`, body);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.restore.status, 'restoring');
    const rid = r.json.restore.id;
    // tempest: poll the snapshot until available again, then read the restore
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.status === 'available', 30_000, 'snapshot available after restore');
    await waitWorkload();
    return (await h.api(h.alice, 'GET', `/workloads/${wid}/snapshots/${sid}/restores/${rid}`)).json.restore;
  }
  const oneclick = () => ({
    restore: {
      options: { description: 'Tempest test restore', vmware: {}, openstack: { instances: [], zone: '' }, restore_type: 'oneclick', type: 'openstack', oneclickrestore: 'True', restore_options: {}, name: 'Tempest Test Restore' },
      name: 'Tempest Test Restore',
      description: 'Tempest test restore',
    },
  });
  const inplace = (instances: unknown[]) => ({
    restore: { options: { name: `inplace-${wid}`, description: '', type: 'openstack', oneclickrestore: false, restore_type: 'inplace', zone: '', openstack: { instances, networks_mapping: { networks: [] } } } },
  });
  const checkNewInstances = (sid: string, restored: { id: string; name: string }[], expect: { from: string; devices: string[] }[]) => {
    const inv = inventory(h);
    assert.equal(restored.length, expect.length);
    for (const e of expect) {
      const r = restored.find((x) => inv.find((i) => i.id === x.id)?.disks.length === e.devices.length && (inv.find((i) => i.id === x.id) as unknown as { metadata: Record<string, string> }).metadata.original_instance_id === e.from);
      assert.ok(r, `restored instance of ${e.from}`);
      assert.notEqual(r.id, e.from);
      const inst = inv.find((i) => i.id === r.id)!;
      for (const dev of e.devices) {
        const d = inst.disks.find((x) => x.device === dev)!;
        assert.equal(sha256File(d.path), truth.get(sid)!.get(`${e.from}:${dev}`), `${dev} of restored ${e.from} from ${sid}`);
        assert.ok(d.path.startsWith(join(h.home, 'instances')));
      }
    }
  };

  before(async () => {
    h = await startHarness();
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'two-by-two', instances: [{ 'instance-id': vm1().id }, { 'instance-id': vm2().id }] } });
    wid = r.json.workload.id;
    await waitWorkload();
  });
  after(async () => h.close());

  let s1: string, s2: string, s3: string;

  test('full, change, incremental, change, incremental; delete the middle one', async () => {
    s1 = await snapshot(true);
    for (const vm of [vm1(), vm2()]) for (const d of vm.disks) mutateDisk(d.path, 3);
    s2 = await snapshot(false);
    for (const vm of [vm1(), vm2()]) for (const d of vm.disks) mutateDisk(d.path, 3);
    s3 = await snapshot(false);
    assert.equal((await h.api(h.alice, 'DELETE', `/snapshots/${s2}`)).status, 200);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${s2}`)).status === 404, 20_000);
    await waitWorkload();
  });

  test('F9: in-place restore of the incremental (s3) brings back its bytes, ids unchanged', async () => {
    for (const vm of [vm1(), vm2()]) for (const d of vm.disks) mutateDisk(d.path, 5); // "ransomware"
    const r = await restore(s3, inplace([vm1(), vm2()].map((v) => ({ id: v.id, availability_zone: 'nova', include: true, restore_boot_disk: true, vdisks: [] }))));
    assert.equal(r.status, 'available', r.error_msg);
    assert.deepEqual(r.instances.map((i: { id: string }) => i.id).sort(), [vm1().id, vm2().id].sort());
    for (const vm of [vm1(), vm2()]) for (const d of vm.disks) assert.equal(sha256File(diskPath(h, vm.id, d.device)), truth.get(s3)!.get(`${vm.id}:${d.device}`));
  });

  test('in-place restore of the full (s1) with a vdisks filter restores only that disk', async () => {
    const before = sha256File(vm1().disks[1]!.path);
    const vols = inventory(h).find((i) => i.id === vm1().id)!.disks;
    const vda = vols.find((d) => d.device === '/dev/vda')!;
    const r = await restore(s1, inplace([{ id: vm1().id, include: true, vdisks: [{ id: vda.volume_id, availability_zone: 'nova', new_volume_type: 'x', restore_cinder_volme: true }] }, { id: vm2().id, include: false, vdisks: [] }]));
    assert.equal(r.status, 'available', r.error_msg);
    assert.deepEqual(r.instances.map((i: { id: string }) => i.id), [vm1().id]);
    assert.equal(sha256File(vda.path), truth.get(s1)!.get(`${vm1().id}:/dev/vda`));
    assert.equal(sha256File(vm1().disks[1]!.path), before, 'vdb untouched');
  });

  test('F7: one-click restore (tempest body) recreates every VM; workload members become the new VMs; delete restore', async () => {
    const r = await restore(s1, oneclick());
    assert.equal(r.status, 'available', r.error_msg);
    assert.equal(r.name, 'Tempest Test Restore');
    assert.equal(r.restore_type, 'restore');
    assert.equal(r.restore_options.restore_type, 'oneclick');
    assert.equal(r.progress_percent, 100);
    assert.equal(r.progress_msg, 'Restore from snapshot is complete');
    assert.equal(r.host, 'TVM1');
    assert.ok(r.size > 0 && typeof r.time_taken === 'number' && typeof r.uploaded_size === 'number');
    for (const k of ['id', 'created_at', 'updated_at', 'finished_at', 'user_id', 'project_id', 'status', 'restore_type', 'snapshot_id', 'workload_id', 'links', 'name', 'description', 'host', 'size', 'uploaded_size', 'progress_percent', 'progress_msg', 'warning_msg', 'error_msg', 'time_taken', 'restore_options', 'metadata', 'instances', 'networks', 'subnets', 'routers', 'flavors']) assert.ok(k in r, k);
    for (const i of r.instances) assert.match(i.id, UUID);
    // The harness wrote the inventory 0644; the restore's rewrite leaves it owner-only.
    assert.equal(statSync(join(h.home, 'inventory.json')).mode & 0o777, 0o600);
    checkNewInstances(s1, r.instances, [
      { from: vm1().id, devices: ['/dev/vda', '/dev/vdb'] },
      { from: vm2().id, devices: ['/dev/vda', '/dev/vdb'] },
    ]);
    const members = (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.instances.map((i: { id: string }) => i.id).sort();
    assert.deepEqual(members, r.instances.map((i: { id: string }) => i.id).sort());
    // the new VMs are usable platform instances of the project
    assert.equal((await h.api(h.alice, 'POST', '/workloads', { workload: { instances: [{ 'instance-id': vm1().id }] } })).status, 202, 'the original VM is free again');

    const list = (await h.api(h.alice, 'GET', `/restores?snapshot_id=${s1}`)).json.restores;
    assert.ok(list.some((x: { id: string }) => x.id === r.id));
    assert.ok((await h.api(h.alice, 'GET', '/restores')).json.restores.some((x: { id: string; workload_id: string }) => x.id === r.id && x.workload_id === wid));
    assert.equal((await h.api(h.alice, 'GET', '/restores/detail')).json.restores[0].restore_type, 'restore');
    assert.equal((await h.api(h.alice, 'GET', `/restores/${r.id}`)).json.restore.id, r.id);
    const del = await h.api(h.alice, 'DELETE', `/workloads/${wid}/snapshots/${s1}/restores/${r.id}`);
    assert.equal(del.status, 200);
    assert.equal((await h.api(h.alice, 'GET', `/restores/${r.id}`)).status, 404);
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${s1}`)).json.snapshot.status, 'available');
  });

  test('F8: selective restore excluding one VM, with a new name, one vdisk and a network mapping', async () => {
    // the workload's members are now the one-click VMs; restore from s3 (taken from the originals)
    const net = inventory(h).find((i) => i.id === vm1().id)!.nics[0]!.network;
    const target = { name: 'net2', id: crypto.randomUUID(), subnet: { id: crypto.randomUUID() } };
    const vdb = inventory(h).find((i) => i.id === vm1().id)!.disks.find((d) => d.device === '/dev/vdb')!;
    const s3Detail = (await h.api(h.alice, 'GET', `/snapshots/${s3}`)).json.snapshot;
    const vdbResource = s3Detail.instances.find((i: { id: string }) => i.id === vm1().id).vdisks.find((v: { volume_mountpoint: string }) => v.volume_mountpoint === '/dev/vdb').resource_id;
    assert.ok(vdb);
    const body = {
      restore: {
        options: f8SelectiveRestoreOptions({
          keep: vm1().id,
          exclude: vm2().id,
          vdisks: [{ id: vdbResource, availability_zone: 'nova', new_volume_type: 'x' }],
          snapshot: { name: net.name, id: net.id, subnet: { id: net.subnet!.id } },
          target,
        }),
      },
    };
    const r = await restore(s3, body);
    assert.equal(r.status, 'available', r.error_msg);
    assert.equal(r.name, 'Tempest_test_restore');
    assert.equal(r.instances.length, 1);
    assert.equal(r.instances[0].name, 'tempest_test_vm_1_restored');
    checkNewInstances(s3, r.instances, [{ from: vm1().id, devices: ['/dev/vdb'] }]);
    const inst = inventory(h).find((i) => i.id === r.instances[0].id)!;
    assert.equal(inst.nics[0]!.network.id, target.id);
    assert.equal(inst.nics[0]!.network.subnet!.id, target.subnet.id);
  });

  test('every remaining snapshot restores by every kind, byte-exact', async () => {
    for (const sid of [s1, s3]) {
      const oc = await restore(sid, oneclick());
      assert.equal(oc.status, 'available', oc.error_msg);
      checkNewInstances(sid, oc.instances, [
        { from: vm1().id, devices: ['/dev/vda', '/dev/vdb'] },
        { from: vm2().id, devices: ['/dev/vda', '/dev/vdb'] },
      ]);
      const sel = await restore(sid, {
        restore: { options: { type: 'openstack', oneclickrestore: false, restore_type: 'selective', openstack: { instances: [{ id: vm2().id, include: true, name: 'sel', vdisks: [] }, { id: vm1().id, include: false }] } } },
      });
      assert.equal(sel.status, 'available', sel.error_msg);
      checkNewInstances(sid, sel.instances, [{ from: vm2().id, devices: ['/dev/vda', '/dev/vdb'] }]);
      for (const vm of [vm1(), vm2()]) for (const d of vm.disks) mutateDisk(d.path, 2);
      const ip = await restore(sid, inplace([vm1(), vm2()].map((v) => ({ id: v.id, include: true, vdisks: [] }))));
      assert.equal(ip.status, 'available', ip.error_msg);
      for (const vm of [vm1(), vm2()]) for (const d of vm.disks) assert.equal(sha256File(d.path), truth.get(sid)!.get(`${vm.id}:${d.device}`));
    }
  });

  test('bad restore options → 400 before any job; snapshot stays available', async () => {
    const before = (await h.api(h.alice, 'GET', '/restores')).json.restores.length;
    const cases: unknown[] = [
      { restore: { options: { type: 'vmware', restore_type: 'oneclick', openstack: {} } } },
      { restore: { options: { type: 'openstack', restore_type: 'sideways', openstack: {} } } },
      { restore: { options: { type: 'openstack', restore_type: 'selective', openstack: {} } } },
      { restore: { options: { type: 'openstack', restore_type: 'selective', openstack: { instances: [{ id: crypto.randomUUID(), include: true }] } } } },
      { restore: { options: { type: 'openstack', restore_type: 'inplace', openstack: { instances: [{ id: vm1().id, include: true, vdisks: [{ id: crypto.randomUUID() }] }] } } } },
      { restore: { options: { type: 'openstack', restore_type: 'selective', openstack: { instances: [{ id: vm1().id, include: false }] } } } },
      { restore: { options: { type: 'openstack', restore_type: 'selective', openstack: { instances: [{ id: vm1().id }], networks_mapping: { networks: [{ snapshot_network: { id: crypto.randomUUID() }, target_network: { id: crypto.randomUUID() } }] } } } } },
      { restore: { options: 'x' } },
      { restores: {} },
      '{nope',
    ];
    for (const body of cases) {
      const r = await h.api(h.alice, 'POST', `/workloads/${wid}/snapshots/${s1}/restores`, body);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.text}`);
      assert.ok(r.json.badRequest.message);
    }
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${s1}`)).json.snapshot.status, 'available');
    assert.equal((await h.api(h.alice, 'GET', '/restores')).json.restores.length, before);
    // foreign project: 404 like a missing snapshot
    const foreign = await h.api(h.bob, 'POST', `/snapshots/${s1}`, oneclick());
    const missing = await h.api(h.bob, 'POST', `/snapshots/${crypto.randomUUID()}`, oneclick());
    assert.equal(foreign.status, 404);
    assert.equal(missing.status, 404);
    assert.equal((await h.api(h.bob, 'GET', '/restores')).json.restores.length, 0);
    assert.equal((await h.api(h.bob, 'GET', `/restores?snapshot_id=${s1}`)).status, 404);
  });

  test('a corrupted chunk fails the affected disk loudly; other disks and snapshots still restore', async () => {
    // A second workload with its own data, snapshotted, to prove other snapshots stay restorable.
    const vm3 = h.vms[2]!;
    const w2 = (await h.api(h.alice, 'POST', '/workloads', { workload: { instances: [{ 'instance-id': vm3.id }] } })).json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${w2}`)).json.workload.status === 'available');
    const w2hash = sha256File(vm3.disks[0]!.path);
    const t = await h.api(h.alice, 'POST', `/workloads/${w2}?full=1`);
    const t2 = t.json.snapshot.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${t2}`)).json.snapshot.status === 'available', 20_000);

    // Flip one byte in the oldest pack (the full snapshot's data), then ask verify what it hit.
    const packsDir = join(h.home, 'target');
    const all: string[] = [];
    const walk = (d: string) => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else all.push(p);
      }
    };
    walk(packsDir);
    const verifyBefore = await h.lb.repo.verify();
    assert.equal(verifyBefore.ok, true);
    const packs = all.filter((p) => p.includes('/packs/')).sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
    assert.ok(packs.length > 0, 'packs exist');
    const victim = packs[0]!;
    const buf = readFileSync(victim);
    buf[Math.floor(buf.length / 3)]! ^= 0xff;
    writeFileSync(victim, buf);
    const v = await h.lb.repo.verify();
    assert.equal(v.ok, false);
    const affected = v.problems.flatMap((p) => p.affected.map((a) => ({ ...a, chunk: p.chunk })));
    const hit = affected.find((a) => a.snapshotId === s1 || a.snapshotId === s3);
    assert.ok(hit, `verify names a snapshot of the workload: ${JSON.stringify(v.problems)}`);
    assert.ok(!affected.some((a) => a.snapshotId === t2), 'the other workload is not affected');
    // the operator command says the same, and fails
    const cli = runLifeboat({ LIFEBOAT_HOME: h.home }, ['repo', 'verify']);
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stdout, new RegExp(`CORRUPT chunk ${hit.chunk}.*snapshot ${hit.snapshotId} disk ${hit.diskKey.replace(/[/]/g, '\\/')}`));

    const r = await restore(hit.snapshotId, oneclick());
    assert.equal(r.status, 'error');
    const [vmId, dev] = hit.diskKey.split(':');
    assert.match(r.error_msg, new RegExp(`disk ${dev} of instance .*\\(${vmId}\\)`));
    assert.match(r.error_msg, new RegExp(String(hit.chunk).slice(0, 16)));
    // the other VM of the snapshot was restored anyway
    assert.equal(r.instances.length, 1);
    assert.notEqual(r.instances[0].id, vmId);
    // a snapshot of other data still restores byte-exact
    const rr = await h.api(h.alice, 'POST', `/workloads/${w2}/snapshots/${t2}/restores`, oneclick());
    assert.equal(rr.status, 202);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/restores/${rr.json.restore.id}`)).json.restore.status !== 'restoring' && (await h.api(h.alice, 'GET', `/restores/${rr.json.restore.id}`)).json.restore.status !== 'executing', 20_000);
    const done = (await h.api(h.alice, 'GET', `/restores/${rr.json.restore.id}`)).json.restore;
    assert.equal(done.status, 'available', done.error_msg);
    const inst = inventory(h).find((i) => i.id === done.instances[0].id)!;
    assert.equal(sha256File(inst.disks[0]!.path), w2hash);
  });
});
