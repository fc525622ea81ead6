import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  RETENTION_TYPES,
  applyJobSchedule,
  defaultJobSchedule,
  intervalMs,
  mergeJobSchedule,
  nextRunMs,
  parseJobScheduleChanges,
  retentionVictims,
  scheduleKey,
  scheduleStartMs,
  scheduledSnapshotType,
  type RetentionCandidate,
} from './jobschedule.js';
import { ValidationError } from '../lib/errors.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0); // 2026-01-15 12:00 UTC
const HOUR = 3_600_000;
const DAY = 86_400_000;
const base = () => defaultJobSchedule(NOW);

describe('parse, then merge: what a request sets, over what is stored', () => {
  it('parse keeps only the keys given; merge reports them and leaves the rest of the base', () => {
    const changes = parseJobScheduleChanges({ interval: '1 hrs', enabled: 'False', full_backup_interval: '2' });
    assert.deepEqual(changes, { enabled: false, interval: '1 hrs' });
    const { schedule, changed } = mergeJobSchedule(base(), changes);
    assert.deepEqual(changed, ['enabled', 'interval']);
    assert.deepEqual(schedule, { ...base(), enabled: false, interval: '1 hrs' });
    assert.deepEqual(parseJobScheduleChanges(null), {});
  });

  it('the end-date check compares with the stored start date', () => {
    const stored = { ...base(), start_date: '02/01/2026' };
    const changes = parseJobScheduleChanges({ end_date: '01/20/2026' });
    assert.throws(() => mergeJobSchedule(stored, changes), (e: unknown) => e instanceof ValidationError && /before start_date 02\/01\/2026/.test(e.message));
    assert.equal(mergeJobSchedule({ ...base(), start_date: '01/01/2026' }, changes).schedule.end_date, '01/20/2026');
  });
});

describe('applyJobSchedule: every format tempest sends', () => {
  it('F2: %x date, %I:%M %p time, "1 hrs", string bool, int retention', () => {
    const { schedule, changed } = applyJobSchedule(base(), {
      start_date: '07/27/21',
      start_time: '10:15 AM',
      interval: '1 hrs',
      retention_policy_type: 'Number of Snapshots to Keep',
      retention_policy_value: 3,
      enabled: 'True',
    });
    assert.equal(schedule.start_date, '07/27/2021');
    assert.equal(schedule.start_time, '10:15 AM');
    assert.equal(schedule.interval, '1 hrs');
    assert.equal(schedule.retention_policy_value, '3');
    assert.equal(schedule.enabled, true);
    assert.deepEqual(changed.sort(), ['enabled', 'interval', 'retention_policy_type', 'retention_policy_value', 'start_date', 'start_time']);
  });

  it('scheduler test variant: JSON bool, HH:MM:SS, fullbackup "0"; retention test: misspelled key ignored', () => {
    const a = applyJobSchedule(base(), { fullbackup_interval: '0', enabled: true, start_time: '21:05:00', start_date: '2026-01-15' }).schedule;
    assert.equal(a.start_time, '09:05 PM');
    assert.equal(a.start_date, '01/15/2026');
    assert.equal(a.fullbackup_interval, '0');
    const b = applyJobSchedule(base(), { full_backup_interval: '2', retention_policy_value: '3' });
    assert.equal(b.schedule.fullbackup_interval, '-1');
    assert.deepEqual(b.changed, ['retention_policy_value']);
  });

  it('{} changes nothing; enabled=False disables', () => {
    assert.deepEqual(applyJobSchedule(base(), {}).changed, []);
    assert.equal(applyJobSchedule(base(), { enabled: 'False' }).schedule.enabled, false);
    assert.equal(applyJobSchedule(base(), { enabled: '0' }).schedule.enabled, false);
  });

  it('rejects nonsense with a ValidationError (→ 400)', () => {
    const bad: Record<string, unknown>[] = [
      { enabled: 'maybe' },
      { start_date: '13/45/2026' },
      { start_date: '02/30/2026' },
      { start_time: '25:00' },
      { start_time: '13:00 PM' },
      { interval: '0 hrs' },
      { interval: 'often' },
      { interval: -5 },
      { retention_policy_type: 'Keep everything' },
      { retention_policy_value: '0' },
      { retention_policy_value: 'three' },
      { fullbackup_interval: '-2' },
      { fullbackup_interval: '1.5' },
      { timezone: 'Mars/Olympus_Mons' },
      { end_date: 'tomorrow' },
      { start_date: '01/10/2026', end_date: '01/09/2026' },
    ];
    for (const b of bad) assert.throws(() => applyJobSchedule(base(), b), ValidationError, JSON.stringify(b));
    assert.throws(() => applyJobSchedule(base(), 'x'), ValidationError);
    assert.throws(() => applyJobSchedule(base(), []), ValidationError);
  });

  it('refuses absurd intervals (above 366 days, or digits enough to overflow) and keeps the bounds inclusive', () => {
    for (const interval of ['99999999999999999999 hrs', '367 days', '53 weeks', '9000 hrs', 1e21, '100000000000 min']) {
      assert.throws(() => applyJobSchedule(base(), { interval }), ValidationError, String(interval));
    }
    assert.equal(applyJobSchedule(base(), { interval: '1 min' }).schedule.interval, '1 min');
    assert.equal(applyJobSchedule(base(), { interval: '366 days' }).schedule.interval, '366 days');
  });

  it('end_date equal to start_date and "no end" (any case) are accepted', () => {
    assert.equal(applyJobSchedule(base(), { start_date: '01/10/2026', end_date: '01/10/2026' }).schedule.end_date, '01/10/2026');
    assert.equal(applyJobSchedule(base(), { end_date: 'no end' }).schedule.end_date, 'No End');
  });
});

describe('schedule math across timezones', () => {
  it('start in UTC, India (+05:30), New York (EST/EDT)', () => {
    const s = { ...base(), start_date: '01/15/2026', start_time: '09:00 PM' };
    assert.equal(scheduleStartMs({ ...s, timezone: 'UTC' }), Date.UTC(2026, 0, 15, 21, 0));
    assert.equal(scheduleStartMs({ ...s, timezone: 'Asia/Kolkata' }), Date.UTC(2026, 0, 15, 15, 30));
    assert.equal(scheduleStartMs({ ...s, timezone: 'America/New_York' }), Date.UTC(2026, 0, 16, 2, 0)); // EST -5
    assert.equal(scheduleStartMs({ ...s, start_date: '07/15/2026', timezone: 'America/New_York' }), Date.UTC(2026, 6, 16, 1, 0)); // EDT -4
  });

  it('a start time just after a DST change uses the new offset', () => {
    // 2026-03-08 03:30 EDT (clocks jumped 02:00 → 03:00) = 07:30 UTC.
    const s = { ...base(), start_date: '03/08/2026', start_time: '03:30 AM', timezone: 'America/New_York' };
    assert.equal(scheduleStartMs(s), Date.UTC(2026, 2, 8, 7, 30));
  });

  it('nextRunMs: the start while in the future, then strictly after now on the interval grid', () => {
    const s = { ...base(), start_date: '01/15/2026', start_time: '01:00 PM', interval: '1 hrs', timezone: 'UTC' };
    assert.equal(nextRunMs(s, NOW), Date.UTC(2026, 0, 15, 13));
    assert.equal(nextRunMs(s, Date.UTC(2026, 0, 15, 13)), Date.UTC(2026, 0, 15, 14)); // exactly at a slot → the next
    assert.equal(nextRunMs(s, Date.UTC(2026, 0, 15, 17, 59, 59)), Date.UTC(2026, 0, 15, 18));
    assert.equal(nextRunMs({ ...s, interval: '30 min' }, Date.UTC(2026, 0, 15, 13, 10)), Date.UTC(2026, 0, 15, 13, 30));
  });

  it('nextRunMs respects end_date (end of that day in the schedule timezone)', () => {
    const s = { ...base(), start_date: '01/15/2026', start_time: '10:00 PM', interval: '24hr', end_date: '01/17/2026', timezone: 'Asia/Kolkata' };
    assert.equal(nextRunMs(s, NOW), Date.UTC(2026, 0, 15, 16, 30));
    assert.equal(nextRunMs(s, Date.UTC(2026, 0, 16, 17)), Date.UTC(2026, 0, 17, 16, 30)); // 17th 22:00 IST, last
    assert.equal(nextRunMs(s, Date.UTC(2026, 0, 17, 17)), null);
  });

  it('intervals', () => {
    assert.equal(intervalMs('1 hrs'), HOUR);
    assert.equal(intervalMs('24hr'), DAY);
    assert.equal(intervalMs('30 min'), 30 * 60_000);
    assert.equal(intervalMs('2 days'), 2 * DAY);
    assert.equal(intervalMs('1 week'), 7 * DAY);
  });

  it('scheduleKey changes with timing fields and enabled, not with retention', () => {
    const s = base();
    assert.equal(scheduleKey(s), scheduleKey({ ...s, retention_policy_value: '5', fullbackup_interval: '0' }));
    for (const over of [{ enabled: false }, { start_time: '01:00 AM' }, { interval: '1 hrs' }, { timezone: 'Asia/Kolkata' }, { end_date: '01/01/2030' }, { start_date: '01/01/2027' }]) {
      assert.notEqual(scheduleKey(s), scheduleKey({ ...s, ...over }), JSON.stringify(over));
    }
  });
});

describe('scheduledSnapshotType (fullbackup_interval)', () => {
  it('-1 never forces (the snapshot start makes the first one full); 0 always full; N allows N incrementals; no full left → full', () => {
    assert.equal(scheduledSnapshotType('-1', 50), 'incremental');
    assert.equal(scheduledSnapshotType('0', 0), 'full');
    assert.equal(scheduledSnapshotType('2', 0), 'incremental');
    assert.equal(scheduledSnapshotType('2', 1), 'incremental');
    assert.equal(scheduledSnapshotType('2', 2), 'full');
    assert.equal(scheduledSnapshotType('-1', null), 'incremental');
    assert.equal(scheduledSnapshotType('5', null), 'full');
  });
});

describe('retentionVictims', () => {
  const snap = (i: number, over: Partial<RetentionCandidate> = {}): RetentionCandidate => ({ id: `s${i}`, status: 'available', created_at: NOW + i * HOUR, pinned: false, ...over });
  const count = (n: number) => ({ type: RETENTION_TYPES[0], value: String(n) });
  const days = (n: number) => ({ type: RETENTION_TYPES[1], value: String(n) });

  it('F12: 4 snapshots, keep 3 → the first goes', () => {
    assert.deepEqual(retentionVictims([snap(1), snap(2), snap(3), snap(4)], count(3), NOW, 's4'), ['s1']);
  });

  it('oldest first, several at once; nothing when within the count', () => {
    assert.deepEqual(retentionVictims([snap(3), snap(1), snap(5), snap(2), snap(4)], count(2), NOW, 's5'), ['s1', 's2', 's3']);
    assert.deepEqual(retentionVictims([snap(1), snap(2)], count(3), NOW, 's2'), []);
  });

  it('pinned snapshots are never deleted and do not count', () => {
    const v = retentionVictims([snap(1, { pinned: true }), snap(2), snap(3), snap(4)], count(2), NOW, 's4');
    assert.deepEqual(v, ['s2']);
  });

  it('a snapshot being restored is kept (counted) and not deleted; failed ones outside the window go', () => {
    const v = retentionVictims([snap(1, { status: 'restoring' }), snap(2, { status: 'error' }), snap(3), snap(4), snap(5)], count(2), NOW, 's5');
    assert.deepEqual(v, ['s2', 's3']); // s1 is beyond the window but being restored: reconsidered next time
    // error snapshots inside the window stay; they do not count toward the kept ones
    assert.deepEqual(retentionVictims([snap(1), snap(2), snap(3, { status: 'error' }), snap(4)], count(2), NOW, 's4'), ['s1']);
  });

  it('the snapshot just taken counts as the newest, even if its created_at is older', () => {
    assert.deepEqual(retentionVictims([snap(1), snap(2), snap(3)], count(1), NOW, 's1'), ['s2', 's3']);
  });

  it('with exactly N good snapshots, failed ones older than all of them go', () => {
    assert.deepEqual(retentionVictims([snap(1, { status: 'error' }), snap(2, { status: 'cancelled' }), snap(3)], count(1), NOW, null), ['s1', 's2']);
    assert.deepEqual(retentionVictims([snap(1, { status: 'error' }), snap(3)], count(2), NOW, null), []);
  });

  it('running and deleting snapshots are left alone', () => {
    assert.deepEqual(retentionVictims([snap(1, { status: 'deleting' }), snap(2, { status: 'uploading' }), snap(3), snap(4)], count(1), NOW, 's4'), ['s3']);
  });

  it('by days: older than N days go, the newest is kept', () => {
    const list = [snap(0, { created_at: NOW - 10 * DAY }), snap(1, { created_at: NOW - 3 * DAY - 1 }), snap(2, { created_at: NOW - 2 * DAY }), snap(3, { created_at: NOW - 20 * DAY })];
    assert.deepEqual(retentionVictims(list, days(3), NOW, 's2'), ['s3', 's0', 's1']);
    assert.deepEqual(retentionVictims([snap(0, { created_at: NOW - 10 * DAY })], days(3), NOW, 's0'), []);
    assert.deepEqual(retentionVictims([snap(0, { created_at: NOW - 10 * DAY, pinned: true })], days(3), NOW, null), []);
  });

  it('an unusable value deletes nothing', () => {
    assert.deepEqual(retentionVictims([snap(1), snap(2)], { type: RETENTION_TYPES[0], value: 'x' }, NOW, null), []);
  });
});
