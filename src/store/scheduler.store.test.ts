import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeKinds } from './testing.js';
import { openStore, type StoreHandle } from './db.js';
import { getWorkload, insertWorkload } from './workload.store.js';
import { insertSnapshot } from './snapshot.store.js';
import {
  claimScheduledRun,
  getGlobalJobScheduler,
  getScheduleState,
  incrementalsSinceFull,
  insertScheduleState,
  replanSchedule,
  setGlobalJobScheduler,
  swapJobSchedule,
} from './scheduler.store.js';
import type { Workload } from '../domain/workload.js';
import type { Snapshot } from '../domain/snapshot.js';
import { newId } from '../lib/ids.js';
import { testSnapshot, testWorkload } from '../domain/testing.js';

const T0 = Date.UTC(2026, 0, 1);

function workload(over: Partial<Workload> = {}): Workload {
  return testWorkload({ metadata: { policy_id: 'pol' }, instances: [{ id: newId(), name: 'vm1', metadata: {} }], ...over });
}

function snapshot(w: Workload, over: Partial<Snapshot> = {}): Snapshot {
  return testSnapshot(w, { name: 'jobscheduler', status: 'creating', snapshot_type: 'incremental', is_scheduled: true, host: '', ...over });
}

describe('global job scheduler switch persists across a restart (SQLite file)', () => {
  it('disable, reopen, still disabled; enable, reopen, enabled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-sched-'));
    try {
      const url = `sqlite:${join(dir, 'db.sqlite')}`;
      let h = await openStore(url);
      assert.equal(await getGlobalJobScheduler(h.db), true, 'seeded enabled');
      await setGlobalJobScheduler(h.db, false, T0, 'admin');
      await h.close();
      h = await openStore(url);
      assert.equal(await getGlobalJobScheduler(h.db), false);
      await setGlobalJobScheduler(h.db, true, T0, 'admin');
      await h.close();
      h = await openStore(url);
      assert.equal(await getGlobalJobScheduler(h.db), true);
      await h.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

for (const kind of storeKinds()) {
  describe(`scheduler store (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });

    it('global switch: default on, upsert both ways', async () => {
      assert.equal(await getGlobalJobScheduler(h.db), true);
      await setGlobalJobScheduler(h.db, false, T0, null);
      assert.equal(await getGlobalJobScheduler(h.db), false);
      await setGlobalJobScheduler(h.db, true, T0, null);
      assert.equal(await getGlobalJobScheduler(h.db), true);
    });

    it('plan insert is first-wins; replan and claim are conditional', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      await Promise.all([insertScheduleState(h.db, w.id, 'k1', 100, T0), insertScheduleState(h.db, w.id, 'k1', 200, T0)]);
      const first = (await getScheduleState(h.db, w.id))!.nextRunAt;
      assert.ok(first === 100 || first === 200);
      await replanSchedule(h.db, w.id, 'k1', 'k1', 100, T0);
      assert.equal(await claimScheduledRun(h.db, w.id, 'k0', 100, 200, T0), false, 'stale key');
      const claims = await Promise.all([1, 2, 3, 4].map(() => claimScheduledRun(h.db, w.id, 'k1', 100, 200, T0)));
      assert.equal(claims.filter(Boolean).length, 1);
      const st = await getScheduleState(h.db, w.id);
      assert.equal(st?.nextRunAt, 200);
      assert.equal(st?.lastDueAt, 100);
      assert.equal(await replanSchedule(h.db, w.id, 'k0', 'k2', 300, T0), false, 'replan from a stale key');
      assert.equal(await replanSchedule(h.db, w.id, 'k1', 'k2', null, T0), true);
      assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, null);
    });

    it('incrementalsSinceFull counts successful incrementals after the newest successful full', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      assert.equal(await incrementalsSinceFull(h.db, w.id), null);
      const add = (t: number, type: 'full' | 'incremental', status: Snapshot['status'] = 'available') =>
        insertSnapshot(h.db, snapshot(w, { created_at: T0 + t, snapshot_type: type, status }));
      await add(1, 'incremental');
      assert.equal(await incrementalsSinceFull(h.db, w.id), null);
      await add(2, 'full');
      await add(3, 'incremental');
      await add(4, 'incremental', 'error');
      await add(5, 'full', 'error');
      await add(6, 'incremental');
      assert.equal(await incrementalsSinceFull(h.db, w.id), 2);
      await add(7, 'full');
      assert.equal(await incrementalsSinceFull(h.db, w.id), 0);
    });

    it('swapJobSchedule is compare-and-swap', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      const off = { ...w.jobschedule, enabled: false };
      assert.equal(await swapJobSchedule(h.db, w.id, w.jobschedule, off, T0), true);
      assert.equal(await swapJobSchedule(h.db, w.id, w.jobschedule, off, T0), false, 'stale before');
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.jobschedule.enabled, false);
    });
  });
}
