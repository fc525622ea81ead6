import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import type { OpenStackSession } from '../src/openstack/session.js';
import { buildExt4Disk } from './fs-images.js';
import { OsFixture, openstackSkip, pollFor, startOsLifeboat, tokenOf, volumeFile, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';
import { mustRun } from './recovery-fixtures.js';

/**
 * The tempest flows of workloadmgr-api §6 that the file-recovery and DR issues made possible
 * (issue 12 acceptance 2: F10, F11, F18), on a real Nova server made through the Nova API on
 * the loopback stack: booted from a Cinder volume that holds a GPT disk with an ext4 file
 * system (built without mounting, written into the volume's backing file). Between snapshots
 * files are added to that file system in place (`debugfs -w` on the backing file: what a guest
 * writing files does to the volume). Snapshots go through the API-only data path.
 *
 * F10: the "File Recovery Manager" VM (`mount_vm_id`) is another server of the project; the
 * vendor attaches the snapshot to it, Lifeboat mounts on its own host (README, file-level
 * recovery) but checks the VM with Nova: a server of another project is refused. F11: searches
 * over the server's snapshots (all, by id, by start/end). F18: the workload goes to another
 * project and user and back. Cleanup: every OpenStack resource made here is deleted (also on
 * failure), and no temporary of the data path is left (acceptance 4, judged on this run's own).
 */
const skip = (await openstackSkip()) || skipUnlessInstalled('sgdisk', 'mkfs.ext4', 'debugfs', 'fuse2fs', 'nbdfuse');
const WORKLOAD_TYPE = '2ddd528d-c9b4-4d7e-8722-cc395140255a';
/** The ext4 partition's start in the disk (fs-images.ts: sgdisk -n 1:2048:0). */
const PARTITION_OFFSET = 2048 * 512;

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

let f: OsFixture;
let os: OsLifeboat;
let p1: OsProject;
let p2: OsProject;
let owner: OsUser;
let other: OsUser;
let ops: OpenStackSession;
let rootVol: string;
let vm1: string;
let fvm: string;
let foreignVm: string;
let work: string;
let wid: string;
/** snap0 (full), snap1 (incremental), oldest first (each export reads the whole 1 GiB volume: minutes on a loaded stack). */
const snaps: string[] = [];

/** Writes a file into the server's ext4 file system, in place in the volume's backing file; checks it reads back. */
async function putFile(path: string, content: string): Promise<void> {
  const local = join(work, 'put');
  writeFileSync(local, content);
  const dev = `${volumeFile(rootVol)}?offset=${PARTITION_OFFSET}`;
  await mustRun('debugfs', ['-w', '-R', `write ${local} ${path}`, dev]);
  assert.equal(await mustRun('debugfs', ['-R', `cat ${path}`, dev]), content, `${path} written into volume ${rootVol}`);
}

before(async () => {
  if (skip) return;
  f = new OsFixture();
  work = mkdtempSync(join(tmpdir(), 'osflows-recovery-'));
  const svc = await f.serviceUser();
  p1 = await f.project('fr');
  p2 = await f.project('fr2');
  owner = await f.user('owner', p1, ['admin', 'member']);
  other = await f.user('other', p2, ['admin', 'member']); // admin: it boots on a named host (forced_host)
  ops = f.sessionOf(owner, p1);
  const flavor = await f.flavor();
  // The server's disk: GPT + ext4 (1 GiB, like the volume), copied into the empty volume's file
  // without its holes (a new volume reads as zeros).
  const disk = join(work, 'disk.raw');
  await buildExt4Disk(disk, 1024, { 'etc/hostname': 'vm1\n', 'opt/README': 'nothing yet\n' });
  rootVol = await f.volume(ops, 'vm1-root');
  await mustRun('dd', [`if=${disk}`, `of=${volumeFile(rootVol)}`, 'bs=1M', 'conv=sparse,notrunc', 'status=none']);
  rmSync(disk);
  await ops.call('volumev3', 'POST', `/volumes/${rootVol}/action`, { json: { 'os-set_bootable': { bootable: true } } });
  vm1 = (
    await f.activeServer(ops, {
      name: 'vm1',
      flavorRef: flavor.id,
      networks: 'none',
      availability_zone: 'nova:oib-compute',
      block_device_mapping_v2: [{ boot_index: 0, uuid: rootVol, source_type: 'volume', destination_type: 'volume', delete_on_termination: false }],
    })
  ).id;
  // The File Recovery Manager VM of F10, and a server of another project (a mount_vm_id refused).
  const small = await f.flavor({ ram: 64, what: 'small' });
  const image = await f.image(Buffer.alloc(65536, 0x46));
  fvm = (await f.activeServer(ops, { name: 'fvm', flavorRef: small.id, networks: 'none', availability_zone: 'nova:oib-compute', imageRef: image })).id;
  foreignVm = (await f.activeServer(f.sessionOf(other, p2), { name: 'foreign', flavorRef: small.id, networks: 'none', availability_zone: 'nova:oib-compute', imageRef: image })).id;
  os = await startOsLifeboat(svc);

  const made = await api('POST', '/workloads', { workload: { name: `tempest${Date.now()}`, workload_type_id: WORKLOAD_TYPE, source_platform: 'openstack', instances: [{ 'instance-id': vm1 }], jobschedule: {}, metadata: {}, description: 'test' } });
  assert.equal(made.status, 202, JSON.stringify(made.json));
  wid = made.json.workload.id as string;
  assert.equal((await until(`/workloads/${wid}`, 'workload', ['available', 'error'], 120_000)).status, 'available');
  // F11's prerequisite: a full, then an incremental after the guest wrote files.
  snaps.push((await snapshot(true)).id as string);
  await putFile('/opt/File_1', 'one\n');
  await putFile('/opt/File_2', 'two\n');
  await putFile('/File_1', 'at the root\n');
  snaps.push((await snapshot(false)).id as string);
});

after(async () => {
  if (skip) return;
  await os?.close();
  rmSync(work, { recursive: true, force: true });
  assert.deepEqual(await f.cleanup(), []);
});

async function api(method: string, path: string, body?: unknown, as: { user: OsUser; project: OsProject } = { user: owner, project: p1 }): Promise<{ status: number; json: Json }> {
  return os.api(await tokenOf(as.user, as.project), method, `/v1/${as.project.id}${path}`, body);
}

async function until(path: string, key: string, states: string[], ms = 1_200_000): Promise<Json> {
  return pollFor(async () => {
    const x = (await api('GET', path)).json[key];
    return states.includes(x.status) ? x : null;
  }, ms, `${path} ${states.join('|')}`);
}

/** F3 with tempest's body; waits until the snapshot and the workload are available. */
async function snapshot(full: boolean): Promise<Json> {
  const r = await api('POST', `/workloads/${wid}${full ? '?full=1' : ''}`, { snapshot: { name: 'Tempest-test-snapshot', description: 'Test', full: 'True' } });
  assert.ok(r.status >= 200 && r.status < 300, JSON.stringify(r.json));
  const s = await until(`/workloads/${wid}/snapshots/${r.json.snapshot.id}`, 'snapshot', ['available', 'error']);
  assert.equal(s.status, 'available', s.error_msg);
  await until(`/workloads/${wid}`, 'workload', ['available']);
  return s;
}

/** F11: starts a search, polls it to its end, returns tempest's count of matches per snapshot index. */
async function search(body: Record<string, unknown>): Promise<Record<number, number>> {
  const r = await api('POST', '/search', { file_search: { end: 0, date_from: '', snapshot_ids: [], start: 0, date_to: '', vm_id: vm1, ...body } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const done = await pollFor(async () => {
    const x = (await api('GET', `/search/${r.json.file_search.id}`)).json.file_search;
    return ['completed', 'error', 'cancelled'].includes(x.status) ? x : null;
  }, 600_000, 'file search');
  assert.equal(done.status, 'completed', done.error_msg);
  const counts: Record<number, number> = {};
  for (const element of JSON.parse(done.json_resp) as Record<string, Record<string, string[]>[] | string>[]) {
    const [sid, fss] = Object.entries(element)[0]!;
    counts[snaps.indexOf(sid)] = Array.isArray(fss) ? fss.reduce((n, fs) => n + Object.values(fs)[0]!.length, 0) : 0;
  }
  return counts;
}

test('F11: file search over the snapshots of a Nova server (ext4 on its Cinder boot volume)', { skip }, async () => {
  assert.deepEqual(await search({ filepath: '/opt/File_1' }), { 0: 0, 1: 1 });
  assert.deepEqual(await search({ filepath: '/opt/File_?' }), { 0: 0, 1: 2 });
  assert.deepEqual(await search({ filepath: '/File_1', snapshot_ids: snaps[1] }), { 1: 1 }, 'snapshot_ids as a bare string: only that one');
  assert.deepEqual(await search({ filepath: '/File_1', start: 1, end: 0 }), { 0: 0 }, 'start=1: all but the newest');
  const none = await api('POST', '/search', { file_search: { filepath: '/x', vm_id: fvm, snapshot_ids: [], start: 0, end: 0, date_from: '', date_to: '' } });
  assert.equal(none.status, 404, 'a server of no workload has no snapshot to search');
});

/** Polls the snapshot through the workload's URL (tempest's poll) until `want`; `avoid` fails it. */
async function pollSnapshot(sid: string, want: string, avoid?: string): Promise<void> {
  await pollFor(async () => {
    const st = (await api('GET', `/workloads/${wid}/snapshots/${sid}`)).json.snapshot.status as string;
    if (avoid) assert.notEqual(st, avoid, `snapshot went back to ${avoid}: the mount failed`);
    return st === want;
  }, 600_000, `snapshot ${sid} ${want}`);
}

const mountBody = (vm: string) => ({ mount: { mount_vm_id: vm, options: {} } });

test('F10: mount / dismount the full, then an incremental, with a File Recovery Manager server of the project', { skip }, async () => {
  const foreign = await api('POST', `/snapshots/${snaps[0]}/mount`, mountBody(foreignVm));
  assert.equal(foreign.status, 400, 'a server of another project is not a recovery VM of this one');
  assert.match(foreign.json.badRequest.message, /is not an instance of this project/);
  assert.equal((await api('GET', `/snapshots/${snaps[0]}`)).json.snapshot.status, 'available', 'nothing changed');
  let partition = '';

  for (const [sid, other, files] of [
    [snaps[0]!, snaps[1]!, ['README']],
    [snaps[1]!, snaps[0]!, ['File_1', 'File_2', 'README']],
  ] as const) {
    const m = await api('POST', `/snapshots/${sid}/mount`, mountBody(fvm));
    assert.equal(m.status, 200, JSON.stringify(m.json));
    await pollSnapshot(sid, 'mounted', 'available');
    const shown = (await api('GET', `/snapshots/${sid}`)).json.snapshot;
    assert.equal(shown.metadata.find((x: Json) => x.key === 'mount_vm_id')?.value, fvm);
    const busy = await api('POST', `/snapshots/${other}/mount`, mountBody(fvm));
    assert.equal(busy.status, 400, 'one snapshot mounted per recovery VM');
    // One directory per file system: the server's root partition (`sda1` or `vda1`: the device Nova gave the boot volume).
    const root = await api('GET', `/snapshots/${sid}/files?path=/`);
    assert.equal(root.status, 200, JSON.stringify(root.json));
    const fsDirs = root.json.files.map((x: Json) => x.name as string);
    assert.equal(fsDirs.length, 1, JSON.stringify(fsDirs));
    assert.match(fsDirs[0], /^[sv]da1$/);
    partition = fsDirs[0];
    const opt = await api('GET', `/snapshots/${sid}/files?path=${encodeURIComponent(`/${partition}/opt`)}`);
    assert.equal(opt.status, 200, JSON.stringify(opt.json));
    assert.deepEqual(opt.json.files.map((x: Json) => x.name).sort(), files);
    const d = await api('POST', `/snapshots/${sid}/dismount`);
    assert.equal(d.status, 200, JSON.stringify(d.json));
    await pollSnapshot(sid, 'available');
  }
  const content = await fetch(`${os.url}/v1/${p1.id}/snapshots/${snaps[1]}/files/content?path=/${partition}/opt/File_1`, { headers: { 'x-auth-token': await tokenOf(owner, p1) } });
  assert.equal(content.status, 400, 'no browsing once dismounted');
  await content.body?.cancel();
});

test('F18: reassign the workload to another project and user, and back', { skip }, async () => {
  const reassign = (user: OsUser, project: OsProject) => api('POST', '/workloads/reasign_workloads', [{ workload_ids: [wid], migrate_cloud: false, old_tenant_ids: [], user_id: user.id, new_tenant_id: project.id }]);
  const r = await reassign(other, p2);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.workloads.reassigned_workloads[0].status, 'available');
  assert.equal(r.json.workloads.reassigned_workloads[0].project_id, p2.id);
  assert.equal((await api('GET', `/workloads/${wid}`)).status, 404, 'gone from the old project');
  const there = await api('GET', `/workloads/${wid}`, undefined, { user: other, project: p2 });
  assert.equal(there.status, 200, JSON.stringify(there.json));
  assert.equal(there.json.workload.user_id, other.id);
  assert.deepEqual((await api('GET', `/snapshots?workload_id=${wid}`, undefined, { user: other, project: p2 })).json.snapshots.map((s: Json) => s.id).sort(), [...snaps].sort(), 'its snapshots went along');
  const unknown = await api('POST', '/workloads/reasign_workloads', [{ workload_ids: [wid], migrate_cloud: false, old_tenant_ids: [], user_id: owner.id, new_tenant_id: p2.id }]);
  assert.equal(unknown.status, 400, 'a user without a role on the new project');

  const back = await reassign(owner, p1);
  assert.equal(back.status, 200, JSON.stringify(back.json));
  assert.equal(back.json.workloads.reassigned_workloads[0].status, 'available');
  assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.project_id, p1.id);

  // F4 delete / F1 cleanup; acceptance 4: no temporary of this run's volume is left.
  for (const sid of snaps) {
    assert.ok((await api('DELETE', `/snapshots/${sid}`)).status < 300);
    await pollFor(async () => (await api('GET', `/snapshots/${sid}`)).status === 404, 300_000, 'snapshot deleted');
    await until(`/workloads/${wid}`, 'workload', ['available']);
  }
  assert.equal((await api('DELETE', `/workloads/${wid}`)).status, 202);
  const prefix = `lifeboat-tmp-${rootVol.slice(0, 8)}-`;
  const cinderSnaps = (await f.admin.call<{ snapshots: { volume_id: string }[] }>('volumev3', 'GET', '/snapshots?all_tenants=1')).data.snapshots;
  const vols = (await f.admin.call<{ volumes: { name: string | null }[] }>('volumev3', 'GET', '/volumes?all_tenants=1')).data.volumes;
  const imgs = (await f.admin.call<{ images: { name: string | null }[] }>('image', 'GET', '/images?limit=1000')).data.images;
  assert.deepEqual(
    [...cinderSnaps.filter((s) => s.volume_id === rootVol), ...vols.filter((v) => (v.name ?? '').startsWith(prefix)), ...imgs.filter((i) => (i.name ?? '').startsWith(prefix))],
    [],
    'no temporary snapshot, volume or image of the data path',
  );
});
