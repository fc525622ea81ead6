import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { storeKinds } from './testing.js';
import type { StoreHandle } from './db.js';
import {
  countLiveSnapshots,
  finishTask,
  getSnapshot,
  getTask,
  insertSnapshot,
  insertTask,
  latestAvailableSnapshot,
  listSnapshots,
  markSnapshotDeleted,
  setSnapshotMetadata,
  snapshotMetadata,
  transitionSnapshot,
  updateSnapshotFields,
  workloadStorageUsage,
} from './snapshot.store.js';
import type { Snapshot, SnapshotInstance, SnapshotStatus, Task } from '../domain/snapshot.js';
import { newHexId, newId } from '../lib/ids.js';
import { testSnapshot } from '../domain/testing.js';

const T0 = Date.UTC(2026, 0, 1);

const INSTANCE: SnapshotInstance = {
  id: 'i-1',
  name: 'vm1',
  status: 'available',
  metadata: { a: 'b' },
  flavor: { vcpus: '1', ram: '512', disk: '1', ephemeral: '0' },
  security_group: [{ name: 'default', security_group_type: 'neutron' }],
  nics: [{ mac_address: 'fa:16:3e:00:00:01', ip_address: '10.0.0.5', network: { id: 'n1', name: 'net', cidr: null, network_type: 'neutron' } }],
  vdisks: [],
};

function snap(projectId: string, workloadId: string, over: Partial<Snapshot> = {}): Snapshot {
  return testSnapshot({ id: workloadId, project_id: projectId, user_id: 'u'.repeat(32) }, over);
}

for (const kind of storeKinds()) {
  describe(`snapshot.store (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });

    it('round-trips a snapshot, large sizes, booleans and instances JSON included', async () => {
      const p = newHexId();
      const s = snap(p, newId(), {
        size: 5_000_000_000_123,
        restore_size: 3_000_000_000,
        uploaded_size: 42,
        is_scheduled: true,
        pinned: true,
        instances: [INSTANCE],
        progress_msg: 'pm',
        warning_msg: 'wm',
        error_msg: 'em',
        time_taken: 17,
        progress_percent: 100,
        updated_at: T0 + 1,
        finished_at: T0 + 2,
      });
      await insertSnapshot(h.db, s);
      assert.deepEqual(await getSnapshot(h.db, { projectId: p }, s.id), s);
    });

    it("scopes reads: another project's snapshot is missing, admin sees it; deleted ones are gone", async () => {
      const p = newHexId();
      const wl = newId();
      const s = snap(p, wl);
      await insertSnapshot(h.db, s);
      assert.equal(await getSnapshot(h.db, { projectId: newHexId() }, s.id), null);
      assert.equal((await getSnapshot(h.db, { admin: true }, s.id))?.id, s.id);
      assert.deepEqual(await listSnapshots(h.db, { projectId: newHexId() }, { workloadId: wl }), []);
      assert.deepEqual((await listSnapshots(h.db, { admin: true }, { workloadId: wl })).map((x) => x.id), [s.id]);
      assert.equal(await countLiveSnapshots(h.db, wl), 1);
      await markSnapshotDeleted(h.db, s.id, T0 + 9);
      assert.equal(await getSnapshot(h.db, { admin: true }, s.id), null);
      assert.deepEqual(await listSnapshots(h.db, { admin: true }, { workloadId: wl }), []);
      assert.equal(await countLiveSnapshots(h.db, wl), 0);
    });

    it('lists oldest first (ties by id) and filters by workload, host, inclusive dates and status', async () => {
      const p = newHexId();
      const wa = newId();
      const wb = newId();
      const mk = (over: Partial<Snapshot>) => snap(p, wa, over);
      const s1 = mk({ created_at: T0 + 100, status: 'available', host: 'h1' });
      const s2b = mk({ id: '00000000-0000-4000-8000-00000000000b', created_at: T0 + 200, status: 'creating', host: 'h2' });
      const s2a = mk({ id: '00000000-0000-4000-8000-00000000000a', created_at: T0 + 200, status: 'executing', host: 'h1' });
      const s3 = mk({ created_at: T0 + 300, status: 'error', host: 'h1' });
      const s4 = mk({ created_at: T0 + 400, status: 'uploading', host: 'h2' });
      const s5 = mk({ created_at: T0 + 500, status: 'cancelling', host: 'h2' });
      const s6 = mk({ created_at: T0 + 600, status: 'cancelled', host: 'h2' });
      const other = snap(p, wb, { created_at: T0 + 50, status: 'available', host: 'h1' });
      for (const s of [s6, s3, other, s1, s5, s2b, s4, s2a]) await insertSnapshot(h.db, s);
      // 'mounted' is not a SnapshotStatus in the domain type but the API filter counts it as available
      const mounted = mk({ created_at: T0 + 700, host: 'h3' });
      await insertSnapshot(h.db, mounted);
      await h.db.updateTable('snapshots').set({ status: 'mounted' }).where('id', '=', mounted.id).execute();

      const ids = async (f: Parameters<typeof listSnapshots>[2]) => (await listSnapshots(h.db, { projectId: p }, f)).map((s) => s.id);
      assert.deepEqual(await ids({ workloadId: wa }), [s1.id, s2a.id, s2b.id, s3.id, s4.id, s5.id, s6.id, mounted.id]);
      assert.deepEqual(await ids({}), [other.id, s1.id, s2a.id, s2b.id, s3.id, s4.id, s5.id, s6.id, mounted.id]);
      assert.deepEqual(await ids({ workloadId: wb }), [other.id]);
      assert.deepEqual(await ids({ workloadId: wa, host: 'h1' }), [s1.id, s2a.id, s3.id]);
      assert.deepEqual(await ids({ host: 'nowhere' }), []);
      assert.deepEqual(await ids({ workloadId: wa, dateFrom: T0 + 200, dateTo: T0 + 400 }), [s2a.id, s2b.id, s3.id, s4.id]);
      assert.deepEqual(await ids({ workloadId: wa, dateFrom: T0 + 201, dateTo: T0 + 399 }), [s3.id]);
      assert.deepEqual(await ids({ dateTo: T0 + 100 }), [other.id, s1.id]);
      assert.deepEqual(await ids({ workloadId: wa, status: 'running' }), [s2a.id, s2b.id, s4.id, s5.id]);
      assert.deepEqual(await ids({ workloadId: wa, status: 'available' }), [s1.id, mounted.id]);
      assert.deepEqual(await ids({ workloadId: wa, status: 'error' }), [s3.id]);
      assert.deepEqual(await ids({ workloadId: wa, status: 'cancelled' }), [s6.id]);
    });

    it('latestAvailableSnapshot is the newest available, live one of that workload', async () => {
      const p = newHexId();
      const wl = newId();
      assert.equal(await latestAvailableSnapshot(h.db, wl), null);
      const a1 = snap(p, wl, { created_at: T0 + 1 });
      const a2 = snap(p, wl, { created_at: T0 + 2 });
      const err = snap(p, wl, { created_at: T0 + 3, status: 'error' });
      const running = snap(p, wl, { created_at: T0 + 4, status: 'uploading' });
      const otherWl = snap(p, newId(), { created_at: T0 + 5 });
      for (const s of [a2, err, a1, running, otherWl]) await insertSnapshot(h.db, s);
      assert.equal((await latestAvailableSnapshot(h.db, wl))?.id, a2.id);
      await markSnapshotDeleted(h.db, a2.id, T0 + 6);
      assert.equal((await latestAvailableSnapshot(h.db, wl))?.id, a1.id);
    });

    it('transitionSnapshot is conditional on the from-states and skips deleted snapshots', async () => {
      const p = newHexId();
      const s = snap(p, newId(), { status: 'creating' });
      await insertSnapshot(h.db, s);
      assert.equal(await transitionSnapshot(h.db, s.id, ['available'], 'deleting', T0 + 1), false);
      assert.deepEqual(await getSnapshot(h.db, { projectId: p }, s.id), s);
      assert.equal(await transitionSnapshot(h.db, s.id, ['creating', 'executing'], 'available', T0 + 2, { size: 10, finished_at: T0 + 2 }), true);
      const got = await getSnapshot(h.db, { projectId: p }, s.id);
      assert.deepEqual([got?.status, got?.size, got?.finished_at, got?.updated_at], ['available', 10, T0 + 2, T0 + 2]);
      const racers = await Promise.all(
        Array.from({ length: 8 }, () => transitionSnapshot(h.db, s.id, ['available'], 'deleting' as SnapshotStatus, T0 + 3)),
      );
      assert.equal(racers.filter(Boolean).length, 1);
      await markSnapshotDeleted(h.db, s.id, T0 + 4);
      assert.equal(await transitionSnapshot(h.db, s.id, ['deleting'], 'error', T0 + 5), false);
    });

    it('updateSnapshotFields writes only while in one of onlyIn (unconditional without it)', async () => {
      const p = newHexId();
      const s = snap(p, newId(), { status: 'executing' });
      await insertSnapshot(h.db, s);
      assert.equal(await updateSnapshotFields(h.db, s.id, { progress_percent: 40, progress_msg: 'half' }, ['executing', 'uploading']), true);
      assert.equal(await updateSnapshotFields(h.db, s.id, { progress_percent: 99 }, ['available']), false);
      let got = await getSnapshot(h.db, { projectId: p }, s.id);
      assert.deepEqual([got?.progress_percent, got?.progress_msg, got?.status], [40, 'half', 'executing']);
      assert.equal(await updateSnapshotFields(h.db, s.id, { host: 'node-b' }), true);
      got = await getSnapshot(h.db, { projectId: p }, s.id);
      assert.equal(got?.host, 'node-b');
      assert.equal(await updateSnapshotFields(h.db, newId(), { host: 'x' }), false);
    });

    it('metadata upserts by key: new keys inserted, changed values updated, unchanged ones untouched', async () => {
      const s1 = newId();
      const s2 = newId();
      await setSnapshotMetadata(h.db, s1, { a: '1', b: '2' }, T0 + 1);
      await setSnapshotMetadata(h.db, s2, { a: 'other' }, T0 + 1);
      await setSnapshotMetadata(h.db, s1, { a: '1', b: '3', c: '4' }, T0 + 2);
      const m = await snapshotMetadata(h.db, [s1, s2, newId()]);
      const view = (id: string) => (m.get(id) ?? []).map((r) => ({ snapshot_id: r.snapshot_id, key: r.key, value: r.value, created_at: r.created_at, updated_at: r.updated_at }));
      assert.deepEqual(view(s1), [
        { snapshot_id: s1, key: 'a', value: '1', created_at: T0 + 1, updated_at: null },
        { snapshot_id: s1, key: 'b', value: '3', created_at: T0 + 1, updated_at: T0 + 2 },
        { snapshot_id: s1, key: 'c', value: '4', created_at: T0 + 2, updated_at: null },
      ]);
      assert.deepEqual(view(s2), [{ snapshot_id: s2, key: 'a', value: 'other', created_at: T0 + 1, updated_at: null }]);
      assert.equal(m.size, 2);
      assert.deepEqual(await snapshotMetadata(h.db, []), new Map());
    });

    it('storage usage sums live available snapshots of the workload by type', async () => {
      const p = newHexId();
      const wl = newId();
      assert.deepEqual(await workloadStorageUsage(h.db, wl), { usage: 0, full: { snap_count: 0, usage: 0 }, incremental: { snap_count: 0, usage: 0 } });
      const rows = [
        snap(p, wl, { size: 5_000_000_000 }),
        snap(p, wl, { size: 7 }),
        snap(p, wl, { snapshot_type: 'incremental', size: 100 }),
        snap(p, wl, { snapshot_type: 'incremental', size: 1000, status: 'error' }),
        snap(p, wl, { size: 1000, status: 'uploading' }),
        snap(p, newId(), { size: 1000 }),
      ];
      const gone = snap(p, wl, { size: 1000 });
      for (const s of [...rows, gone]) await insertSnapshot(h.db, s);
      await markSnapshotDeleted(h.db, gone.id, T0);
      assert.deepEqual(await workloadStorageUsage(h.db, wl), {
        usage: 5_000_000_107,
        full: { snap_count: 2, usage: 5_000_000_007 },
        incremental: { snap_count: 1, usage: 100 },
      });
    });

    it('tasks: insert, project-scoped get, finish appends the message', async () => {
      const p = newHexId();
      const t: Task = {
        id: newId(),
        project_id: p,
        display_name: 'delete snapshot',
        resource_id: newId(),
        status: 'running',
        status_messages: ['started'],
        created_at: T0,
        updated_at: null,
        finished_at: null,
      };
      await insertTask(h.db, t);
      assert.deepEqual(await getTask(h.db, p, t.id), t);
      assert.equal(await getTask(h.db, newHexId(), t.id), null);
      assert.deepEqual(await getTask(h.db, null, t.id), t);
      await finishTask(h.db, t.id, 'done', 'finished', T0 + 5);
      assert.deepEqual(await getTask(h.db, p, t.id), { ...t, status: 'done', status_messages: ['started', 'finished'], updated_at: T0 + 5, finished_at: T0 + 5 });
      await finishTask(h.db, newId(), 'done', 'x', T0 + 6);
    });
  });
}
