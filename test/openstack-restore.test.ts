import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { waitFor } from '../src/lib/testing.js';
import { OpenStackApi } from '../src/openstack/api.js';
import type { OpenStackSession } from '../src/openstack/session.js';
import { imageTag, PENDING_KEY, portName } from '../src/platform/openstack/restore-resources.js';
import type { OpenStackPlatform } from '../src/platform/openstack/openstack.platform.js';
import { DETACHED_KEY } from '../src/platform/openstack/restore-inplace.js';
import { OsFixture, openstackSkip, restoreDone as restoreDoneOf, startRestore, volumeFile, writeVolume, pollFor, startOsLifeboat, tokenOf, workloadBody, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * Issue 12's restores against the loopback stack, through Lifeboat's API. A boot-from-volume
 * server with a data volume, two NICs, a security group, a key pair and a flavor with extra
 * specs is snapshotted (API-only path); the snapshot records what a restore needs. Then the
 * server and its flavor are deleted and a one-click restore recreates it: volumes byte for
 * byte at their device names, the flavor with the same specs, ports on both networks with
 * the group, the key pair. A deleted network makes a one-click restore a 400 naming it and how
 * to map it; a selective restore maps it (an unknown target is a 400 before any work) and
 * leaves the server stopped. Finally the reconciler's cleanup of a killed restore removes
 * exactly what that restore left.
 */
const skip = await openstackSkip();
const sha256 = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

let f: OsFixture;
let os: OsLifeboat;
let p1: OsProject;
let owner: OsUser;
let ops: OpenStackSession;
let net1: { id: string; subnetId: string };
let net2: { id: string; subnetId: string };
let net3: { id: string; subnetId: string };
let group: { id: string; name: string };
let flavor: { id: string; name: string };
let keyName: string;
let server: string;
let dataVol: string;
/** A volume type private to p1 (Cinder type access), the data volume's. */
let privateType: { id: string; name: string };

before(async () => {
  if (skip) return;
  f = new OsFixture();
  const t = await f.ownedProject('rs');
  ({ project: p1, owner, ops } = t);
  net1 = await f.network(ops, 'n1', '10.61.1.0/24');
  net2 = await f.network(ops, 'n2', '10.61.2.0/24');
  net3 = await f.network(ops, 'n3', '10.61.3.0/24');
  group = await f.securityGroup(ops, 'sg');
  keyName = f.name('key');
  await ops.call('compute', 'POST', '/os-keypairs', { json: { keypair: { name: keyName } } });
  f.onCleanup('key pair', async () => void (await ops.call('compute', 'DELETE', `/os-keypairs/${keyName}`, { expect: [202, 204, 404] })));
  flavor = await f.flavor();
  await f.admin.call('compute', 'POST', `/flavors/${flavor.id}/os-extra_specs`, { json: { extra_specs: { 'lbt:run': f.run } } });
  // The restore recreates the deleted flavor under its name: that one is the test's to delete too.
  f.onCleanup('recreated flavor', async () => {
    const all = (await f.admin.call<{ flavors: { id: string; name: string }[] }>('compute', 'GET', '/flavors/detail?is_public=None')).data.flavors;
    for (const x of all.filter((x) => x.name === flavor.name)) await f.admin.call('compute', 'DELETE', `/flavors/${x.id}`, { expect: [202, 404] });
  });
  const image = await f.image(Buffer.alloc(1 << 20, 0x3c));
  const booted = await f.activeServer(ops, {
    name: 'src',
    flavorRef: flavor.id,
    key_name: keyName,
    networks: [{ uuid: net1.id }, { uuid: net2.id }],
    security_groups: [{ name: group.name }],
    availability_zone: 'nova:oib-compute',
    block_device_mapping_v2: [{ boot_index: 0, uuid: image, source_type: 'image', destination_type: 'volume', volume_size: 1, delete_on_termination: true }],
  });
  server = booted.id;
  // Registered before any volume of it, so it is deleted after them (cleanups run last first);
  // Cinder refuses while a volume of the type is still being deleted.
  privateType = (await f.admin.call<{ volume_type: { id: string; name: string } }>('volumev3', 'POST', '/types', { json: { volume_type: { name: f.name('private-vt'), 'os-volume-type-access:is_public': false } } })).data.volume_type;
  f.onCleanup('private volume type', async () => {
    await pollFor(async () => (await f.admin.call('volumev3', 'DELETE', `/types/${privateType.id}`, { expect: [202, 400, 404] })).status !== 400, 300_000, 'the private volume type to be unused');
  });
  await typeAccess('addProjectAccess');
  dataVol = await f.volume(ops, 'data', { size: 1, volume_type: privateType.name });
  await ops.call('compute', 'POST', `/servers/${server}/os-volume_attachments`, { json: { volumeAttachment: { volumeId: dataVol } } });
  await f.volumeStatus(ops, dataVol, 'in-use');
  f.onCleanup('detach the data volume (if the original still exists)', async () => {
    if ((await ops.call('compute', 'DELETE', `/servers/${server}/os-volume_attachments/${dataVol}`, { expect: [202, 404] })).status === 202) await f.volumeStatus(ops, dataVol, 'available');
  });
  writeVolume(dataVol, 0, 65536, 0x41);
  writeVolume(dataVol, 300 << 20, 65536, 0x42);
  os = await startOsLifeboat(t.svc);
});

after(async () => {
  if (skip) return;
  await os?.close();
  assert.deepEqual(await f.cleanup(), []);
});

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const restore = (token: string, wid: string, sid: string, options: Record<string, unknown>) => startRestore(os, token, p1.id, wid, sid, options);

async function restoreDone(wid: string, sid: string, rid: string): Promise<Json> {
  const done = await restoreDoneOf(os, () => tokenOf(owner, p1), p1.id, wid, sid, rid);
  for (const i of done.instances as { id: string }[]) if (i.id !== server) f.restoredServer(i.id);
  return done;
}

const serverOf = (id: string) => f.serverOf(id);
const volumesByDevice = (id: string) => f.volumeHashesByDevice(id);
const portsOf = (id: string) => f.portsOf(id);
const restoreImages = (rid: string) => f.restoreImages(rid);

async function typeAccess(action: 'addProjectAccess' | 'removeProjectAccess'): Promise<void> {
  await f.admin.call('volumev3', 'POST', `/types/${privateType.id}/action`, { json: { [action]: { project: p1.id } }, expect: [202] });
}

/** device → [volume type, availability zone] of the volume attached there. */
async function volumeTypesByDevice(id: string): Promise<Map<string, [string, string]>> {
  const atts = (await f.admin.call<{ volumeAttachments: { device: string; volumeId: string }[] }>('compute', 'GET', `/servers/${id}/os-volume_attachments`)).data.volumeAttachments;
  const vols = await Promise.all(atts.map(async (a) => (await f.admin.call<{ volume: { volume_type: string; availability_zone: string } }>('volumev3', 'GET', `/volumes/${a.volumeId}`)).data.volume));
  return new Map(atts.map((a, i) => [a.device, [vols[i]!.volume_type, vols[i]!.availability_zone]]));
}

test('one-click restore recreates the server; a deleted network is a 400 naming it; a selective restore maps it and leaves the copy stopped', { skip }, async () => {
  const token = await tokenOf(owner, p1);
  const made = await os.api(token, 'POST', `/v1/${p1.id}/workloads`, workloadBody([server]));
  assert.equal(made.status, 202, JSON.stringify(made.json));
  const wid = made.json.workload.id as string;
  await waitFor(async () => (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.status === 'available', 120_000, 'workload available');
  const before = await volumesByDevice(server);
  const typesBefore = await volumeTypesByDevice(server);
  assert.ok([...typesBefore.values()].some(([t]) => t === privateType.name), JSON.stringify([...typesBefore]));
  const r = await os.api(token, 'POST', `/v1/${p1.id}/workloads/${wid}?full=1`, { snapshot: { name: 's1', full: 'True' } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const sid = r.json.snapshot.id as string;
  const snap = await pollFor(async () => {
    const x = (await os.api(token, 'GET', `/v1/${p1.id}/snapshots/${sid}`)).json.snapshot;
    return ['available', 'error'].includes(x.status) ? x : null;
  }, 900_000, 'snapshot');
  assert.equal(snap.status, 'available', snap.error_msg);

  // What discovery recorded for the restore (issue 12 item 2).
  const si = snap.instances[0];
  assert.equal(si.flavor.name, flavor.name);
  assert.deepEqual(si.flavor.extra_specs, { 'lbt:run': f.run });
  assert.equal(JSON.parse(si.metadata.vm_metadata).key_name, keyName);
  assert.equal(JSON.parse(si.metadata.vm_metadata).root_device_name, (await serverOf(server))['OS-EXT-SRV-ATTR:root_device_name'], 'the boot disk is recorded');
  const sg = si.security_group.find((g: Json) => g.name === group.name);
  assert.equal(sg.id, group.id);
  assert.ok(sg.rules.some((x: Json) => x.direction === 'ingress' && x.protocol === 'tcp' && x.port_range_min === 22), JSON.stringify(sg.rules));
  assert.ok(si.vdisks.every((v: Json) => v.volume_id && v.availability_zone === 'nova'));
  assert.deepEqual(new Set(si.nics.map((n: Json) => n.network.id)), new Set([net1.id, net2.id]));

  const trust = await os.api(token, 'POST', `/v1/${p1.id}/trusts`, { trusts: { role_name: 'member', is_cloud_trust: false } });
  assert.equal(trust.status, 200, JSON.stringify(trust.json));
  f.onCleanup('trust', async () => void (await f.admin.call('identity', 'DELETE', `/OS-TRUST/trusts/${trust.json.trust[0].value}`, { expect: [204, 404] })));

  // In place (F9): the data volume and the boot volume changed since the snapshot are rewritten,
  // keeping their ids and devices (the boot volume by a Nova rebuild, 2.93); the running
  // server is stopped for it and started again.
  const bootVol = (await f.admin.call<{ volumeAttachments: { device: string; volumeId: string }[] }>('compute', 'GET', `/servers/${server}/os-volume_attachments`)).data.volumeAttachments.find((a) => a.volumeId !== dataVol)!.volumeId;
  writeVolume(dataVol, 0, 65536, 0x99);
  writeVolume(bootVol, 4096, 65536, 0x98);
  assert.notDeepEqual(await volumesByDevice(server), before);
  const inplace = (vdisks: Json[]) => ({ restore_type: 'inplace', oneclickrestore: false, openstack: { instances: [{ id: server, include: true, vdisks }], networks_mapping: { networks: [] } } });
  const t0 = Date.now();
  const ip = await restore(token, wid, sid, inplace([]));
  assert.equal(ip.status, 202, JSON.stringify(ip.json));
  const ipDone = await restoreDone(wid, sid, ip.json.restore.id);
  assert.equal(ipDone.status, 'available', ipDone.error_msg);
  console.log(`in-place restore of a 1 GiB data volume and a 1 GiB boot volume: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const after = await serverOf(server);
  assert.equal(after.status, 'ACTIVE', 'started again');
  assert.equal(after.key_name, keyName, 'the rebuilt server keeps its key pair');
  assert.deepEqual(await volumesByDevice(server), before, 'each volume equals the snapshot again at the same device');
  const atts = (await f.admin.call<{ volumeAttachments: { device: string; volumeId: string }[] }>('compute', 'GET', `/servers/${server}/os-volume_attachments`)).data.volumeAttachments;
  assert.deepEqual(new Set(atts.map((a) => a.volumeId)), new Set([dataVol, bootVol]), 'the same volumes (ids kept) are attached again');
  assert.deepEqual(await restoreImages(ip.json.restore.id), []);

  // The originals go (tempest deletes the VM before a one-click restore); the flavor too.
  await ops.call('compute', 'DELETE', `/servers/${server}`);
  await pollFor(async () => (await ops.call('compute', 'GET', `/servers/${server}`, { expect: [200, 404] })).status === 404, 300_000, 'original gone');
  await f.admin.call('compute', 'DELETE', `/flavors/${flavor.id}`);

  // The data volume's type is no longer the project's: a one-click restore, which reuses each
  // volume's type, is refused before any work, naming the volume and the option that maps it.
  await typeAccess('removeProjectAccess');
  const noType = await restore(token, wid, sid, { restore_type: 'oneclick', oneclickrestore: 'True', openstack: { instances: [], zone: '' } });
  assert.equal(noType.status, 400, JSON.stringify(noType.json));
  assert.match(noType.json.badRequest.message, new RegExp(`Volume type "${privateType.name}" of volume .*${dataVol}.* is no longer a volume type of project ${p1.id}; restore selectively with the disk's vdisks new_volume_type`));
  assert.equal((await os.api(token, 'GET', `/v1/${p1.id}/snapshots/${sid}`)).json.snapshot.status, 'available', 'the refused restore changed nothing');
  await typeAccess('addProjectAccess');

  const t1 = Date.now();
  const one = await restore(token, wid, sid, { restore_type: 'oneclick', oneclickrestore: 'True', openstack: { instances: [], zone: '' } });
  assert.equal(one.status, 202, JSON.stringify(one.json));
  const oneDone = await restoreDone(wid, sid, one.json.restore.id);
  assert.equal(oneDone.status, 'available', oneDone.error_msg);
  console.log(`one-click restore of 2 × 1 GiB volumes, two NICs: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  const newId = oneDone.instances[0].id as string;
  assert.notEqual(newId, server);
  const ns = await serverOf(newId);
  assert.equal(ns.status, 'ACTIVE');
  assert.equal(ns['OS-EXT-SRV-ATTR:root_device_name'], JSON.parse(si.metadata.vm_metadata).root_device_name, 'it boots from the copy of the boot volume');
  assert.equal(ns.key_name, keyName);
  assert.equal(ns.flavor.original_name, flavor.name, 'the deleted flavor is recreated under its name');
  assert.deepEqual(ns.flavor.extra_specs, { 'lbt:run': f.run });
  assert.equal(ns.metadata[PENDING_KEY], undefined, 'published: no pending mark');
  // Device names are asked for as the original's; Nova's libvirt driver picks its own (Nova may
  // place the new server on either compute host), so contents and types are compared as sets.
  const sorted = <T,>(m: Map<string, T>) => [...m.values()].map((v) => JSON.stringify(v)).sort();
  assert.deepEqual(sorted(await volumesByDevice(newId)), sorted(before), 'each volume equals an original at snapshot time');
  assert.deepEqual(sorted(await volumeTypesByDevice(newId)), sorted(typesBefore), 'each new volume has its original volume type and zone');
  const ports = await portsOf(newId);
  assert.deepEqual(new Set(ports.map((p) => p.network_id)), new Set([net1.id, net2.id]));
  assert.ok(ports.every((p) => p.security_groups.includes(group.id)));
  assert.deepEqual(await restoreImages(one.json.restore.id), [], 'no temporary image is left');
  assert.deepEqual((await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.instances.map((i: Json) => i.id), [newId]);

  // net2 is deleted: a one-click restore cannot plug into it.
  await f.deleteRestored(newId);
  for (const p of (await f.admin.call<{ ports: { id: string }[] }>('network', 'GET', `/ports?network_id=${net2.id}`)).data.ports) await f.admin.call('network', 'DELETE', `/ports/${p.id}`, { expect: [204, 404] });
  await ops.call('network', 'DELETE', `/networks/${net2.id}`);
  const refused = await restore(token, wid, sid, { restore_type: 'oneclick', oneclickrestore: 'True', openstack: { instances: [], zone: '' } });
  assert.equal(refused.status, 400, JSON.stringify(refused.json));
  assert.match(refused.json.badRequest.message, new RegExp(`Network ${f.name('n2')} \\(${net2.id}\\) of instance .* no longer exists; restore selectively with networks_mapping`));

  const mapping = (target: string, subnet: string) => ({ networks: [{ snapshot_network: { id: net2.id }, target_network: { id: target, subnet: { id: subnet } } }] });
  const selective = (nm: Json) => ({ restore_type: 'selective', oneclickrestore: false, power_on: false, openstack: { instances: [{ id: server, include: true, name: f.name('sel'), vdisks: [] }], networks_mapping: nm } });
  const unknown = await restore(token, wid, sid, selective(mapping(randomUUID(), net3.subnetId)));
  assert.equal(unknown.status, 400, JSON.stringify(unknown.json));
  assert.match(unknown.json.badRequest.message, /Invalid networks_mapping: target network .* does not exist/);
  const wrongSubnet = await restore(token, wid, sid, selective(mapping(net3.id, net1.subnetId)));
  assert.equal(wrongSubnet.status, 400, JSON.stringify(wrongSubnet.json));

  const sel = await restore(token, wid, sid, selective(mapping(net3.id, net3.subnetId)));
  assert.equal(sel.status, 202, JSON.stringify(sel.json));
  const selDone = await restoreDone(wid, sid, sel.json.restore.id);
  assert.equal(selDone.status, 'available', selDone.error_msg);
  const selId = selDone.instances[0].id as string;
  const ss = await serverOf(selId);
  assert.equal(ss.status, 'SHUTOFF', 'power_on false: restored but not started');
  assert.equal(ss.name, f.name('sel'));
  assert.deepEqual(new Set((await portsOf(selId)).map((p) => p.network_id)), new Set([net1.id, net3.id]));
  assert.deepEqual(sorted(await volumesByDevice(selId)), sorted(before));
  assert.deepEqual(await restoreImages(sel.json.restore.id), []);
});

test('crash cleanup: the reconciler removes what a killed restore left (marked servers and volumes, its ports and images), never a published resource', { skip }, async () => {
  const platform = os.lb.platform as OpenStackPlatform;
  const rid = randomUUID();
  const api = new OpenStackApi(ops);
  const leftVol = await api.createVolume({ size: 1, name: f.name('left'), metadata: { [PENDING_KEY]: rid } });
  f.onCleanup('left volume (if the cleanup under test failed)', async () => void (await ops.call('volumev3', 'DELETE', `/volumes/${leftVol.id}`, { expect: [202, 404] })));
  const keptVol = { id: await f.volume(ops, 'kept', { size: 1, metadata: { other: rid } }) };
  const leftPort = (await ops.call<{ port: { id: string } }>('network', 'POST', '/ports', { json: { port: { name: portName({ restoreId: rid }), network_id: net1.id } } })).data.port.id;
  const img = (await ops.call<{ id: string }>('image', 'POST', '/images', { json: { name: f.name('left-img'), disk_format: 'raw', container_format: 'bare', tags: [imageTag({ restoreId: rid })] } })).data.id;
  f.onCleanup('left port and image (if the cleanup under test failed)', async () => {
    await ops.call('network', 'DELETE', `/ports/${leftPort}`, { expect: [204, 404] });
    await ops.call('image', 'DELETE', `/images/${img}`, { expect: [204, 404] });
  });
  const small = await f.flavor({ ram: 64, what: 'small' });
  const leftServer = await f.activeServer(ops, { name: 'left', flavorRef: small.id, networks: 'none', availability_zone: 'nova:oib-compute', imageRef: (await f.image(Buffer.alloc(65536, 1))), metadata: { [PENDING_KEY]: rid } });
  // An in-place restore died with a data volume of a (published, unmarked) server detached.
  const victim = await f.activeServer(ops, { name: 'victim', flavorRef: small.id, networks: 'none', availability_zone: 'nova:oib-compute', imageRef: await f.image(Buffer.alloc(65536, 2)) });
  const detached = { id: await f.volume(ops, 'detached', { size: 1, metadata: { [DETACHED_KEY]: `${rid} ${victim.id} /dev/vdb` } }) };
  f.onCleanup('detach victim volume', async () => {
    await ops.call('compute', 'DELETE', `/servers/${victim.id}/os-volume_attachments/${detached.id}`, { expect: [202, 404] });
    await pollFor(async () => ['available', undefined].includes((await api.getVolume(detached.id))?.status), 300_000, 'victim volume detached');
  });
  await f.volumeStatus(ops, leftVol.id, 'available');
  await f.volumeStatus(ops, keptVol.id, 'available');
  await f.volumeStatus(ops, detached.id, 'available');

  await platform.cleanupRestore(p1.id, { restoreId: rid }, []);
  assert.equal((await ops.call('compute', 'GET', `/servers/${leftServer.id}`, { expect: [200, 404] })).status, 404);
  assert.equal(await api.getVolume(leftVol.id), null);
  assert.equal((await ops.call('network', 'GET', `/ports/${leftPort}`, { expect: [200, 404] })).status, 404);
  assert.equal(await api.getImage(img), null);
  assert.equal((await api.getVolume(keptVol.id))?.status, 'available', 'an unmarked volume is not touched');
  const again = await api.getVolume(detached.id);
  assert.equal(again?.attachments[0]?.server_id, victim.id, 'the detached volume is attached again (Nova picks the device name)');
  assert.equal(again?.metadata?.[DETACHED_KEY], undefined, 'and unmarked');
  await platform.cleanupRestore(p1.id, { restoreId: rid }, []); // idempotent
});

test('an image-booted original: the root disk comes back as a Glance image the new server boots from (removed once ACTIVE), a data volume at its device', { skip }, async () => {
  const platform = os.lb.platform as OpenStackPlatform;
  const trust = await os.api(await tokenOf(owner, p1), 'POST', `/v1/${p1.id}/trusts`, { trusts: { role_name: 'member', is_cloud_trust: false } });
  assert.equal(trust.status, 200, JSON.stringify(trust.json));
  f.onCleanup('trust', async () => void (await f.admin.call('identity', 'DELETE', `/OS-TRUST/trusts/${trust.json.trust[0].value}`, { expect: [204, 404] })));
  const rid = randomUUID();
  const MiB = 1 << 20;
  const prepared = await platform.createInstance(
    p1.id,
    {
      name: f.name('imgroot'),
      availability_zone: 'nova',
      flavor: { vcpus: 1, ram: 64, disk: 1, ephemeral: 0, name: f.name('small') },
      security_groups: [],
      nics: [{ mac_address: '', ip_address: '', network: { id: net1.id, name: f.name('n1') } }],
      metadata: {},
      disks: [
        { device: '/dev/vda', format: 'raw', size: 64 * MiB, image_backed: true, image_properties: { hw_qemu_guest_agent: 'yes' } },
        { device: '/dev/vdb', format: 'raw', size: 1 << 30 },
      ],
    },
    { restoreId: rid },
  );
  await prepared.sinks.get('/dev/vda')!.write(Buffer.alloc(MiB, 0x61), 0);
  await prepared.sinks.get('/dev/vdb')!.write(Buffer.alloc(MiB, 0x62), 5 * MiB);
  for (const s of prepared.sinks.values()) await s.commit();
  const inst = await prepared.publish();
  f.restoredServer(inst.id);
  const s = await serverOf(inst.id);
  assert.equal(s.status, 'ACTIVE');
  assert.ok(s.image?.id, 'booted from an image');
  assert.equal((await f.admin.call('image', 'GET', `/images/${s.image.id}`, { expect: [200, 404] })).status, 404, 'the temporary root image is removed');
  const atts = (await f.admin.call<{ volumeAttachments: { device: string; volumeId: string }[] }>('compute', 'GET', `/servers/${inst.id}/os-volume_attachments`)).data.volumeAttachments;
  assert.deepEqual(atts.map((a) => a.device), ['/dev/vdb']);
  const want = Buffer.alloc(1 << 30);
  want.fill(0x62, 5 * MiB, 6 * MiB);
  assert.equal(sha256(volumeFile(atts[0]!.volumeId)), createHash('sha256').update(want).digest('hex'));
  assert.deepEqual(await restoreImages(rid), []);
  // In place, an image-backed root disk cannot be rewritten through the APIs: refused before any work.
  // (The root's device name is the compute host's: /dev/vda under libvirt, /dev/sda under the fake driver.)
  const root = s['OS-EXT-SRV-ATTR:root_device_name'] as string;
  const rootInPlace = { kind: 'inplace' as const, instances: [{ id: inst.id, name: '', availability_zone: 'nova', devices: [root], networkMap: {} }] };
  await assert.rejects(platform.checkRestore(p1.id, rootInPlace, {} as never), new RegExp(`Disk ${root} of server .* is an image-backed local disk`));
});
