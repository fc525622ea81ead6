import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { storeKinds } from '../store/testing.js';
import type { StoreHandle } from '../store/db.js';
import { getWorkload, insertWorkload } from '../store/workload.store.js';
import { getGlobalJobScheduler } from '../store/scheduler.store.js';
import { applyJobSchedule, defaultJobSchedule } from '../domain/jobschedule.js';
import type { Workload } from '../domain/workload.js';
import type { RequestContext } from '../domain/context.js';
import { ManualClock } from '../lib/clock.js';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { assertScheduleChangeAllowed, GLOBAL_SCHEDULER_DISABLED_MESSAGE, scheduleViewFields, SchedulerService } from './scheduler.service.js';
import { testWorkload } from '../domain/testing.js';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const PROJECT = 'a'.repeat(32);
const ctx = (projectId = PROJECT): RequestContext => ({ requestId: 'r', userId: 'u', userName: 'u', projectId, projectName: 'p', roles: ['member'], isAdmin: false });

function workload(): Workload {
  return testWorkload({ project_id: PROJECT, user_id: 'u', created_at: T0, jobschedule: { ...defaultJobSchedule(T0), start_date: '01/15/2026', start_time: '01:00 PM', interval: '1 hrs' } });
}

const rejectsDisabled = (p: Promise<unknown>) => assert.rejects(p, (e: unknown) => e instanceof ValidationError && e.message === GLOBAL_SCHEDULER_DISABLED_MESSAGE);

for (const kind of storeKinds()) {
  describe(`SchedulerService (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let svc: SchedulerService;
    const clock = new ManualClock(T0);
    before(async () => {
      h = await kind.open();
      svc = new SchedulerService({ db: h.db, clock });
    });
    after(async () => {
      await h.close();
    });

    it('global switch round trip (F13)', async () => {
      assert.equal(await svc.globalEnabled(), true);
      assert.equal(await svc.setGlobal(ctx(), false), false);
      assert.equal(await svc.globalEnabled(), false);
      assert.equal(await getGlobalJobScheduler(h.db), false);
      assert.equal(await svc.setGlobal(ctx(), true), true);
      assert.equal(await svc.globalEnabled(), true);
    });

    it('pause/resume toggle the stored enabled; idempotent; another project gets 404', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      await svc.pause(ctx(), w.id);
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.jobschedule.enabled, false);
      await svc.pause(ctx(), w.id);
      await svc.resume(ctx(), w.id.toUpperCase());
      const after = await getWorkload(h.db, { admin: true }, w.id);
      assert.equal(after?.jobschedule.enabled, true);
      assert.equal(after?.jobschedule.interval, '1 hrs', 'other fields untouched');
      await assert.rejects(svc.pause(ctx('b'.repeat(32)), w.id), NotFoundError);
      await assert.rejects(svc.pause(ctx(), 'not-a-uuid'), NotFoundError);
      await assert.rejects(svc.pause(ctx(), newId()), NotFoundError);
    });

    it('F14: while the global scheduler is disabled, schedule edits fail with the exact message; {} and echoes pass', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      await svc.setGlobal(ctx(), false);
      try {
        const edit = applyJobSchedule(w.jobschedule, { enabled: 'False' });
        await rejectsDisabled(assertScheduleChangeAllowed(h.db, w.jobschedule, edit.schedule, edit.changed));
        const empty = applyJobSchedule(w.jobschedule, {});
        await assertScheduleChangeAllowed(h.db, w.jobschedule, empty.schedule, empty.changed);
        const echo = applyJobSchedule(w.jobschedule, { interval: '1 hrs', start_time: '13:00', enabled: true });
        await assertScheduleChangeAllowed(h.db, w.jobschedule, echo.schedule, echo.changed);
        // create with a schedule
        const base = defaultJobSchedule(T0);
        const created = applyJobSchedule(base, { interval: '1 hrs' });
        await rejectsDisabled(assertScheduleChangeAllowed(h.db, base, created.schedule, created.changed));
        // pause/resume are schedule changes too
        await rejectsDisabled(svc.pause(ctx(), w.id));
      } finally {
        await svc.setGlobal(ctx(), true);
      }
      const edit = applyJobSchedule(w.jobschedule, { enabled: 'False' });
      await assertScheduleChangeAllowed(h.db, w.jobschedule, edit.schedule, edit.changed);
    });
  });
}

describe('scheduleViewFields (detail view: enabled / nextrun / global_jobscheduler)', () => {
  const s = { ...defaultJobSchedule(T0), start_date: '01/15/2026', start_time: '01:00 PM', interval: '1 hrs' };
  it('nextrun while enabled, seconds until the next slot', () => {
    assert.deepEqual(scheduleViewFields(s, true, T0 + 1500), { globalJobScheduler: true, nextRunSeconds: 3598.5 });
  });
  it('no nextrun when the workload schedule or the global scheduler is off, or the schedule ended', () => {
    assert.equal(scheduleViewFields({ ...s, enabled: false }, true, T0).nextRunSeconds, null);
    assert.deepEqual(scheduleViewFields(s, false, T0), { globalJobScheduler: false, nextRunSeconds: null });
    assert.equal(scheduleViewFields({ ...s, end_date: '01/14/2026' }, true, T0).nextRunSeconds, null);
  });
  it('F14 test_3: enable with start today +15 min in UTC → nextrun ≈ 900 s', () => {
    const { schedule } = applyJobSchedule({ ...s, enabled: false }, { enabled: 'True', start_date: '01/15/2026', start_time: '12:15 PM', timezone: 'UTC' });
    const v = scheduleViewFields(schedule, true, T0);
    assert.equal(Math.trunc(v.nextRunSeconds!), 900);
  });
});
