import { describe, it, before, after, beforeEach } from 'node:test';
import { TargetCatalog } from '../lib/target.js';
import assert from 'node:assert/strict';
import { storeKinds } from '../store/testing.js';
import type { Db, StoreHandle } from '../store/db.js';
import { getWorkload, insertWorkload, transitionWorkload, updateWorkloadFields } from '../store/workload.store.js';
import { getSnapshot, listSnapshots, transitionSnapshot } from '../store/snapshot.store.js';
import { getScheduleState, setGlobalJobScheduler } from '../store/scheduler.store.js';
import { deleteQuota, insertQuota } from '../store/quota.store.js';
import { QUOTA_TYPE_IDS } from '../domain/quota.js';
import { defaultJobSchedule } from '../domain/jobschedule.js';
import type { JobSchedule, Workload } from '../domain/workload.js';
import { ManualClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { newId } from '../lib/ids.js';
import { Scheduler, SCHEDULED_SNAPSHOT_NAME, type TickOutcome } from './scheduler.js';
import { SNAPSHOT_JOBS } from './kinds.js';
import { testWorkload } from '../domain/testing.js';
import { waitFor } from '../lib/testing.js';

const HOUR = 3_600_000;
// Schedules below start 2026-01-15 13:00 UTC, every hour; the clock starts at 12:00.
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const START = Date.UTC(2026, 0, 15, 13, 0, 0);
const PROJECT = 'p'.repeat(32);

async function mkWorkload(db: Db, over: Partial<JobSchedule> = {}, status: Workload['status'] = 'available'): Promise<Workload> {
  const w = testWorkload({
    project_id: PROJECT,
    status,
    created_at: T0,
    jobschedule: { ...defaultJobSchedule(T0), start_date: '01/15/2026', start_time: '01:00 PM', interval: '1 hrs', ...over },
    instances: [{ id: newId(), name: 'vm1', metadata: {} }],
  });
  await insertWorkload(db, w);
  return w;
}

/** What the snapshot job does at the end: snapshot available, workload unlocked. */
async function complete(db: Db, snapshotId: string, now: number): Promise<void> {
  const s = await getSnapshot(db, { admin: true }, snapshotId);
  assert.ok(s);
  assert.ok(await transitionSnapshot(db, s.id, ['creating'], 'available', now, { finished_at: now }));
  if (s.snapshot_type === 'full') await updateWorkloadFields(db, s.workload_id, { force_full: false }, now);
  assert.ok(await transitionWorkload(db, s.workload_id, { admin: true }, ['locked'], 'available', now));
}

const fired = (outs: TickOutcome[]) => outs.filter((o): o is Extract<TickOutcome, { kind: 'fired' }> => o.kind === 'fired');
const skipped = (outs: TickOutcome[]) => outs.filter((o): o is Extract<TickOutcome, { kind: 'skipped' }> => o.kind === 'skipped');

for (const kind of storeKinds()) {
  describe(`Scheduler (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let clock: ManualClock;
    const mk = (o: Partial<ConstructorParameters<typeof Scheduler>[0]> = {}) =>
      new Scheduler({ db: h.db, clock, log: silentLogger, targets: TargetCatalog.only('mem://test'), ...o });

    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });
    beforeEach(async () => {
      clock = new ManualClock(T0);
      // Each test works on its own workloads; other tests' workloads are deleted so they do not fire.
      await h.db.updateTable('workloads').set({ deleted: 1 }).execute();
      await setGlobalJobScheduler(h.db, true, T0, null);
    });

    it('fires each slot exactly once with two schedulers ticking at once (D17), named jobscheduler, scheduled', async () => {
      const w = await mkWorkload(h.db);
      const a = mk();
      const b = mk();
      // First sight: both plan the first run; nothing fires before the start.
      const first = await Promise.all([a.tick(), b.tick()]);
      assert.equal(first.flatMap((r) => r.outcomes).length, 0);
      assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, START);
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        clock.set(START + i * HOUR);
        const r = await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
        const f = fired(r.flatMap((x) => x.outcomes));
        assert.equal(f.length, 1, `slot ${i}`);
        // Exactly one claimer: the losers see nothing (not a "workload is locked" skip).
        assert.equal(r.flatMap((x) => x.outcomes).length, 1, `slot ${i}: one claim`);
        assert.equal(f[0]!.due, START + i * HOUR);
        ids.push(f[0]!.snapshotId);
        await complete(h.db, f[0]!.snapshotId, clock.now() + 60_000);
        // Ticking again within the same slot does nothing.
        clock.advance(5 * 60_000);
        assert.equal(fired((await Promise.all([a.tick(), b.tick()])).flatMap((x) => x.outcomes)).length, 0);
      }
      const list = await listSnapshots(h.db, { admin: true }, { workloadId: w.id });
      assert.deepEqual(list.map((s) => s.id), ids);
      for (const [i, s] of list.entries()) {
        assert.equal(s.name, SCHEDULED_SNAPSHOT_NAME);
        assert.equal(s.is_scheduled, true);
        assert.equal(s.created_at, START + i * HOUR, 'created_at is the slot (equal spacing, tempest F2)');
      }
      const jobs = await h.db.selectFrom('jobs').select(['kind', 'resource_id']).where('kind', '=', SNAPSHOT_JOBS.take).execute();
      assert.deepEqual(jobs.map((j) => j.resource_id).filter((r) => ids.includes(r)).sort(), [...ids].sort());
    });

    it('many schedulers, many workloads, one slot: one snapshot per workload', async () => {
      const ws = await Promise.all([1, 2, 3, 4, 5].map(() => mkWorkload(h.db)));
      const scheds = [mk(), mk(), mk(), mk()];
      await Promise.all(scheds.map((s) => s.tick()));
      clock.set(START + 1000);
      const r = await Promise.all([...scheds, ...scheds].map((s) => s.tick()));
      const f = fired(r.flatMap((x) => x.outcomes));
      assert.deepEqual(f.map((x) => x.workloadId).sort(), ws.map((w) => w.id).sort());
      assert.equal(r.flatMap((x) => x.outcomes).length, ws.length, 'one claim per workload');
      for (const w of ws) assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'locked');
    });

    it('fullbackup_interval 0 → always full; -1 → full first, then incremental; 2 → F I I F I I', async () => {
      const cases: [string, string[]][] = [
        ['0', ['full', 'full', 'full', 'full']],
        ['-1', ['full', 'incremental', 'incremental', 'incremental']],
        ['2', ['full', 'incremental', 'incremental', 'full', 'incremental', 'incremental', 'full']],
      ];
      for (const [fbi, expected] of cases) {
        await h.db.updateTable('workloads').set({ deleted: 1 }).execute();
        clock.set(T0);
        const w = await mkWorkload(h.db, { fullbackup_interval: fbi });
        const s = mk();
        await s.tick();
        const types: string[] = [];
        for (let i = 0; i < expected.length; i++) {
          clock.set(START + i * HOUR);
          const f = fired((await s.tick()).outcomes);
          assert.equal(f.length, 1);
          types.push((await getSnapshot(h.db, { admin: true }, f[0]!.snapshotId))!.snapshot_type);
          await complete(h.db, f[0]!.snapshotId, clock.now() + 1000);
        }
        assert.deepEqual(types, expected, `fullbackup_interval ${fbi} (${w.id})`);
      }
    });

    it('a workload reset (force_full) makes the next scheduled snapshot full', async () => {
      const w = await mkWorkload(h.db, { fullbackup_interval: '-1' });
      const s = mk();
      await s.tick();
      clock.set(START);
      await complete(h.db, fired((await s.tick()).outcomes)[0]!.snapshotId, clock.now());
      await updateWorkloadFields(h.db, w.id, { force_full: true }, clock.now());
      clock.set(START + HOUR);
      const f = fired((await s.tick()).outcomes)[0]!;
      assert.equal(f.type, 'full');
      assert.equal((await getSnapshot(h.db, { admin: true }, f.snapshotId))?.snapshot_type, 'full');
    });

    it('a busy workload is skipped with a note; the next slot fires', async () => {
      const w = await mkWorkload(h.db);
      const s = mk();
      await s.tick();
      await transitionWorkload(h.db, w.id, { admin: true }, ['available'], 'locked', T0); // a user snapshot runs
      clock.set(START);
      const r = await s.tick();
      assert.equal(fired(r.outcomes).length, 0);
      assert.equal(skipped(r.outcomes)[0]?.reason, 'workload is locked');
      const st = await getScheduleState(h.db, w.id);
      assert.match(st?.note ?? '', /^Scheduled snapshot at 2026-01-15T13:00:00\.000000 skipped: workload is locked$/);
      assert.equal(st?.nextRunAt, START + HOUR);
      assert.equal((await listSnapshots(h.db, { admin: true }, { workloadId: w.id })).length, 0);
      await transitionWorkload(h.db, w.id, { admin: true }, ['locked'], 'available', T0);
      clock.set(START + HOUR);
      assert.equal(fired((await s.tick()).outcomes).length, 1);
      assert.equal((await getScheduleState(h.db, w.id))?.note, null, 'a started run clears the note');
    });

    it('over the Storage or Snapshots quota: the slot is skipped with the quota message, nothing locked; the next slot fires', async () => {
      const w = await mkWorkload(h.db);
      const s = mk();
      await s.tick();
      const quotaId = newId();
      await insertQuota(h.db, { id: quotaId, project_id: PROJECT, quota_type_id: QUOTA_TYPE_IDS.storage, allowed_value: 0, high_watermark: 0, created_at: T0, updated_at: T0 });
      try {
        clock.set(START);
        const r = await s.tick();
        assert.equal(fired(r.outcomes).length, 0);
        assert.equal(skipped(r.outcomes)[0]?.reason, 'Quota exceeded for Storage: allowed 0 bytes, in use 0 bytes.');
        assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
        assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, START + HOUR, 'the refused slot is consumed, not retried every tick');
      } finally {
        await deleteQuota(h.db, quotaId);
      }
      clock.set(START + HOUR);
      assert.equal(fired((await s.tick()).outcomes).length, 1);
    });

    it('no burst after downtime: a long-missed slot is skipped and the plan moves to the next future slot', async () => {
      const w = await mkWorkload(h.db);
      const s = mk();
      await s.tick();
      clock.set(START + 5 * HOUR + 20 * 60_000); // everything was down for five slots
      const r = await s.tick();
      assert.equal(fired(r.outcomes).length, 0);
      assert.match(skipped(r.outcomes)[0]?.reason ?? '', /^missed/);
      assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, START + 6 * HOUR);
      assert.equal(fired((await s.tick()).outcomes).length, 0);
      clock.set(START + 6 * HOUR);
      assert.equal(fired((await s.tick()).outcomes).length, 1);
    });

    it('a slot found a little late (within the grace) fires once', async () => {
      await mkWorkload(h.db);
      const s = mk({ misfireGraceMs: 10 * 60_000 });
      await s.tick();
      clock.set(START + 4 * 60_000);
      const f = fired((await s.tick()).outcomes);
      assert.equal(f.length, 1);
      assert.equal(f[0]!.due, START);
      assert.equal(fired((await s.tick()).outcomes).length, 0);
    });

    it('end_date: no run after the end', async () => {
      const w = await mkWorkload(h.db, { interval: '12 hrs', end_date: '01/16/2026' });
      const s = mk();
      await s.tick();
      const runs: number[] = [];
      for (let t = START; t <= START + 4 * 12 * HOUR; t += 12 * HOUR) {
        clock.set(t);
        for (const f of fired((await s.tick()).outcomes)) {
          runs.push(f.due);
          await complete(h.db, f.snapshotId, t);
        }
      }
      assert.deepEqual(runs, [START, START + 12 * HOUR, START + 24 * HOUR]); // 15th 13:00, 16th 01:00, 16th 13:00
      assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, null);
    });

    it('global scheduler disabled: no run (noted); enabled again: the next slot runs', async () => {
      const w = await mkWorkload(h.db);
      const s = mk();
      await s.tick();
      await setGlobalJobScheduler(h.db, false, T0, null);
      clock.set(START);
      const r = await s.tick();
      assert.equal(fired(r.outcomes).length, 0);
      assert.equal(skipped(r.outcomes)[0]?.reason, 'global job scheduler is disabled');
      clock.set(START + HOUR);
      assert.equal(fired((await s.tick()).outcomes).length, 0);
      await setGlobalJobScheduler(h.db, true, T0, null);
      clock.set(START + 2 * HOUR);
      assert.equal(fired((await s.tick()).outcomes).length, 1);
      assert.equal((await listSnapshots(h.db, { admin: true }, { workloadId: w.id })).length, 1);
    });

    it('pause → nothing planned; resume → planned from now, old slots not replayed', async () => {
      const w = await mkWorkload(h.db);
      const s = mk();
      await s.tick();
      await updateWorkloadFields(h.db, w.id, { jobschedule: { ...w.jobschedule, enabled: false } }, T0);
      clock.set(START);
      assert.equal((await s.tick()).outcomes.length, 0);
      assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, null);
      clock.set(START + 3 * HOUR + 30 * 60_000);
      assert.equal((await s.tick()).outcomes.length, 0);
      await updateWorkloadFields(h.db, w.id, { jobschedule: { ...w.jobschedule, enabled: true } }, clock.now());
      const r = await s.tick();
      assert.equal(r.outcomes.length, 0);
      assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, START + 4 * HOUR);
      assert.equal(r.nextDueAt, START + 4 * HOUR);
    });

    it('an edited start time re-plans; a stale plan never fires with the old key', async () => {
      const w = await mkWorkload(h.db);
      const s = mk();
      await s.tick();
      await updateWorkloadFields(h.db, w.id, { jobschedule: { ...w.jobschedule, start_time: '03:00 PM' } }, T0);
      clock.set(START); // the old plan's slot
      assert.equal(fired((await s.tick()).outcomes).length, 0);
      assert.equal((await getScheduleState(h.db, w.id))?.nextRunAt, START + 2 * HOUR);
    });

    it('the loop (start/stop) wakes at the due slot', async () => {
      const w = await mkWorkload(h.db);
      let queued = 0;
      const s = mk({ pollMs: 20, onQueued: () => queued++ });
      s.start();
      // The loop's first tick has planned the 13:00 slot; only then does the clock reach it.
      await waitFor(async () => (await getScheduleState(h.db, w.id))?.nextRunAt === START, 10_000, 'the first plan');
      clock.set(START);
      await waitFor(() => queued > 0, 10_000, 'the due slot to fire');
      await s.stop();
      assert.equal(queued, 1);
      assert.equal((await listSnapshots(h.db, { admin: true }, { workloadId: w.id })).length, 1);
    });

    it('deleted workloads lose their plan', async () => {
      const w = await mkWorkload(h.db);
      const s = mk();
      await s.tick();
      assert.ok(await getScheduleState(h.db, w.id));
      await h.db.updateTable('workloads').set({ deleted: 1 }).where('id', '=', w.id).execute();
      await s.tick();
      assert.equal(await getScheduleState(h.db, w.id), null);
    });
  });
}
