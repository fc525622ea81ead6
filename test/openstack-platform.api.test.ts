import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { Lifeboat } from '../src/app/app.js';
import { waitFor } from '../src/lib/testing.js';
import { OS_PASSWORD, OsFixture, openstackSkip, pollFor, passwordSession, startOsLifeboat, tokenOf, workloadBody, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * LIFEBOAT_PLATFORM=openstack against the loopback stack: tenants' tokens are validated by the
 * real Keystone (policy by their Keystone roles), instances are the Nova servers of the
 * caller's project, and workload create checks existence in the project, membership and state.
 */
const skip = await openstackSkip();

interface World {
  f: OsFixture;
  lb: Lifeboat;
  os: OsLifeboat;
  p1: OsProject;
  p2: OsProject;
  member1: OsUser;
  reader1: OsUser;
  member2: OsUser;
  serverA: string;
  serverB: string;
  serverErr: string;
  volumeId: string;
  imageId: string;
  netId: string;
  sg: { id: string; name: string };
}
let w: World;

before(async () => {
  if (skip) return;
  const f = new OsFixture();
  try {
    const svc = await f.serviceUser();
    const p1 = await f.project('p1');
    const p2 = await f.project('p2');
    const member1 = await f.user('member1', p1, ['member']);
    const reader1 = await f.user('reader1', p1, ['reader']);
    const member2 = await f.user('member2', p2, ['member']);
    // Project admins pin servers to the fake-driver host (forced hosts are admin-only).
    const ops1 = f.sessionOf(await f.user('ops1', p1, ['admin', 'member']), p1);
    const ops2 = f.sessionOf(await f.user('ops2', p2, ['admin', 'member']), p2);
    const imageId = await f.image(Buffer.alloc(1 << 20, 7));
    const flavor = await f.flavor();
    const net = await f.network(ops1, 'net1', '10.91.0.0/24');
    const sg = await f.securityGroup(ops1, 'sg1');
    const fake = { availability_zone: 'nova:oib-compute' };
    const serverA = (await f.activeServer(ops1, { name: 'a', imageRef: imageId, flavorRef: flavor.id, networks: [{ uuid: net.id }], security_groups: [{ name: sg.name }], ...fake })).id;
    const serverB = (await f.activeServer(ops2, { name: 'b', imageRef: imageId, flavorRef: flavor.id, networks: 'none', ...fake })).id;
    const serverErr = (await f.activeServer(ops1, { name: 'err', imageRef: imageId, flavorRef: flavor.id, networks: 'none', ...fake })).id;
    const vol = await f.create<{ id: string }>(ops1, 'volumev3', '/volumes', 'volume', { size: 1, name: f.name('vol1') }, true);
    // A server Nova marks ERROR (an admin's reset-state: deterministic, unlike a failing build).
    await ops1.call('compute', 'POST', `/servers/${serverErr}/action`, { json: { 'os-resetState': { state: 'error' } }, idempotent: true });
    await f.volumeStatus(ops1, vol.id, 'available'); // Nova refuses to attach a volume still `creating`
    await ops1.call('compute', 'POST', `/servers/${serverA}/os-volume_attachments`, { json: { volumeAttachment: { volumeId: vol.id } } });
    f.onCleanup('detach', async () => {
      await ops1.call('compute', 'DELETE', `/servers/${serverA}/os-volume_attachments/${vol.id}`);
      await pollFor(async () => (await ops1.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${vol.id}`)).data.volume.status === 'available', 300_000, 'volume detached');
    });
    await pollFor(async () => (await ops1.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${vol.id}`)).data.volume.status === 'in-use', 300_000, 'volume in-use');

    const policy = join(tmpdir(), `${f.run}-policy.yaml`);
    writeFileSync(policy, '"workload:workload_create": "role:member or role:admin"\n');
    f.onCleanup('policy file', async () => rmSync(policy, { force: true }));
    const os = await startOsLifeboat(svc, { LIFEBOAT_POLICY: policy });
    w = { f, os, lb: os.lb, p1, p2, member1, reader1, member2, serverA, serverB, serverErr, volumeId: vol.id, imageId, netId: net.id, sg };
  } catch (e) {
    await f.cleanup();
    throw e;
  }
});

after(async () => {
  if (!w) return;
  await w.os.close();
  assert.deepEqual(await w.f.cleanup(), []);
});

const api = (token: string | null, method: string, path: string, body?: unknown) => w.os.api(token, method, path, body);

test('tokens are validated by the real Keystone; policy follows Keystone roles', { skip }, async () => {
  const { p1 } = w;
  assert.equal((await api(null, 'GET', `/v1/${p1.id}/workloads`)).status, 401);
  const bad = await api('gAAAAAbogus-token', 'GET', `/v1/${p1.id}/workloads`);
  assert.equal(bad.status, 401);
  assert.match(bad.headers.get('www-authenticate') ?? '', /^Keystone uri="http:\/\/127\.0\.0\.1:5000\/v3"/);
  const member = await tokenOf(w.member1, p1);
  const reader = await tokenOf(w.reader1, p1);
  assert.equal((await api(member, 'GET', `/v1/${p1.id}/workloads`)).status, 200);
  assert.equal((await api(reader, 'GET', `/v1/${p1.id}/workloads`)).status, 200);
  const denied = await api(reader, 'POST', `/v1/${p1.id}/workloads`, workloadBody([w.serverA]));
  assert.equal(denied.status, 403);
  assert.equal(denied.json.forbidden.message, "Policy doesn't allow workload:workload_create to be performed.");
});

test('instances are the Nova servers of the project, described for snapshots', { skip }, async () => {
  const { lb, p1, p2 } = w;
  const mine = await lb.platform.listInstances(p1.id);
  assert.deepEqual(mine.map((i) => i.id).sort(), [w.serverA, w.serverErr].sort());
  assert.equal(await lb.platform.getInstance(p2.id, w.serverA), null, "another project's server is reported as missing");
  assert.equal(await lb.platform.getInstance(p1.id, randomUUID()), null);
  const a = await lb.platform.getInstance(p1.id, w.serverA);
  assert.ok(a);
  assert.equal(a.status, 'ACTIVE');
  assert.equal(a.project_id, p1.id);
  assert.equal(a.availability_zone, 'nova');
  assert.deepEqual({ ...a.flavor, name: undefined }, { vcpus: 1, ram: 128, disk: 1, ephemeral: 0, name: undefined, swap: 0, extra_specs: {} });
  assert.match(a.flavor.name ?? '', /-flavor$/);
  assert.deepEqual(a.security_groups, [w.sg.name]);
  assert.equal(a.nics.length, 1);
  assert.equal(a.nics[0]!.network.id, w.netId);
  assert.equal(a.nics[0]!.network.name, w.f.name('net1'));
  assert.equal(a.nics[0]!.network.subnet?.cidr, '10.91.0.0/24');
  assert.match(a.nics[0]!.ip_address, /^10\.91\.0\.\d+$/);
  // Devices are Nova's own names (the fake driver says sda/sdb, libvirt vda/vdb).
  assert.match(a.disks[0]!.device, /^\/dev\/[sv]da$/);
  assert.match(a.disks[1]!.device, /^\/dev\/[sv]db$/);
  assert.deepEqual(
    a.disks.map((d) => ({ ...d, device: d.device.slice(-1) })),
    [
      { device: 'a', format: 'raw', image_id: w.imageId, image_name: w.f.name('image'), image_properties: {} },
      { device: 'b', format: 'raw', volume_id: w.volumeId, volume_type: '__DEFAULT__', volume_name: w.f.name('vol1'), volume_size: 1, bootable: false, availability_zone: 'nova' },
    ],
  );
});

test('workload create: foreign and missing servers alike, protectable state, one workload per server', { skip }, async () => {
  const { p1, p2 } = w;
  const member = await tokenOf(w.member1, p1);
  const other = await tokenOf(w.member2, p2);
  const foreign = await api(other, 'POST', `/v1/${p2.id}/workloads`, workloadBody([w.serverA]));
  const missingId = randomUUID();
  const missing = await api(other, 'POST', `/v1/${p2.id}/workloads`, workloadBody([missingId]));
  assert.equal(foreign.status, 400);
  assert.equal(missing.status, 400);
  assert.equal(foreign.json.badRequest.message, missing.json.badRequest.message.replace(missingId, w.serverA));
  const err = await api(member, 'POST', `/v1/${p1.id}/workloads`, workloadBody([w.serverErr]));
  assert.equal(err.status, 400);
  assert.match(err.json.badRequest.message, /is ERROR; only ACTIVE, SHUTOFF, PAUSED or SUSPENDED servers can be protected/);
  const made = await api(member, 'POST', `/v1/${p1.id}/workloads`, workloadBody([w.serverA]));
  assert.equal(made.status, 202);
  const id = made.json.workload.id as string;
  const shown = await waitFor(async () => {
    const r = await api(member, 'GET', `/v1/${p1.id}/workloads/${id}`);
    return r.json.workload.status === 'available' ? r.json.workload : null;
  }, 120_000, 'workload available');
  assert.deepEqual(shown.instances.map((i: { id: string; name: string }) => [i.id, i.name]), [[w.serverA, w.f.name('a')]]);
  const again = await api(member, 'POST', `/v1/${p1.id}/workloads`, workloadBody([w.serverA]));
  assert.equal(again.status, 400);
  assert.match(again.json.badRequest.message, /already attached with other workload/);
  // The cloud admin sees it across projects; the member of the other project does not.
  const adminTok = (await passwordSession('admin', OS_PASSWORD, 'admin').tokenInfo()).token;
  const adminProject = (await passwordSession('admin', OS_PASSWORD, 'admin').tokenInfo()).projectId;
  const all = await api(adminTok, 'GET', `/v1/${adminProject}/workloads?all_workloads=1`);
  assert.ok(all.json.workloads.some((x: { id: string }) => x.id === id));
  const theirs = await api(other, 'GET', `/v1/${p2.id}/workloads?all_workloads=1`);
  assert.ok(!theirs.json.workloads.some((x: { id: string }) => x.id === id));
  assert.equal((await api(member, 'DELETE', `/v1/${p1.id}/workloads/${id}`)).status, 202);
});
