import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { fuseMountsUnder, processesTagged } from '../src/recovery/mounts.js';
import { startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { buildExt4Disk, type Tree } from './fs-images.js';

/**
 * Flows F10 and F11 of workloadmgr-api.md as tempest runs them, on one workload of two VMs
 * with a full and three incremental snapshots (real GPT + ext4 disks, real snapshots).
 * F11 (filesearch/test_filesearch.py and its prerequisite): `date_from` taken after the full
 * and `date_to` after the last; seven searches, each polled until it ends, its `json_resp`
 * turned into a match count per snapshot and compared with tempest's expectations.
 * F10 (snapshot/test_snapshot_mount.py): mount the full, poll it through the workload's
 * snapshot URL until `mounted`, dismount, poll until `available`; the same with an
 * incremental; then delete the snapshots and the workload.
 */
const SEARCH_WAIT = 900_000; // a TCG appliance launch on a loaded 2-core box

/** `YYYY-MM-DDTHH:MM:SS` (UTC) of a moment, as tempest passes `date_from`/`date_to`. */
const vendorDate = (ms: number) => new Date(ms).toISOString().slice(0, 19);

describe('F10 and F11: snapshot mount and file search variants', { skip: skipUnlessInstalled('guestfish', 'sgdisk', 'mkfs.ext4') }, () => {
  let h: Harness;
  const snaps: string[] = []; // snap0 (full) … snap3, oldest first
  let dateFrom = '';
  let dateTo = '';
  let wid = '';
  const vm1 = () => h.vms[0]!;
  const vm2 = () => h.vms[1]!;

  /**
   * The VMs' disks as of snapshot k: vm1 gets /opt/File_1 and /opt/File_2 from snap1 on, vm2
   * /File_1 and /File_2 from snap2 on; each second disk is a data file system that no pattern
   * below matches.
   */
  async function writeDisks(k: number): Promise<void> {
    const one: Tree = { 'etc/hostname': `vm1 ${k}\n` };
    if (k >= 1) Object.assign(one, { 'opt/File_1': `one ${k}\n`, 'opt/File_2': `two ${k}\n` });
    const two: Tree = { 'etc/hostname': `vm2 ${k}\n` };
    if (k >= 2) Object.assign(two, { File_1: `one ${k}\n`, File_2: `two ${k}\n` });
    await buildExt4Disk(vm1().disks[0]!.path, 24, one);
    await buildExt4Disk(vm2().disks[0]!.path, 24, two);
    if (k === 0) for (const vm of [vm1(), vm2()]) await buildExt4Disk(vm.disks[1]!.path, 24, { 'data/File_1.txt': 'not at /opt nor at the root\n' });
  }

  before(async () => {
    h = await startHarness({ env: { LIFEBOAT_APPLIANCE_TCG: '1' } });
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'filesearch', instances: [{ 'instance-id': vm1().id }, { 'instance-id': vm2().id }] } });
    assert.equal(r.status, 202, r.text);
    wid = r.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
    for (let k = 0; k < 4; k++) {
      await writeDisks(k);
      const s = await takeSnapshotAndWait(h, h.alice, wid, k === 0, 300_000);
      snaps.push(s.id as string);
      if (k === 0) {
        // tempest captures date_from once the full snapshot is done: a later second than its creation.
        const created = Date.parse(`${(s.created_at as string).slice(0, 19)}Z`);
        assert.ok(Number.isFinite(created), s.created_at);
        await waitFor(() => Math.floor(Date.now() / 1000) > Math.floor(created / 1000) || delay(50).then(() => false), 5_000, 'the next second');
        dateFrom = vendorDate(Date.now());
      }
    }
    dateTo = vendorDate(Date.now() + 1000);
  });
  after(async () => {
    await h?.close();
  });

  /** Starts a search, polls it to its end and returns matches per snapshot id (tempest's counts). */
  async function search(body: Record<string, unknown>): Promise<Map<string, number>> {
    const r = await h.api(h.alice, 'POST', '/search', { file_search: body });
    assert.equal(r.status, 200, r.text);
    const id = r.json.file_search.id as number;
    const done = await waitFor(async () => {
      const f = (await h.api(h.alice, 'GET', `/search/${id}`)).json.file_search;
      return ['completed', 'error', 'cancelled'].includes(f.status) ? f : delay(250).then(() => null);
    }, SEARCH_WAIT, 'search done');
    assert.equal(done.status, 'completed', done.error_msg);
    const counts = new Map<string, number>();
    for (const element of JSON.parse(done.json_resp) as Record<string, Record<string, unknown>[] | string>[]) {
      const [sid, fss] = Object.entries(element)[0]!;
      let n = 0;
      if (Array.isArray(fss)) for (const fs of fss) n += (Object.values(fs)[0] as string[]).length;
      counts.set(sid, n);
    }
    return counts;
  }

  /** Expected counts by snapshot index (snap0 … snap3); absent snapshots are not in the result. */
  const expect = (counts: Map<string, number>, want: Record<number, number>) =>
    assert.deepEqual(
      Object.fromEntries([...counts].map(([sid, n]) => [snaps.indexOf(sid), n])),
      want,
    );

  const base = { end: 0, date_from: '', snapshot_ids: [], start: 0, date_to: '' };

  test('default search: /opt/File_1 on vm1 → {0, 1, 1, 1}', async () => {
    expect(await search({ ...base, filepath: '/opt/File_1', vm_id: vm1().id }), { 0: 0, 1: 1, 2: 1, 3: 1 });
  });

  test('snapshot_ids as a bare string: only that snapshot', async () => {
    expect(await search({ ...base, filepath: '/File_1', snapshot_ids: snaps[2], vm_id: vm1().id }), { 2: 0 });
  });

  test('start=2, end=0: the snapshots after the two newest (snap1, snap0)', async () => {
    expect(await search({ ...base, filepath: '/File_1', start: 2, end: 0, vm_id: vm1().id }), { 0: 0, 1: 0 });
  });

  test('start=0, end=2: the two newest (snap3, snap2)', async () => {
    expect(await search({ ...base, filepath: '/File_1', start: 0, end: 2, vm_id: vm1().id }), { 2: 0, 3: 0 });
  });

  test('date_from/date_to: snap1 … snap3', async () => {
    expect(await search({ ...base, filepath: '/File_1', date_from: dateFrom, date_to: dateTo, vm_id: vm1().id }), { 1: 0, 2: 0, 3: 0 });
  });

  test('vm2 /File* → {0, 0, 2, 2}; vm1 /opt/File_? → {0, 2, 2, 2}', async () => {
    const [two, one] = await Promise.all([search({ ...base, filepath: '/File*', vm_id: vm2().id }), search({ ...base, filepath: '/opt/File_?', vm_id: vm1().id })]);
    expect(two, { 0: 0, 1: 0, 2: 2, 3: 2 });
    expect(one, { 0: 0, 1: 2, 2: 2, 3: 2 });
    await waitFor(() => processesTagged(`lifeboat:${h.home}`).length === 0, 30_000, 'no appliance left');
  });

  /** Polls the snapshot through the workload's URL (tempest's poll) until `want`; `avoid` fails it. */
  async function pollSnapshot(sid: string, want: string, avoid?: string): Promise<void> {
    await waitFor(async () => {
      const st = (await h.api(h.alice, 'GET', `/workloads/${wid}/snapshots/${sid}`)).json.snapshot.status as string;
      if (avoid) assert.notEqual(st, avoid, `snapshot went back to ${avoid}: the mount failed`);
      return st === want || delay(250).then(() => false);
    }, SEARCH_WAIT, `snapshot ${want}`);
  }

  test('F10: mount / dismount the full, then an incremental; then delete snapshots and workload', async () => {
    const fvm = h.vms[2]!.id; // the "File Recovery Manager" VM: an instance of the project
    for (const sid of [snaps[0]!, snaps[1]!]) {
      const m = await h.api(h.alice, 'POST', `/snapshots/${sid}/mount`, { mount: { mount_vm_id: fvm, options: {} } });
      assert.equal(m.status, 200, m.text);
      await pollSnapshot(sid, 'mounted', 'available');
      const root = await h.api(h.alice, 'GET', `/snapshots/${sid}/files?path=/`);
      assert.deepEqual(root.json.files.map((f: { name: string }) => f.name).sort(), [`${vm1().id}-vda1`, `${vm1().id}-vdb1`, `${vm2().id}-vda1`, `${vm2().id}-vdb1`].sort(), 'both VMs, both disks');
      const d = await h.api(h.alice, 'POST', `/snapshots/${sid}/dismount`);
      assert.equal(d.status, 200, d.text);
      await pollSnapshot(sid, 'available');
    }
    assert.deepEqual(fuseMountsUnder(join(h.home, 'mounts')), []);
    await waitFor(() => processesTagged(`lifeboat:${h.home}`).length === 0, 30_000, 'nothing of the mounts left');
    const workloadAvailable = () => waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available' || delay(250).then(() => false), 60_000, 'workload available');
    for (const sid of snaps) {
      await workloadAvailable();
      const r = await h.api(h.alice, 'DELETE', `/snapshots/${sid}`);
      assert.equal(r.status, 200, r.text);
      await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).status === 404 || delay(250).then(() => false), 120_000, 'snapshot deleted');
    }
    await workloadAvailable();
    const r = await h.api(h.alice, 'DELETE', `/workloads/${wid}`);
    assert.equal(r.status, 202, r.text);
  });
});
