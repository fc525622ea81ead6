import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { applyJobSchedule, defaultJobSchedule, parseInterval } from '../src/domain/jobschedule.js';
import { toApiStartTime, validateCount, validateInterval, validateWorkloadForm, workloadCreateBody, type WorkloadForm } from '../web/src/validation.js';

const VM = '0b5a3c64-7f3e-4a5e-9d2c-1f0e9a8b7c6d';
const good: WorkloadForm = {
  name: 'web tier',
  description: '',
  instanceIds: VM,
  scheduleEnabled: true,
  startTime: '21:30',
  intervalValue: '12',
  intervalUnit: 'hr',
  retentionType: 'Number of Snapshots to Keep',
  retentionValue: '7',
  fullBackupInterval: '-1',
};

/** Whether the API's own parser takes an interval text. */
function apiAccepts(interval: string): boolean {
  try {
    parseInterval(interval);
    return true;
  } catch {
    return false;
  }
}

describe('dashboard workload form validation', () => {
  test('a valid form has no errors and its body is accepted by the API schedule parser', () => {
    assert.deepEqual(validateWorkloadForm(good), {});
    const body = workloadCreateBody(good, 'Europe/Berlin');
    assert.deepEqual(body.workload.instances, [{ 'instance-id': VM }]);
    const { schedule } = applyJobSchedule(defaultJobSchedule(Date.UTC(2026, 0, 1)), body.workload.jobschedule);
    assert.equal(schedule.interval, '12 hr');
    assert.equal(schedule.start_time, '09:30 PM');
    assert.equal(schedule.retention_policy_value, '7');
    assert.equal(schedule.fullbackup_interval, '-1');
    assert.equal(schedule.timezone, 'Europe/Berlin');
  });

  test('the interval check agrees with the API on values around the 1 minute … 366 days bounds', () => {
    const cases: [string, string][] = [
      ['0', 'min'], ['1', 'min'], ['59', 'min'], ['1', 'hr'], ['24', 'hr'], ['8784', 'hr'], ['8785', 'hr'],
      ['366', 'days'], ['367', 'days'], ['52', 'weeks'], ['53', 'weeks'], ['-1', 'hr'], ['1.5', 'hr'], ['abc', 'hr'], ['', 'hr'],
    ];
    for (const [value, unit] of cases) {
      const ours = validateInterval(value, unit);
      const text = `${value} ${unit}`;
      assert.equal('interval' in ours, apiAccepts(text), `${text}: dashboard ${JSON.stringify(ours)}`);
    }
    assert.deepEqual(validateInterval('12', 'parsecs'), { error: 'Choose a unit.' });
  });

  test('each invalid field gets its own message', () => {
    const errs = validateWorkloadForm({ ...good, name: '  ', instanceIds: 'not-a-uuid', startTime: '25:00', intervalValue: '0', retentionValue: '0', fullBackupInterval: '-2', retentionType: 'forever' });
    assert.deepEqual(Object.keys(errs).sort(), ['fullBackupInterval', 'instanceIds', 'intervalValue', 'name', 'retentionType', 'retentionValue', 'startTime']);
    assert.match(errs.instanceIds!, /not-a-uuid/);
    assert.equal(validateWorkloadForm({ ...good, instanceIds: ' \n ' }).instanceIds, 'Enter at least one instance id.');
    assert.equal(validateWorkloadForm({ ...good, name: 'x'.repeat(256) }).name, 'Use at most 255 characters.');
  });

  test('retention and full-backup counts use the API bounds', () => {
    assert.equal(validateCount('1', 1), null);
    assert.equal(validateCount('1000000', 1), null);
    assert.equal(validateCount('1000001', 1), 'Enter at most 1000000.');
    assert.equal(validateCount('-1', -1), null);
    assert.equal(validateCount('-2', -1), 'Enter -1 or more.');
    assert.equal(validateCount('3.5', 1), 'Enter a whole number.');
    for (const v of ['1', '1000000', '0', '1000001']) {
      let api = true;
      try {
        applyJobSchedule(defaultJobSchedule(0), { retention_policy_value: v });
      } catch {
        api = false;
      }
      assert.equal(validateCount(v, 1) === null, api, `retention ${v}`);
    }
  });

  test('start times convert to the API canonical HH:MM AM/PM', () => {
    assert.equal(toApiStartTime('00:05'), '12:05 AM');
    assert.equal(toApiStartTime('12:00'), '12:00 PM');
    assert.equal(toApiStartTime('23:59'), '11:59 PM');
    assert.equal(toApiStartTime('24:00'), null);
    assert.equal(toApiStartTime('9:00'), null);
  });

  test('instance ids: separators, duplicates dropped', () => {
    const other = 'a4c1e2f3-1111-4222-8333-944455556666';
    const body = workloadCreateBody({ ...good, instanceIds: `${VM},\n${other} ${VM}` }, 'UTC');
    assert.deepEqual(body.workload.instances, [{ 'instance-id': VM }, { 'instance-id': other }]);
  });
});
