import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { restoreDisk } from '../src/datamover/restore.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import type { Logger } from '../src/lib/logger.js';
import { waitFor } from '../src/lib/testing.js';
import { FileDiskSink } from '../src/platform/disk-io/file-disk.js';
import type { OpenStackPlatform } from '../src/platform/openstack/openstack.platform.js';
import type { OpenStackSession } from '../src/openstack/session.js';
import {
  guestWrite,
  KVM_HOST,
  kvmHostSkip,
  kvmWorkerEnv,
  OIB_DIR,
  OsFixture,
  paddedSha256,
  restoreDone,
  sha256File,
  snapshotOf,
  startOsLifeboat,
  startRestore,
  tokenOf,
  volumeFile,
  workloadBody,
  writeVolume,
  type OsLifeboat,
  type OsProject,
  type OsUser,
} from './openstack.js';

/**
 * Issue 12, acceptance test 1, against the loopback stack (nothing mocked). A workload of three
 * servers: `kvm` booted from a Glance image on the libvirt host with a data volume attached,
 * `bfv` booted from a volume, `nics` with two NICs on two networks (both on the fake-driver
 * host). One Lifeboat, the worker of compute host oib-kvm, reads `kvm` through libvirt (dirty
 * bitmaps) and the other two through the APIs. Full snapshot; guest writes on `kvm`'s root disk
 * and data volume and on `bfv`'s volume; incremental. Then: in-place restore of `kvm`'s data
 * volume, a one-click restore (three new ACTIVE servers equal to the full snapshot byte for
 * byte, on the original networks, groups and flavors; `kvm`'s copy on the libvirt host so its
 * root disk can be read), a selective restore of `bfv` from the incremental onto a new network.
 * Finally no temporary image, volume, snapshot or port of the run is left (listed and compared).
 *
 * The root image carries `hypervisor_type=qemu`: Nova's ImagePropertiesFilter then places the
 * restored copy (whose root image keeps the original's properties) on the libvirt host, whose
 * disk holds real bytes; `os_shutdown_timeout=0` makes Nova's stop of the OS-less guest (in-place
 * restore, delete) immediate instead of waiting 60 s for an ACPI shutdown nobody answers.
 */
const skip = await kvmHostSkip();
const GiB = 1 << 30;
const MiB = 1 << 20;
const KiB = 1024;
type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

let f: OsFixture;
let os: OsLifeboat;
let p1: OsProject;
let owner: OsUser;
let ops: OpenStackSession;
let scratchDir: string;
let net1: { id: string; subnetId: string };
let net2: { id: string; subnetId: string };
let net3: { id: string; subnetId: string };
let sgA: { id: string; name: string };
let sgB: { id: string; name: string };
let flavorKvm: { id: string; name: string };
let flavorSmall: { id: string; name: string };
/** The three source servers and `kvm`'s data volume. */
let kvm: string;
let bfv: string;
let nics: string;
let dataVol: string;
/** `kvm`'s root disk's first 2 MiB as the guest sees them (the image, then guest writes); zeros beyond. */
const rootHead = randomBytes(2 * MiB);

/** Prints the restore's steps as they end, its per-server times once published, and Lifeboat's warnings and errors. */
const stepLog: Logger = {
  info(o, msg) {
    if (msg === 'OpenStack restore published') console.log(`  restore published: ${JSON.stringify(o)}`);
  },
  warn(o, msg) {
    console.log(`  lifeboat warning: ${msg ?? ''} ${JSON.stringify(o)}`);
  },
  error(o, msg) {
    console.log(`  lifeboat error: ${msg ?? ''} ${JSON.stringify(o)}`);
  },
  debug(o, msg) {
    if (msg === 'OpenStack restore step ended') console.log(`    restore step: ${JSON.stringify(o)}`);
  },
  child: () => stepLog,
};

before(async () => {
  if (skip) return;
  f = new OsFixture();
  const t = await f.ownedProject('acc');
  ({ project: p1, owner, ops } = t);
  net1 = await f.network(ops, 'n1', '10.62.1.0/24');
  net2 = await f.network(ops, 'n2', '10.62.2.0/24');
  net3 = await f.network(ops, 'n3', '10.62.3.0/24');
  sgA = await f.securityGroup(ops, 'sga');
  sgB = await f.securityGroup(ops, 'sgb');
  flavorKvm = await f.flavor({ ram: 128, disk: 1, what: 'kvm' });
  flavorSmall = await f.flavor({ ram: 64, disk: 1, what: 'small' });
  const rootImage = await f.image(rootHead, { hypervisor_type: 'qemu', os_shutdown_timeout: '0' });
  const plainImage = await f.image(Buffer.alloc(MiB, 0x3c));
  // The volume first: cleanups run last first, so `kvm` is deleted (freeing it) before it.
  dataVol = await f.volume(ops, 'data');
  f.onCleanup('volume freed by the server delete', () => f.volumeStatus(ops, dataVol, 'available'));
  kvm = (await f.activeServer(ops, { name: 'kvm', imageRef: rootImage, flavorRef: flavorKvm.id, networks: [{ uuid: net1.id }], security_groups: [{ name: sgA.name }], availability_zone: `nova:${KVM_HOST}` })).id;
  await ops.call('compute', 'POST', `/servers/${kvm}/os-volume_attachments`, { json: { volumeAttachment: { volumeId: dataVol } } });
  await f.volumeStatus(ops, dataVol, 'in-use');
  const bootVolume = [{ boot_index: 0, uuid: plainImage, source_type: 'image', destination_type: 'volume', volume_size: 1, delete_on_termination: true }];
  bfv = (await f.activeServer(ops, { name: 'bfv', flavorRef: flavorSmall.id, networks: [{ uuid: net1.id }], security_groups: [{ name: sgB.name }], availability_zone: 'nova:oib-compute', block_device_mapping_v2: bootVolume })).id;
  nics = (await f.activeServer(ops, { name: 'nics', flavorRef: flavorSmall.id, networks: [{ uuid: net1.id }, { uuid: net2.id }], security_groups: [{ name: sgA.name }, { name: sgB.name }], availability_zone: 'nova:oib-compute', block_device_mapping_v2: bootVolume })).id;
  writeVolume(dataVol, 0, 64 * KiB, 0x41);
  writeVolume(dataVol, 700 * MiB, 64 * KiB, 0x42);
  for (const [server, fill] of [[bfv, 0x51], [nics, 0x61]] as const) writeVolume(await rootVolume(server), 300 * MiB, 64 * KiB, fill);
  const worker = kvmWorkerEnv(f.run);
  scratchDir = worker.scratchDir;
  os = await startOsLifeboat(t.svc, worker.env, { log: stepLog });
});

after(async () => {
  if (skip) return;
  await os?.close();
  if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
  assert.deepEqual(await f.cleanup(), []);
});

/** The boot volume of a boot-from-volume server (its only volume). */
async function rootVolume(server: string): Promise<string> {
  const [v, ...more] = (await f.serverOf(server))['os-extended-volumes:volumes_attached'] as { id: string }[];
  assert.ok(v && more.length === 0, `server ${server} has one volume`);
  return v.id;
}

/** Times one step of the run and prints it. */
async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  try {
    return await fn();
  } finally {
    console.log(`  step ${name}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
}

/** sha256 of the root disk of a server on the libvirt host: its qcow2 overlay read as raw (the guest has no OS, so nothing writes it). */
function kvmRootSha(server: string): Promise<string> {
  const out = join(scratchDir, `root-${server}.raw`);
  const r = spawnSync('qemu-img', ['convert', '-U', '-O', 'raw', join(OIB_DIR, 'nova', 'instances-kvm', server, 'disk'), out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`qemu-img convert failed: ${r.stderr}`);
  return sha256File(out).finally(() => rmSync(out, { force: true }));
}

/** Each server's disks at one point in time: device → sha256 (the libvirt root disk as `/dev/vda`). */
async function disksOf(server: string): Promise<Map<string, string>> {
  const m = await f.volumeHashesByDevice(server);
  if (server === kvm) m.set('/dev/vda', paddedSha256(rootHead, GiB));
  return m;
}

interface Listed {
  kind: string;
  id: string;
  name: string;
  project: string;
}

/** Every image, volume, volume snapshot and port in OpenStack (all projects). */
async function listAll(): Promise<Listed[]> {
  const a = f.admin;
  const vols = (await a.call<{ volumes: Json[] }>('volumev3', 'GET', '/volumes/detail?all_tenants=1')).data.volumes;
  const snaps = (await a.call<{ snapshots: Json[] }>('volumev3', 'GET', '/snapshots/detail?all_tenants=1')).data.snapshots;
  const imgs = (await a.call<{ images: Json[] }>('image', 'GET', '/images?limit=1000')).data.images;
  const ports = (await a.call<{ ports: Json[] }>('network', 'GET', '/ports')).data.ports;
  return [
    ...vols.map((v) => ({ kind: 'volume', id: v.id, name: v.name ?? '', project: v['os-vol-tenant-attr:tenant_id'] })),
    ...snaps.map((s) => ({ kind: 'snapshot', id: s.id, name: s.name ?? '', project: s['os-extended-snapshot-attributes:project_id'] })),
    ...imgs.map((i) => ({ kind: 'image', id: i.id, name: i.name ?? '', project: i.owner })),
    ...ports.map((p) => ({ kind: 'port', id: p.id, name: p.name ?? '', project: p.project_id })),
  ];
}

test('acceptance 1: three servers (libvirt image + volume, boot-from-volume, two NICs): full, guest writes, incremental through dirty bitmaps, in-place, one-click and selective restores byte for byte, no temporary left', { skip }, async () => {
  const t0 = Date.now();
  const token = await tokenOf(owner, p1);
  const tokens = () => tokenOf(owner, p1);
  const servers = [kvm, bfv, nics];
  const made = await os.api(token, 'POST', `/v1/${p1.id}/workloads`, workloadBody(servers));
  assert.equal(made.status, 202, JSON.stringify(made.json));
  const wid = made.json.workload.id as string;
  await waitFor(async () => (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.status === 'available', 120_000, 'workload available');
  const trust = await os.api(token, 'POST', `/v1/${p1.id}/trusts`, { trusts: { role_name: 'member', is_cloud_trust: false } });
  assert.equal(trust.status, 200, JSON.stringify(trust.json));
  f.onCleanup('trust', async () => void (await f.admin.call('identity', 'DELETE', `/OS-TRUST/trusts/${trust.json.trust[0].value}`, { expect: [204, 404] })));
  const listedBefore = await listAll();
  const sourceVolumes = [dataVol, await rootVolume(bfv), await rootVolume(nics)];
  const atFull = new Map(await Promise.all(servers.map(async (s) => [s, await disksOf(s)] as const)));

  const full = await step('full snapshot', () => snapshotOf(os, token, p1.id, wid, 'full'));
  assert.equal(full.snap.status, 'available', full.snap.error_msg);
  assert.equal(full.snap.host, KVM_HOST, 'read by the worker of the libvirt host');
  const platform = os.lb.platform as OpenStackPlatform;
  assert.equal(platform.lastBackupStats(kvm)?.mode, 'full', 'the libvirt server is read through libvirt');

  // Guest writes on the libvirt server (root disk and data volume) and on bfv's boot volume.
  guestWrite(kvm, 0, 0x5a, '1M', '64k');
  rootHead.fill(0x5a, MiB, MiB + 64 * KiB);
  guestWrite(kvm, 1, 0xa5, '3M', '64k');
  writeVolume(await rootVolume(bfv), 5 * MiB, 64 * KiB, 0x77);
  const atInc = new Map(await Promise.all(servers.map(async (s) => [s, await disksOf(s)] as const)));
  assert.notDeepEqual(atInc.get(kvm), atFull.get(kvm));
  assert.notDeepEqual(atInc.get(bfv), atFull.get(bfv));

  const inc = await step('incremental snapshot', () => snapshotOf(os, token, p1.id, wid, 'incremental'));
  assert.equal(inc.snap.status, 'available', inc.snap.error_msg);
  assert.equal(inc.snap.snapshot_type, 'incremental');
  assert.deepEqual(platform.lastBackupStats(kvm), { mode: 'incremental', bytesRead: 64 * KiB + GiB }, 'only the dirty 64 KiB of the root disk are read (the raw volume in full)');
  const vdaOut = join(scratchDir, 'inc-vda.raw');
  await restoreDisk({ repo: os.lb.repo, snapshotId: inc.snap.id, diskKey: diskKey(kvm, '/dev/vda'), sink: await FileDiskSink.create(vdaOut, GiB) });
  assert.equal(await sha256File(vdaOut), atInc.get(kvm)!.get('/dev/vda'), 'the incremental holds the root disk with the guest write');
  rmSync(vdaOut);

  // In place: kvm's data volume (changed by the guest since) gets its full-snapshot bytes back, same id.
  const inplace = await step('in-place restore of the data volume', async () => {
    const options = { restore_type: 'inplace', oneclickrestore: false, openstack: { instances: [{ id: kvm, include: true, vdisks: [{ id: dataVol, restore_cinder_volume: true }] }], networks_mapping: { networks: [] } } };
    const r = await startRestore(os, token, p1.id, wid, full.snap.id, options);
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return { id: r.json.restore.id as string, done: await restoreDone(os, tokens, p1.id, wid, full.snap.id, r.json.restore.id) };
  });
  assert.equal(inplace.done.status, 'available', inplace.done.error_msg);
  assert.equal(await sha256File(volumeFile(dataVol)), atFull.get(kvm)!.get('/dev/vdb'), 'the volume equals the full snapshot again');
  assert.equal((await f.serverOf(kvm)).status, 'ACTIVE', 'the server is started again');
  assert.deepEqual((await f.serverOf(kvm))['os-extended-volumes:volumes_attached'].map((v: { id: string }) => v.id), [dataVol], 'the same volume (id kept) is attached again');

  // One-click from the full snapshot: three new servers equal to the sources at that time.
  const one = await step('one-click restore (3 servers)', async () => {
    const r = await startRestore(os, token, p1.id, wid, full.snap.id, { restore_type: 'oneclick', oneclickrestore: 'True', openstack: { instances: [], zone: '' } });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return { id: r.json.restore.id as string, done: await restoreDone(os, tokens, p1.id, wid, full.snap.id, r.json.restore.id) };
  });
  const restoredIds = (one.done.instances as { id: string }[]).map((i) => i.id).filter((id) => !servers.includes(id));
  for (const id of restoredIds) f.restoredServer(id);
  assert.equal(one.done.status, 'available', one.done.error_msg);
  assert.equal(restoredIds.length, 3);
  const expect = new Map([
    [kvm, { flavor: flavorKvm.name, networks: [net1.id], groups: [sgA.id] }],
    [bfv, { flavor: flavorSmall.name, networks: [net1.id], groups: [sgB.id] }],
    [nics, { flavor: flavorSmall.name, networks: [net1.id, net2.id], groups: [sgA.id, sgB.id] }],
  ]);
  const netName = new Map([[net1.id, f.name('n1')], [net2.id, f.name('n2')]]);
  assert.deepEqual(Object.keys((await f.serverOf(nics)).addresses), [f.name('n1'), f.name('n2')], 'the source NIC order (as booted)');
  const restoredOf = new Map<string, string>();
  await step('one-click checks (bytes, networks, groups, flavors)', async () => {
    for (const id of restoredIds) {
      const s = await f.serverOf(id);
      const orig = s.metadata.original_instance_id as string;
      const want = expect.get(orig);
      assert.ok(want, `restored server ${id} names its original ${orig}`);
      restoredOf.set(orig, id);
      assert.equal(s.status, 'ACTIVE');
      assert.equal(s.flavor.original_name, want.flavor);
      assert.deepEqual(Object.keys(s.addresses), want.networks.map((n) => netName.get(n)), `${orig}'s copy has its NICs in the original order`);
      const ports = await f.portsOf(id);
      assert.deepEqual(ports.map((p) => p.network_id).sort(), [...want.networks].sort(), `networks of ${orig}'s copy`);
      for (const p of ports) assert.deepEqual([...p.security_groups].sort(), [...want.groups].sort(), `groups of ${orig}'s copy`);
      const disks = await f.volumeHashesByDevice(id);
      if (orig === kvm) {
        assert.equal(s['OS-EXT-SRV-ATTR:host'], KVM_HOST, 'the image-booted copy runs on the libvirt host (the root image keeps hypervisor_type)');
        disks.set('/dev/vda', await kvmRootSha(id));
      }
      assert.deepEqual(disks, atFull.get(orig), `every disk of ${orig}'s copy equals it at full-snapshot time`);
    }
  });
  assert.equal(restoredOf.size, 3);
  assert.deepEqual(await f.restoreImages(one.id), [], 'no temporary image is left');

  // Selective: bfv from the incremental, its network mapped to a new one.
  const sel = await step('selective restore of bfv onto a new network', async () => {
    const options = {
      restore_type: 'selective',
      oneclickrestore: false,
      openstack: { instances: [{ id: bfv, include: true, name: f.name('sel'), vdisks: [] }], networks_mapping: { networks: [{ snapshot_network: { id: net1.id }, target_network: { id: net3.id, subnet: { id: net3.subnetId } } }] } },
    };
    const r = await startRestore(os, token, p1.id, wid, inc.snap.id, options);
    assert.equal(r.status, 202, JSON.stringify(r.json));
    return { id: r.json.restore.id as string, done: await restoreDone(os, tokens, p1.id, wid, inc.snap.id, r.json.restore.id) };
  });
  const selId = (sel.done.instances as { id: string }[])[0]!.id;
  f.restoredServer(selId);
  assert.equal(sel.done.status, 'available', sel.done.error_msg);
  const ss = await f.serverOf(selId);
  assert.equal(ss.status, 'ACTIVE');
  assert.equal(ss.flavor.original_name, flavorSmall.name);
  const selPorts = await f.portsOf(selId);
  assert.deepEqual(selPorts.map((p) => [p.network_id, p.security_groups]), [[net3.id, [sgB.id]]], 'on the new network with its group');
  assert.deepEqual(await f.volumeHashesByDevice(selId), atInc.get(bfv), 'equal to bfv at incremental time');

  // Nothing temporary is left: every image, volume, snapshot and port of this run now, against
  // before the snapshots, differs only by the restored servers' volumes and ports.
  const restoreIds = [inplace.id, one.id, sel.id];
  const mine = (x: Listed) => x.project === p1.id || (x.name.startsWith('lifeboat-') && [...servers, ...sourceVolumes, ...restoreIds].some((id) => x.name.includes(id.slice(0, 8))));
  const keep = new Set<string>();
  for (const id of [...restoredIds, selId]) {
    for (const p of await f.portsOf(id)) keep.add(p.id);
    for (const v of (await f.serverOf(id))['os-extended-volumes:volumes_attached'] as { id: string }[]) keep.add(v.id);
  }
  const before = new Set(listedBefore.filter(mine).map((x) => x.id));
  const left = (await listAll()).filter((x) => mine(x) && !before.has(x.id) && !keep.has(x.id));
  assert.deepEqual(left, [], 'no temporary image, volume, snapshot or port is left');
  console.log(`  acceptance run: ${((Date.now() - t0) / 1000).toFixed(1)} s (full ${full.ms} ms, incremental ${inc.ms} ms)`);
});
