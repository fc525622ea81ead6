import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { fuseMountsUnder, processesTagged } from '../src/recovery/mounts.js';
import { startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { buildExt4Disk, buildLvmXfsDisk, guestfsEnv } from './fs-images.js';
import { pseudoRandom } from './recovery-fixtures.js';

/**
 * File-level recovery over HTTP (F10 mount/dismount; browse; download): real disks (GPT + ext4,
 * GPT + LVM + XFS), real snapshots, served over NBD from the repository to a real libguestfs
 * appliance (TCG), mounted with FUSE on this host. Timings are printed, never asserted.
 * The service has two directory targets and the workload uses the one that is NOT the default
 * (backup_target_types), so mounts and searches must read each snapshot from its own target.
 */
const MOUNT_WAIT = 600_000; // a TCG appliance launch on a loaded 2-core box

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

describe('snapshot mount, browse and download', { skip: skipUnlessInstalled('guestfish', 'sgdisk', 'mkfs.ext4', 'fusermount3') }, () => {
  let h: Harness;
  let targets = '';
  let wid = '';
  let s1 = '';
  let s2 = '';
  const file1 = pseudoRandom(3_000_000, 'file-1');
  const file1b = pseudoRandom(5_000_000, 'file-1b');
  const big = pseudoRandom(40 << 20, 'big');
  const xfsFile = pseudoRandom(1_234_567, 'xfs');
  const xfsFile2 = pseudoRandom(2_345_678, 'xfs-2');
  const vm = () => h.vms[0]!;

  before(async () => {
    targets = mkdtempSync(join(tmpdir(), 'lifeboat-fr-targets-'));
    h = await startHarness({ env: { LIFEBOAT_APPLIANCE_TCG: '1', LIFEBOAT_TARGETS: `main=file://${join(targets, 'main')};second=file://${join(targets, 'second')}` } });
    await buildExt4Disk(vm().disks[0]!.path, 128, {
      'etc/hosts': '127.0.0.1 localhost\n',
      'opt/File_1': file1,
      'opt/big.bin': big,
      'home/u/link-out': { symlink: '/etc/hosts' },
      'home/u/dotdot': { symlink: '../../..' },
    });
    await buildLvmXfsDisk(vm().disks[1]!.path, { 'data/report.txt': xfsFile }, guestfsEnv());
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'frm', instances: [{ 'instance-id': vm().id }], backup_target_types: 'second' } });
    assert.equal(r.status, 202, r.text);
    wid = r.json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
    s1 = (await takeSnapshotAndWait(h, h.alice, wid, true, 300_000)).id;
    await buildExt4Disk(vm().disks[0]!.path, 128, { 'etc/hosts': '127.0.0.1 changed\n', 'opt/File_1': file1b });
    await buildLvmXfsDisk(vm().disks[1]!.path, { 'data/report.txt': xfsFile2 }, guestfsEnv()); // same VG name and LV in both snapshots
    s2 = (await takeSnapshotAndWait(h, h.alice, wid, false, 300_000)).id;
    for (const sid of [s1, s2]) {
      assert.ok(existsSync(join(targets, 'second', 'manifests', `${sid}.json`)), 'the snapshot is on its own target');
      assert.ok(!existsSync(join(targets, 'main', 'manifests', `${sid}.json`)), 'and not on the default one');
    }
  });
  after(async () => {
    await h?.close();
    if (targets) rmSync(targets, { recursive: true, force: true });
  });

  const status = async (sid: string) => (await h.api(h.alice, 'GET', `/workloads/${wid}/snapshots/${sid}`)).json.snapshot.status as string;

  test('F10: mount → mounted, browse, download byte-exact, range, tar, refusals, dismount → available', async () => {
    const t0 = Date.now();
    const recoveryVm = h.vms[2]!.id; // vm-a3: an instance of alice's project
    const m = await h.api(h.alice, 'POST', `/snapshots/${s1}/mount`, { mount: { mount_vm_id: recoveryVm, options: {} } });
    assert.equal(m.status, 200, m.text);
    assert.equal(m.text, '');
    await waitFor(async () => {
      const s = await status(s1);
      assert.notEqual(s, 'available', 'the mount failed (snapshot went back to available)');
      return s === 'mounted';
    }, MOUNT_WAIT, 'snapshot mounted');
    const root = await h.api(h.alice, 'GET', `/snapshots/${s1}/files?path=/`);
    const tMounted = Date.now() - t0;
    assert.equal(root.status, 200, root.text);
    const names = root.json.files.map((f: { name: string }) => f.name).sort();
    assert.deepEqual(names, ['vda1', 'vgdata-lvdata']);

    const t1 = Date.now();
    const opt = await h.api(h.alice, 'GET', `/snapshots/${s1}/files?path=/vda1/opt`);
    const tList = Date.now() - t1;
    const f1 = opt.json.files.find((f: { name: string }) => f.name === 'File_1');
    assert.deepEqual({ type: f1.type, size: f1.size, mode: f1.mode, path: f1.path }, { type: 'file', size: file1.length, mode: '0644', path: '/vda1/opt/File_1' });
    assert.match(f1.mtime, /^\d{4}-\d\d-\d\dT/);
    const links = (await h.api(h.alice, 'GET', `/snapshots/${s1}/files?path=/vda1/home/u`)).json.files;
    assert.deepEqual(links.map((f: { type: string }) => f.type), ['symlink', 'symlink']);

    const token = await h.token(h.alice);
    const get = (path: string, headers: Record<string, string> = {}) => fetch(`${h.url}/v1/${h.alice.projectId}${path}`, { headers: { 'x-auth-token': token, ...headers } });
    const d = await get(`/snapshots/${s1}/files/content?path=/vda1/opt/File_1`);
    assert.equal(d.status, 200);
    assert.equal(d.headers.get('content-type'), 'application/octet-stream');
    assert.equal(d.headers.get('content-length'), String(file1.length));
    assert.match(d.headers.get('content-disposition')!, /^attachment; filename="File_1"/);
    assert.equal(md5(Buffer.from(await d.arrayBuffer())), md5(file1));
    const t2 = Date.now();
    const b = Buffer.from(await (await get(`/snapshots/${s1}/files/content?path=/vda1/opt/big.bin`)).arrayBuffer());
    const tBig = Date.now() - t2;
    assert.ok(b.equals(big), 'the 40 MiB file downloads byte for byte');
    const x = Buffer.from(await (await get(`/snapshots/${s1}/files/content?path=/vgdata-lvdata/data/report.txt`)).arrayBuffer());
    assert.ok(x.equals(xfsFile), 'a file on LVM + XFS downloads byte for byte');

    const part = await get(`/snapshots/${s1}/files/content?path=/vda1/opt/File_1`, { range: 'bytes=1000-1999' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 1000-1999/${file1.length}`);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(file1.subarray(1000, 2000)));
    assert.equal((await get(`/snapshots/${s1}/files/content?path=/vda1/opt/File_1`, { range: `bytes=${file1.length}-` })).status, 416);

    const tar = Buffer.from(await (await get(`/snapshots/${s1}/files/archive?path=/vda1/etc`)).arrayBuffer());
    assert.ok(tar.includes(Buffer.from('./hosts')) && tar.includes(Buffer.from('127.0.0.1 localhost')), 'the tar holds etc/hosts');

    for (const bad of ['/vda1/../../etc', '/vda1/opt/../..', '/..', 'vda1/etc']) {
      const r = await h.api(h.alice, 'GET', `/snapshots/${s1}/files?path=${encodeURIComponent(bad)}`);
      assert.equal(r.status, 400, `${bad}: ${r.text}`);
      assert.ok(!r.text.includes(h.home), 'no host path in the message');
    }
    for (const link of ['/vda1/home/u/link-out', '/vda1/home/u/dotdot/etc/passwd']) {
      const r = await h.api(h.alice, 'GET', `/snapshots/${s1}/files/content?path=${encodeURIComponent(link)}`);
      assert.equal(r.status, 400, `${link} must not be followed: ${r.text}`);
    }
    assert.equal((await h.api(h.bob, 'GET', `/v1/${h.bob.projectId}/snapshots/${s1}/files?path=/`)).status, 404, 'another tenant sees nothing');

    const listed = (await h.api(h.alice, 'GET', '/snapshots/mounted/list')).json.mounted_snapshots;
    assert.deepEqual(listed.map((l: { snapshot_id: string; status: string }) => [l.snapshot_id, l.status]), [[s1, 'mounted']]);
    const meta = (await h.api(h.alice, 'GET', `/snapshots/${s1}`)).json.snapshot.metadata;
    assert.ok(meta.some((r: { key: string; value: string }) => r.key === 'mount_vm_id' && r.value === recoveryVm));
    assert.equal((await h.api(h.alice, 'POST', `/snapshots/${s2}/mount`, { mount: { mount_vm_id: recoveryVm, options: {} } })).status, 400, 'one mount per recovery VM');

    assert.equal((await h.api(h.alice, 'POST', `/snapshots/${s1}/dismount`)).status, 200);
    assert.equal(await status(s1), 'available');
    assert.deepEqual(fuseMountsUnder(join(h.home, 'mounts')), []);
    await waitFor(() => processesTagged(`lifeboat:${h.home}`).length === 0, 30_000, 'no appliance left');
    assert.equal((await h.api(h.alice, 'POST', `/snapshots/${s1}/dismount`)).status, 400, 'not mounted any more');
    console.log(`# mount to first listing ${tMounted} ms; later listing ${tList} ms; download 40 MiB in ${tBig} ms = ${((40 / tBig) * 1000).toFixed(1)} MiB/s (TCG, shared 2-core host)`);
  });

  test('bad mount requests change nothing', async () => {
    const foreignVm = h.vms[3]!.id; // bob's project
    for (const body of [{ mount: { mount_vm_id: foreignVm, options: {} } }, { mount: { mount_vm_id: 'not-a-uuid' } }, { mount: {} }, { nope: 1 }]) {
      const r = await h.api(h.alice, 'POST', `/snapshots/${s2}/mount`, body);
      assert.equal(r.status, 400, JSON.stringify(body) + r.text);
    }
    assert.equal(await status(s2), 'available');
    assert.equal((await h.api(h.bob, 'POST', `/v1/${h.bob.projectId}/snapshots/${s2}/mount`, { mount: { mount_vm_id: h.vms[3]!.id } })).status, 404);
    assert.equal(existsSync(join(h.home, 'mounts')) ? readdirSync(join(h.home, 'mounts')).length : 0, 0);
  });

  /** Polls a search to its end; returns the record. */
  async function searchDone(id: number): Promise<{ status: string; json_resp: string | null; error_msg: string | null; progress_percent: number }> {
    return waitFor(async () => {
      const r = (await h.api(h.alice, 'GET', `/search/${id}`)).json.file_search;
      return ['completed', 'error', 'cancelled'].includes(r.status) ? r : null;
    }, MOUNT_WAIT, 'search done');
  }

  test('F11: one search over both snapshots finds the file on ext4 and on LVM + XFS with the right sizes', async () => {
    const t0 = Date.now();
    const r = await h.api(h.alice, 'POST', '/search', { file_search: { end: 0, filepath: '/[od]*/[Fr]*', date_from: '', snapshot_ids: [], start: 0, date_to: '', vm_id: vm().id } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.file_search.status, 'executing');
    assert.equal(typeof r.json.file_search.id, 'number');
    const done = await searchDone(r.json.file_search.id);
    console.log(`# search of 2 snapshots (2 disks each, ext4 + LVM/XFS) in one appliance launch: ${Date.now() - t0} ms (TCG, shared 2-core host)`);
    assert.equal(done.status, 'completed', done.error_msg ?? '');
    assert.equal(done.progress_percent, 100);
    assert.ok(!/\b(true|false|null)\b/.test(done.json_resp!), 'Python-evaluable: no JSON literals');
    const resp = JSON.parse(done.json_resp!) as Record<string, Record<string, unknown>[]>[];
    assert.deepEqual(resp.map((x) => Object.keys(x)[0]), [s2, s1], 'newest first, one element per snapshot');
    const bySnap = (sid: string) => resp.find((x) => Object.keys(x)[0] === sid)![sid]!;
    for (const [sid, size, lvSize] of [[s1, file1.length, xfsFile.length], [s2, file1b.length, xfsFile2.length]] as const) {
      const fss = bySnap(sid);
      const vda1 = fss.find((f) => Object.keys(f)[0] === '/dev/vda1')!;
      assert.deepEqual(vda1['/dev/vda1'], ['/opt/File_1'], `${sid}: the device key comes first with the matches`);
      assert.equal((vda1['/opt/File_1'] as { size: number }).size, size);
      const lv = fss.find((f) => Object.keys(f)[0] === '/dev/vgdata/lvdata')!;
      assert.deepEqual(lv['/dev/vgdata/lvdata'], ['/data/report.txt']);
      const st = lv['/data/report.txt'] as Record<string, number>;
      assert.equal(st.size, lvSize, `${sid}: the LV of this snapshot, not of the other one`);
      assert.deepEqual(Object.keys(st), ['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'size', 'blksize', 'blocks', 'atime', 'mtime', 'ctime']);
    }
    await waitFor(() => processesTagged(`lifeboat:${h.home}`).length === 0, 30_000, 'the appliance is gone');
  });

  test('a running search can be cancelled; bad searches are refused', async () => {
    const r = await h.api(h.alice, 'POST', '/search', { file_search: { filepath: '/etc/h*', snapshot_ids: s1, vm_id: vm().id } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await h.api(h.alice, 'POST', '/search', { file_search: { filepath: '/etc/h*', vm_id: vm().id } })).status, 400, 'one search per VM at a time');
    await waitFor(async () => (await h.api(h.alice, 'GET', `/search/${r.json.file_search.id}`)).json.file_search.status === 'searching', 60_000, 'search running');
    assert.equal((await h.api(h.alice, 'GET', `/search/${r.json.file_search.id}/cancel`)).status, 200);
    const done = await searchDone(r.json.file_search.id);
    assert.equal(done.status, 'cancelled');
    assert.equal(done.json_resp, null);
    await waitFor(() => processesTagged(`lifeboat:${h.home}`).length === 0, 30_000, 'appliance gone after cancel');
    for (const body of [{ file_search: { filepath: 'opt/x', vm_id: vm().id } }, { file_search: { filepath: '/a b', vm_id: vm().id } }, { file_search: { filepath: '/x', vm_id: 'nope' } }, { file_search: { filepath: '/x', vm_id: vm().id, start: -1 } }, { file_search: { filepath: '/x', vm_id: vm().id, date_from: '2020-13-01' } }]) {
      const b = await h.api(h.alice, 'POST', '/search', body);
      assert.equal(b.status, 400, JSON.stringify(body) + b.text);
    }
    assert.equal((await h.api(h.bob, 'POST', `/v1/${h.bob.projectId}/search`, { file_search: { filepath: '/x', vm_id: vm().id } })).status, 404, "another tenant's VM is unknown");
    assert.equal((await h.api(h.bob, 'GET', `/v1/${h.bob.projectId}/search/${r.json.file_search.id}`)).status, 404);
  });
});
