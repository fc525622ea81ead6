import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restoreDisk } from '../src/datamover/restore.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import { waitFor } from '../src/lib/testing.js';
import { FileDiskSink } from '../src/platform/disk-io/file-disk.js';
import { OsFixture, openstackSkip, pollFor, startOsLifeboat, tokenOf, workloadBody, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * The API-only data path against the loopback stack: a boot-from-volume server with a data
 * volume (fake driver: no Lifeboat worker on its host) is snapshotted through Lifeboat's API;
 * each volume goes snapshot → volume → Glance → local file, the backup equals the volume
 * files byte for byte, and no temporary stays in OpenStack.
 */
const skip = await openstackSkip();
const OIB_DIR = process.env.OIB_DIR ?? '/tmp/oib';
const volumeFile = (id: string) => join(OIB_DIR, 'cinder', 'volumes', `volume-${id}`);

let f: OsFixture;
let os: OsLifeboat;
let p1: OsProject;
let member: OsUser;
let server: string;
let rootVol: string;
let dataVol: string;

/** Writes `len` bytes of `fill` at `offset` into a volume's file (the volume's bytes: README §6). */
function pattern(id: string, offset: number, len: number, fill: number): void {
  const fd = openSync(volumeFile(id), 'r+');
  try {
    writeSync(fd, Buffer.alloc(len, fill), 0, len, offset);
  } finally {
    closeSync(fd);
  }
}

/**
 * The temporaries of this test's own operations only: other runs on the same stack (a developer's,
 * a concurrent suite) have theirs, and they are not this test's to judge. Volume-export temporaries
 * are named after the source volume (`lifeboat-tmp-<volume id prefix>-…`), restore temporaries
 * after the restore (`lifeboat-tmp-restore-<restore id prefix>-…`).
 */
const ownTemporaryPrefixes: string[] = [];
async function temporaries(): Promise<string[]> {
  const q = '?all_tenants=1';
  const vols = (await f.admin.call<{ volumes: { name: string }[] }>('volumev3', 'GET', `/volumes${q}`)).data.volumes;
  const snaps = (await f.admin.call<{ snapshots: { name: string }[] }>('volumev3', 'GET', `/snapshots${q}`)).data.snapshots;
  const imgs = (await f.admin.call<{ images: { name: string }[] }>('image', 'GET', '/images?limit=1000')).data.images;
  const names = [...vols, ...snaps, ...imgs].map((x) => x.name ?? '');
  return names.filter((n) => ownTemporaryPrefixes.some((p) => n.startsWith(p)));
}

before(async () => {
  if (skip) return;
  f = new OsFixture();
  const svc = await f.serviceUser();
  p1 = await f.project('bk');
  member = await f.user('member', p1, ['member']);
  const ops = f.sessionOf(await f.user('ops', p1, ['admin', 'member']), p1);
  const image = await f.image(Buffer.alloc(1 << 20, 0x5a));
  const flavor = await f.flavor();
  const booted = await f.activeServer(ops, {
    name: 'bfv',
    flavorRef: flavor.id,
    networks: 'none',
    availability_zone: 'nova:oib-compute',
    block_device_mapping_v2: [{ boot_index: 0, uuid: image, source_type: 'image', destination_type: 'volume', volume_size: 1, delete_on_termination: true }],
  });
  server = booted.id;
  rootVol = (booted.server['os-extended-volumes:volumes_attached'] as { id: string }[])[0]!.id;
  const vol = await f.create<{ id: string }>(ops, 'volumev3', '/volumes', 'volume', { size: 1, name: f.name('data') }, true);
  dataVol = vol.id;
  await pollFor(async () => (await ops.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${dataVol}`)).data.volume.status === 'available', 300_000, 'data volume');
  await ops.call('compute', 'POST', `/servers/${server}/os-volume_attachments`, { json: { volumeAttachment: { volumeId: dataVol } } });
  f.onCleanup('detach', async () => {
    await ops.call('compute', 'DELETE', `/servers/${server}/os-volume_attachments/${dataVol}`);
    await pollFor(async () => (await ops.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${dataVol}`)).data.volume.status === 'available', 300_000, 'volume detached');
  });
  await pollFor(async () => (await ops.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${dataVol}`)).data.volume.status === 'in-use', 300_000, 'volume in-use');
  pattern(dataVol, 0, 65536, 0x11);
  pattern(dataVol, 100 << 20, 4096, 0x22);
  pattern(dataVol, (1 << 30) - 4096, 4096, 0x33);
  ownTemporaryPrefixes.push(`lifeboat-tmp-${rootVol.slice(0, 8)}-`, `lifeboat-tmp-${dataVol.slice(0, 8)}-`);
  os = await startOsLifeboat(svc);
});

after(async () => {
  if (skip) return;
  await os?.close();
  assert.deepEqual(await f.cleanup(), []);
});

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

test('API-only snapshot of a boot-from-volume server and its restore into a new server: byte for byte, no temporaries left', { skip }, async () => {
  const token = await tokenOf(member, p1);
  const made = await os.api(token, 'POST', `/v1/${p1.id}/workloads`, workloadBody([server]));
  assert.equal(made.status, 202, JSON.stringify(made.json));
  const wid = made.json.workload.id as string;
  await waitFor(async () => (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.status === 'available', 120_000, 'workload available');
  const expected = new Map([
    [rootVol, sha256(volumeFile(rootVol))],
    [dataVol, sha256(volumeFile(dataVol))],
  ]);
  const started = Date.now();
  const r = await os.api(token, 'POST', `/v1/${p1.id}/workloads/${wid}?full=1`, { snapshot: { name: 's1', snapshot_type: 'full' } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const sid = r.json.snapshot.id as string;
  const snap = await pollFor(async () => {
    const x = (await os.api(token, 'GET', `/v1/${p1.id}/snapshots/${sid}`)).json.snapshot;
    return ['available', 'error'].includes(x.status) ? x : null;
  }, 600_000, 'snapshot done');
  assert.equal(snap.status, 'available', snap.error_msg);
  console.log(`API-only full snapshot of 2 × 1 GiB volumes: ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const vdisks = snap.instances[0].vdisks as { volume_id: string; volume_mountpoint: string; volume_size: string; volume_name: string }[];
  assert.deepEqual(vdisks.map((v) => v.volume_id).sort(), [rootVol, dataVol].sort());
  assert.ok(vdisks.every((v) => v.volume_size === '1'));
  assert.ok(vdisks.some((v) => v.volume_name === f.name('data')));
  for (const v of vdisks) {
    const out = join(tmpdir(), `${f.run}-${v.volume_id}.raw`);
    try {
      const sink = await FileDiskSink.create(out, 1 << 30);
      await restoreDisk({ repo: os.lb.repo, snapshotId: sid, diskKey: diskKey(server, v.volume_mountpoint), sink });
      assert.equal(sha256(out), expected.get(v.volume_id), `the backup of ${v.volume_mountpoint} equals volume ${v.volume_id}`);
    } finally {
      rmSync(out, { force: true });
    }
  }
  assert.deepEqual(await temporaries(), [], 'no temporary snapshot, volume or image is left');

  // Selective restore into a new server of the member's project, through the member's trust.
  const trust = await os.api(token, 'POST', `/v1/${p1.id}/trusts`, { trusts: { role_name: 'member', is_cloud_trust: false } });
  assert.equal(trust.status, 200, JSON.stringify(trust.json));
  const trustName = trust.json.trust[0].name as string;
  const restoredName = f.name('restored');
  const rr = await os.api(token, 'POST', `/v1/${p1.id}/workloads/${wid}/snapshots/${sid}/restores`, {
    restore: { options: { type: 'openstack', oneclickrestore: false, restore_type: 'selective', openstack: { instances: [{ id: server, include: true, name: restoredName, vdisks: [] }] } } },
  });
  assert.equal(rr.status, 202, JSON.stringify(rr.json));
  const rid = rr.json.restore.id as string;
  ownTemporaryPrefixes.push(`lifeboat-tmp-restore-${rid.slice(0, 8)}-`);
  const t1 = Date.now();
  const done = await pollFor(async () => {
    const x = (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}/snapshots/${sid}/restores/${rid}`)).json.restore;
    return ['available', 'error'].includes(x.status) ? x : null;
  }, 900_000, 'restore done');
  const newId = (done.instances as { id: string }[])[0]?.id;
  if (newId) registerRestored(newId);
  assert.equal(done.status, 'available', done.error_msg);
  console.log(`API-only restore of 2 × 1 GiB volumes into a new server: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  assert.ok(newId && newId !== server);
  const ns = (await f.admin.call<{ server: Record<string, any> }>('compute', 'GET', `/servers/${newId}`)).data.server; // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(ns.status, 'ACTIVE');
  assert.equal(ns.tenant_id, p1.id);
  assert.equal(ns.name, restoredName);
  const newVols = (ns['os-extended-volumes:volumes_attached'] as { id: string }[]).map((v) => v.id);
  assert.equal(newVols.length, 2);
  assert.deepEqual(newVols.map((v) => sha256(volumeFile(v))).sort(), [...expected.values()].sort(), 'the restored volumes equal the originals at snapshot time');
  assert.deepEqual(await temporaries(), [], 'no temporary image is left after the restore');

  // An unknown availability zone is refused before any work (checked against Nova's zones):
  // a 400 naming the zone, and nothing created.
  const failedName = f.name('refused');
  const bad = await os.api(token, 'POST', `/v1/${p1.id}/workloads/${wid}/snapshots/${sid}/restores`, {
    restore: { options: { type: 'openstack', oneclickrestore: false, restore_type: 'selective', openstack: { instances: [{ id: server, include: true, name: failedName, availability_zone: `${f.run}-no-such-az`, vdisks: [] }] } } },
  });
  assert.equal(bad.status, 400, JSON.stringify(bad.json));
  assert.match(bad.json.badRequest.message, new RegExp(`Invalid availability_zone "${f.run}-no-such-az".*Nova's availability zones are`));
  const vols = (await f.admin.call<{ volumes: { name: string }[] }>('volumev3', 'GET', '/volumes?all_tenants=1')).data.volumes;
  assert.deepEqual(vols.filter((v) => (v.name ?? '').startsWith(failedName)), [], 'the refused restore made no volume');
  assert.deepEqual(await temporaries(), [], 'no temporary image is left after the failed restore');
  assert.equal((await os.api(token, 'DELETE', `/v1/${p1.id}/trusts/${trustName}`)).status, 200);
});

/** The restored server and its volumes are the test's to delete (server first, then its volumes). */
function registerRestored(serverId: string): void {
  f.onCleanup(`restored server ${serverId}`, async () => {
    const s = (await f.admin.call<{ server: { 'os-extended-volumes:volumes_attached': { id: string }[] } }>('compute', 'GET', `/servers/${serverId}`, { expect: [200, 404] })).data?.server;
    const vols = s ? s['os-extended-volumes:volumes_attached'].map((v) => v.id) : [];
    await f.admin.call('compute', 'DELETE', `/servers/${serverId}`, { expect: [204, 404] });
    await pollFor(async () => (await f.admin.call('compute', 'GET', `/servers/${serverId}`, { expect: [200, 404] })).status === 404, 300_000, 'restored server gone');
    for (const v of vols) {
      await pollFor(async () => ['available', 'error'].includes((await f.admin.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${v}`)).data.volume.status), 300_000, 'restored volume detached');
      await f.admin.call('volumev3', 'DELETE', `/volumes/${v}`);
    }
  });
}
