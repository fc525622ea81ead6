import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { storeKinds } from './testing.js';
import { inTransaction, type StoreHandle } from './db.js';
import {
  countWorkloads,
  findMemberships,
  getWorkload,
  insertWorkload,
  isMemberConflict,
  listWorkloads,
  markWorkloadDeleted,
  replaceMembers,
  transitionWorkload,
  updateWorkloadFields,
} from './workload.store.js';
import type { Workload, WorkloadMember } from '../domain/workload.js';
import { newHexId, newId } from '../lib/ids.js';
import { testWorkload } from '../domain/testing.js';

const T0 = Date.UTC(2026, 0, 1);

function workload(projectId: string, over: Partial<Workload> = {}): Workload {
  return testWorkload({
    project_id: projectId,
    name: 'wl',
    description: 'no-description',
    availability_zone: 'nova',
    jobschedule: {
      enabled: false,
      start_date: '01/01/2026',
      start_time: '09:00 PM',
      end_date: 'No End',
      interval: '24hr',
      retention_policy_type: 'Number of Snapshots to Keep',
      retention_policy_value: '30',
      fullbackup_interval: '-1',
      timezone: 'UTC',
    },
    metadata: { k: 'v' },
    force_full: true,
    ...over,
  });
}

function vm(name = 'vm'): WorkloadMember {
  return { id: newId(), name, metadata: { role: name } };
}

for (const kind of storeKinds()) {
  describe(`workload.store (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });

    it('round-trips a workload with its members in order, JSON and booleans included', async () => {
      const p = newHexId();
      const w = workload(p, { instances: [vm('b'), vm('a'), vm('c')], error_msg: 'e', availability_zone: null });
      await insertWorkload(h.db, w);
      assert.deepEqual(await getWorkload(h.db, { projectId: p }, w.id), w);
      const plain = workload(p, { force_full: false });
      await insertWorkload(h.db, plain);
      assert.deepEqual(await getWorkload(h.db, { projectId: p }, plain.id), plain);
    });

    it("scopes reads by project: another project's workload is missing, admin sees all", async () => {
      const p1 = newHexId();
      const p2 = newHexId();
      const w1 = workload(p1);
      const w2 = workload(p2);
      await insertWorkload(h.db, w1);
      await insertWorkload(h.db, w2);
      assert.equal(await getWorkload(h.db, { projectId: p2 }, w1.id), null);
      assert.equal((await getWorkload(h.db, { admin: true }, w1.id))?.id, w1.id);
      assert.deepEqual((await listWorkloads(h.db, { projectId: p1 })).map((w) => w.id), [w1.id]);
      const all = (await listWorkloads(h.db, { admin: true })).map((w) => w.id);
      assert.ok(all.includes(w1.id) && all.includes(w2.id));
      assert.deepEqual((await listWorkloads(h.db, { admin: true }, { projectId: p2 })).map((w) => w.id), [w2.id]);
      // a filter cannot widen a project scope
      assert.deepEqual(await listWorkloads(h.db, { projectId: p1 }, { projectId: p2 }), []);
    });

    it('lists newest first, ties by id', async () => {
      const p = newHexId();
      const old = workload(p, { created_at: T0 + 1 });
      const mid1 = workload(p, { id: '00000000-0000-4000-8000-000000000002', created_at: T0 + 2 });
      const mid0 = workload(p, { id: '00000000-0000-4000-8000-000000000001', created_at: T0 + 2 });
      const neu = workload(p, { created_at: T0 + 3 });
      for (const w of [mid1, neu, old, mid0]) await insertWorkload(h.db, w);
      assert.deepEqual((await listWorkloads(h.db, { projectId: p })).map((w) => w.id), [neu.id, mid0.id, mid1.id, old.id]);
    });

    it('transitions conditionally: a from-state or scope mismatch changes nothing', async () => {
      const p = newHexId();
      const w = workload(p);
      await insertWorkload(h.db, w);
      assert.equal(await transitionWorkload(h.db, w.id, { projectId: p }, ['locked'], 'available', T0 + 5), false);
      assert.equal(await transitionWorkload(h.db, w.id, { projectId: newHexId() }, ['available'], 'locked', T0 + 5), false);
      assert.equal(await transitionWorkload(h.db, newId(), { admin: true }, 'any', 'locked', T0 + 5), false);
      assert.deepEqual(await getWorkload(h.db, { projectId: p }, w.id), w);

      assert.equal(await transitionWorkload(h.db, w.id, { projectId: p }, ['available', 'error'], 'locked', T0 + 6), true);
      let got = await getWorkload(h.db, { projectId: p }, w.id);
      assert.equal(got?.status, 'locked');
      assert.equal(got?.updated_at, T0 + 6);

      assert.equal(await transitionWorkload(h.db, w.id, { admin: true }, 'any', 'error', T0 + 7, { error_msg: 'broken', force_full: 0 }), true);
      got = await getWorkload(h.db, { projectId: p }, w.id);
      assert.equal(got?.status, 'error');
      assert.equal(got?.error_msg, 'broken');
      assert.equal(got?.force_full, false);
    });

    it('lets exactly one of many concurrent lockers win', async () => {
      const p = newHexId();
      const w = workload(p);
      await insertWorkload(h.db, w);
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => transitionWorkload(h.db, w.id, { projectId: p }, ['available'], 'locked', T0 + 10 + i)),
      );
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal((await getWorkload(h.db, { projectId: p }, w.id))?.status, 'locked');
    });

    it('lets exactly one of concurrent lockers win when each runs in its own transaction', async () => {
      const p = newHexId();
      const w = workload(p);
      await insertWorkload(h.db, w);
      const results = await Promise.all(
        Array.from({ length: 6 }, () => inTransaction(h.db, (tx) => transitionWorkload(tx, w.id, { projectId: p }, ['available'], 'locked', T0 + 20))),
      );
      assert.equal(results.filter(Boolean).length, 1);
    });

    it('a VM can be in only one workload: the unique index rejects it and isMemberConflict says so', async () => {
      const p = newHexId();
      const shared = vm('shared');
      const w1 = workload(p, { instances: [shared] });
      await insertWorkload(h.db, w1);
      const w2 = workload(p, { instances: [vm('own'), shared] });
      let err: unknown;
      await inTransaction(h.db, (tx) => insertWorkload(tx, w2)).catch((e: unknown) => (err = e));
      assert.ok(err, 'second insert must fail');
      assert.equal(isMemberConflict(err), true);
      assert.equal(await getWorkload(h.db, { admin: true }, w2.id), null, 'transaction rolled back');
      assert.deepEqual(await findMemberships(h.db, [shared.id]), new Map([[shared.id, w1.id]]));

      const w3 = workload(p);
      await insertWorkload(h.db, w3);
      await assert.rejects(replaceMembers(h.db, w3.id, p, [shared]), (e) => isMemberConflict(e));
    });

    it('isMemberConflict is false for other errors, including other unique violations', async () => {
      const p = newHexId();
      const w = workload(p);
      await insertWorkload(h.db, w);
      let dup: unknown;
      await insertWorkload(h.db, workload(p, { id: w.id })).catch((e: unknown) => (dup = e));
      assert.ok(dup, 'duplicate primary key must fail');
      assert.equal(isMemberConflict(dup), false);
      assert.equal(isMemberConflict(new Error('x')), false);
      assert.equal(isMemberConflict(undefined), false);
    });

    it('replaceMembers swaps the whole member list and keeps the new order', async () => {
      const p = newHexId();
      const [a, b, c] = [vm('a'), vm('b'), vm('c')];
      const w = workload(p, { instances: [a, b] });
      await insertWorkload(h.db, w);
      await replaceMembers(h.db, w.id, p, [c, a]);
      assert.deepEqual((await getWorkload(h.db, { projectId: p }, w.id))?.instances, [c, a]);
      assert.deepEqual(await findMemberships(h.db, [a.id, b.id, c.id]), new Map([[a.id, w.id], [c.id, w.id]]));
      await replaceMembers(h.db, w.id, p, []);
      assert.deepEqual((await getWorkload(h.db, { projectId: p }, w.id))?.instances, []);
      assert.deepEqual(await findMemberships(h.db, []), new Map());
    });

    it('markWorkloadDeleted hides the workload and frees its VMs for another workload', async () => {
      const p = newHexId();
      const a = vm('a');
      const w = workload(p, { instances: [a] });
      await insertWorkload(h.db, w);
      assert.equal(await countWorkloads(h.db, p), 1);
      await markWorkloadDeleted(h.db, w.id, T0 + 50);
      assert.equal(await getWorkload(h.db, { admin: true }, w.id), null);
      assert.deepEqual(await listWorkloads(h.db, { projectId: p }), []);
      assert.equal(await countWorkloads(h.db, p), 0);
      assert.deepEqual(await findMemberships(h.db, [a.id]), new Map());
      assert.equal(await transitionWorkload(h.db, w.id, { admin: true }, 'any', 'available', T0 + 51), false);
      const row = await h.db.selectFrom('workloads').selectAll().where('id', '=', w.id).executeTakeFirstOrThrow();
      assert.deepEqual([row.status, row.deleted, row.deleted_at], ['deleted', 1, T0 + 50]);
      const again = workload(p, { instances: [a] });
      await insertWorkload(h.db, again);
      assert.deepEqual(await findMemberships(h.db, [a.id]), new Map([[a.id, again.id]]));
    });

    it('updateWorkloadFields changes only the given fields', async () => {
      const p = newHexId();
      const w = workload(p);
      await insertWorkload(h.db, w);
      await updateWorkloadFields(h.db, w.id, { name: 'renamed' }, T0 + 60);
      assert.deepEqual(await getWorkload(h.db, { projectId: p }, w.id), { ...w, name: 'renamed', updated_at: T0 + 60 });
      const js = { ...w.jobschedule, enabled: true, interval: '12hr' };
      await updateWorkloadFields(h.db, w.id, { description: 'd', jobschedule: js, metadata: { a: 'b' }, force_full: false }, T0 + 61);
      assert.deepEqual(await getWorkload(h.db, { projectId: p }, w.id), {
        ...w,
        name: 'renamed',
        description: 'd',
        jobschedule: js,
        metadata: { a: 'b' },
        force_full: false,
        updated_at: T0 + 61,
      });
    });

    it('counts live workloads per project', async () => {
      const p = newHexId();
      assert.equal(await countWorkloads(h.db, p), 0);
      await insertWorkload(h.db, workload(p));
      await insertWorkload(h.db, workload(p));
      await insertWorkload(h.db, workload(newHexId()));
      assert.equal(await countWorkloads(h.db, p), 2);
    });
  });
}
