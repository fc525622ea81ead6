import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { applyJobSchedule, defaultJobSchedule, parseInterval } from '../src/domain/jobschedule.js';
import { parseRestoreOptions } from '../src/http/restore.commands.js';
import { settingValue } from '../src/services/setting.service.js';
import { EMPTY_POLICY_FORM, formFromPolicy, policyBody, validatePolicyForm, formFromWorkload, fromApiStartTime, toApiStartTime, validateCount, validateInterval, validateWorkloadForm, workloadCreateBody, type WorkloadForm } from '../web/src/validation.js';
import { initialRestoreForm, restoreBody, validateRestoreForm, type SnapshotVm } from '../web/src/restore-form.js';
import { EMAIL_FIELDS, emailSettings, validateEmailForm, validateQuota, validateVerifyPercent, type EmailForm } from '../web/src/admin-forms.js';
import { parseStartVerify } from '../src/http/repo-verify.routes.js';
import { parseCreatePolicy, parseUpdatePolicy } from '../src/http/policy.commands.js';
import { storageNumbers } from '../web/src/storage-data.js';
import { parseWireTime } from '../web/src/time.js';

const VM = '0b5a3c64-7f3e-4a5e-9d2c-1f0e9a8b7c6d';
const good: WorkloadForm = {
  name: 'web tier',
  description: '',
  instanceIds: [VM],
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
    const errs = validateWorkloadForm({ ...good, name: '  ', instanceIds: ['not-a-uuid'], startTime: '25:00', intervalValue: '0', retentionValue: '0', fullBackupInterval: '-2', retentionType: 'forever' });
    assert.deepEqual(Object.keys(errs).sort(), ['fullBackupInterval', 'instanceIds', 'intervalValue', 'name', 'retentionType', 'retentionValue', 'startTime']);
    assert.match(errs.instanceIds!, /not-a-uuid/);
    assert.equal(validateWorkloadForm({ ...good, instanceIds: [] }).instanceIds, 'Choose at least one VM.');
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

  test('picked VMs: duplicates dropped, order kept', () => {
    const other = 'a4c1e2f3-1111-4222-8333-944455556666';
    const body = workloadCreateBody({ ...good, instanceIds: [VM, other, VM] }, 'UTC');
    assert.deepEqual(body.workload.instances, [{ 'instance-id': VM }, { 'instance-id': other }]);
  });

  test('the edit form starts from the workload and round-trips its schedule', () => {
    assert.equal(fromApiStartTime('09:30 PM'), '21:30');
    assert.equal(fromApiStartTime('12:05 AM'), '00:05');
    assert.equal(fromApiStartTime('12:00 PM'), '12:00');
    const w = { name: 'db', description: 'd', instances: [{ id: VM }], jobschedule: { enabled: false, interval: '6 hr', start_time: '01:15 PM', retention_policy_type: 'Number of days to retain Snapshots', retention_policy_value: '9', fullbackup_interval: '3' } };
    const f = formFromWorkload(w);
    assert.deepEqual(validateWorkloadForm(f), {});
    const js = workloadCreateBody(f, 'UTC').workload.jobschedule;
    assert.deepEqual([js.enabled, js.interval, js.start_time, js.retention_policy_type, js.retention_policy_value, js.fullbackup_interval], [false, '6 hr', '01:15 PM', 'Number of days to retain Snapshots', '9', '3']);
  });
});

const NET = '5fb7027d-a2ac-4a21-9ee1-438c281d2b26';
const NET2 = '7e1f2a9c-3d4b-4c5e-8f60-112233445566';
const vms: SnapshotVm[] = [
  { id: VM, name: 'web', disks: [{ device: '/dev/vda' }, { device: '/dev/vdb' }], networks: [{ id: NET, name: 'private', subnetId: 'b7b54304-aa82-4d50-91e6-66445ab56db4' }] },
  { id: 'a4c1e2f3-1111-4222-8333-944455556666', name: 'db', disks: [{ device: '/dev/vda' }], networks: [{ id: NET, name: 'private' }] },
];
const targets = [
  { id: NET, name: 'private', subnets: [{ id: 'b7b54304-aa82-4d50-91e6-66445ab56db4' }] },
  { id: NET2, name: 'dr-net', subnets: [{ id: 'c0ffee00-aa82-4d50-91e6-66445ab56db4' }] },
];

describe('dashboard restore wizard validation', () => {
  test('one-click: only a name is needed; the body is what the API parses as one-click', () => {
    const f = initialRestoreForm(vms, 'nightly');
    assert.deepEqual(validateRestoreForm(f, targets), {});
    const body = restoreBody(f, vms, targets);
    assert.equal(parseRestoreOptions(body.restore.options).kind, 'oneclick');
    assert.equal(validateRestoreForm({ ...f, name: ' ' }, targets).name, 'Enter a name for the restore.');
  });

  test('selective: chosen VMs, disks, new names and network mapping reach the API parser as chosen', () => {
    const f0 = initialRestoreForm(vms, 'nightly');
    const f = { ...f0, kind: 'selective' as const, vms: [{ ...f0.vms[0]!, newName: 'web-copy', devices: ['/dev/vdb'] }, { ...f0.vms[1]!, include: false }], networkMap: { [NET]: NET2 } };
    assert.deepEqual(validateRestoreForm(f, targets), {});
    const req = parseRestoreOptions(restoreBody(f, vms, targets).restore.options);
    assert.equal(req.kind, 'selective');
    assert.deepEqual(
      req.instances.map((i) => [i.id, i.include, i.name, i.diskIds]),
      [
        [VM, true, 'web-copy', ['/dev/vdb']],
        ['a4c1e2f3-1111-4222-8333-944455556666', false, 'db-restored', []],
      ],
    );
    assert.deepEqual(req.networks, [{ snapshotNetworkId: NET, target: { id: NET2, name: 'dr-net', subnet: { id: 'c0ffee00-aa82-4d50-91e6-66445ab56db4' } } }]);
  });

  test('selective: a subnet chosen among several reaches the API; one not on the target network is an error; no subnets (libvirt) sends none', () => {
    const f0 = initialRestoreForm(vms, 'nightly');
    const SUB_B = 'c0ffee00-aa82-4d50-91e6-66445ab56dbb';
    const two = { id: '5fb7027d-a2ac-4a21-9ee1-438c281d2b27', name: 'two', subnets: [{ id: 'c0ffee00-aa82-4d50-91e6-66445ab56dba' }, { id: SUB_B }] };
    const f = { ...f0, kind: 'selective' as const, networkMap: { [NET]: two.id }, subnetMap: { [NET]: SUB_B } };
    assert.deepEqual(validateRestoreForm(f, [...targets, two]), {});
    assert.deepEqual(parseRestoreOptions(restoreBody(f, vms, [...targets, two]).restore.options).networks[0]!.target.subnet, { id: SUB_B });
    assert.deepEqual(Object.keys(validateRestoreForm({ ...f, subnetMap: { [NET]: 'b7b54304-aa82-4d50-91e6-66445ab56db4' } }, [...targets, two])), [`subnet-${NET}`]);
    const lv = { id: 'network:default', name: 'default', subnets: [] };
    const fl = { ...f0, kind: 'selective' as const, networkMap: { [NET]: lv.id } };
    assert.deepEqual(validateRestoreForm(fl, [lv]), {});
    assert.deepEqual(parseRestoreOptions(restoreBody(fl, vms, [lv]).restore.options).networks, [{ snapshotNetworkId: NET, target: { id: 'network:default', name: 'default' } }]);
  });

  test('selective and in-place errors: no VM, no disk, empty name, unknown network, no confirmation', () => {
    const f0 = initialRestoreForm(vms, 'nightly');
    const none = { ...f0, kind: 'selective' as const, vms: f0.vms.map((v) => ({ ...v, include: false })) };
    assert.equal(validateRestoreForm(none, targets).vms, 'Choose at least one VM.');
    const bad = { ...f0, kind: 'selective' as const, vms: [{ ...f0.vms[0]!, newName: '', devices: [] }, f0.vms[1]!], networkMap: { [NET]: 'gone' } };
    assert.deepEqual(Object.keys(validateRestoreForm(bad, targets)).sort(), [`net-${NET}`, `vm-${VM}-disks`, `vm-${VM}-name`]);
    const inplace = { ...f0, kind: 'inplace' as const };
    assert.equal(validateRestoreForm(inplace, targets).confirm, 'Confirm that the disks of these VMs are overwritten.');
    const ok = { ...inplace, confirmInPlace: true };
    assert.deepEqual(validateRestoreForm(ok, []), {});
    const req = parseRestoreOptions(restoreBody(ok, vms, targets).restore.options);
    assert.equal(req.kind, 'inplace');
    assert.deepEqual(req.networks, []);
    assert.deepEqual(req.instances[0]!.diskIds, ['/dev/vda', '/dev/vdb']);
  });
});

describe('dashboard admin form validation', () => {
  const blank = Object.fromEntries(EMAIL_FIELDS.map((k) => [k, ''])) as EmailForm;
  /** Whether the API's own check takes the value. */
  const apiTakes = (name: string, v: string) => {
    try {
      settingValue(name, v);
      return true;
    } catch {
      return false;
    }
  };

  test('e-mail settings agree with the API check, field by field', () => {
    const cases: [keyof EmailForm, string][] = [
      ['smtp_port', '25'], ['smtp_port', '0'], ['smtp_port', '65536'], ['smtp_port', 'abc'],
      ['smtp_timeout', '10'], ['smtp_timeout', '11'], ['smtp_server_name', 'mail.example.org'], ['smtp_server_name', 'bad host'],
      ['smtp_default_sender', 'ops@example.org'], ['smtp_default_sender', 'nobody'], ['smtp_default_recipient', 'a@x.org, b@y.org'], ['smtp_default_recipient', 'a@x.org, nope'],
    ];
    for (const [k, v] of cases) assert.equal(validateEmailForm({ ...blank, [k]: v })[k] === undefined, apiTakes(k, v), `${k}=${v}`);
    assert.deepEqual(validateEmailForm(blank), {});
  });

  test('an empty password is left out of the save (unchanged); quotas need whole numbers, warning ≤ limit', () => {
    assert.equal('smtp_server_password' in emailSettings(blank), false);
    assert.equal(emailSettings({ ...blank, smtp_server_password: 's3cret' }).smtp_server_password, 's3cret');
    assert.equal(validateQuota('10', '8'), null);
    assert.equal(validateQuota('10', '11'), 'The warning level cannot be above the limit.');
    assert.equal(validateQuota('-1', '0'), 'Enter the limit as a whole number.');
    assert.equal(validateQuota('5', 'x'), 'Enter the warning level as a whole number.');
  });

  test('the verify percentage is accepted exactly when the API parser takes it', () => {
    const apiTakes = (v: string) => {
      try {
        parseStartVerify({ repo_verification: { read_data_subset: v } });
        return true;
      } catch {
        return false;
      }
    };
    for (const v of ['100', '10%', '0.5', ' 25 % ', '0', '0%', '101', '-5', 'x', '', '1000', '12.5%', '%'])
      assert.equal(validateVerifyPercent(v) === null, apiTakes(v), v);
  });
});

describe('dashboard policy form validation', () => {
  /** Whether the API's create parser takes the form's body. */
  const apiTakes = (f: typeof EMPTY_POLICY_FORM) => {
    try {
      parseCreatePolicy(policyBody(f, 'workload_policy'));
      return true;
    } catch {
      return false;
    }
  };
  const good = { ...EMPTY_POLICY_FORM, name: 'gold', description: 'nightly', intervalValue: '12', intervalUnit: 'hr', retentionValue: '14', fullBackupInterval: '6' };

  test('a valid form is accepted by the API parsers (create and update) with the values typed', () => {
    assert.deepEqual(validatePolicyForm(good), {});
    const cmd = parseCreatePolicy(policyBody(good, 'workload_policy'));
    assert.deepEqual([cmd.name, cmd.description, cmd.fields], ['gold', 'nightly', { interval: '12 hr', retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '14', fullbackup_interval: '6' }]);
    assert.deepEqual(parseUpdatePolicy(policyBody(good, 'policy')).fields, cmd.fields);
  });

  test('each field is refused exactly when the API refuses it', () => {
    const cases: Partial<typeof good>[] = [
      { name: '' }, { name: ' ' }, { name: 'x'.repeat(256) }, { description: 'x'.repeat(256) }, { description: 'x'.repeat(255) },
      { intervalValue: '0' }, { intervalValue: '-1' }, { intervalValue: 'x' }, { intervalValue: '367', intervalUnit: 'days' }, { intervalValue: '1', intervalUnit: 'min' }, { intervalValue: '52', intervalUnit: 'weeks' },
      { retentionType: 'forever' }, { retentionType: 'Number of days to retain Snapshots' },
      { retentionValue: '0' }, { retentionValue: '1000000' }, { retentionValue: '1000001' }, { retentionValue: '2.5' },
      { fullBackupInterval: '-2' }, { fullBackupInterval: '-1' }, { fullBackupInterval: '0' }, { fullBackupInterval: '999' }, { fullBackupInterval: '1000' }, { fullBackupInterval: 'x' },
    ];
    for (const c of cases) {
      const f = { ...good, ...c };
      assert.equal(Object.keys(validatePolicyForm(f)).length === 0, apiTakes(f), JSON.stringify(c).slice(0, 80));
    }
  });

  test('a policy read back fills the form with the same values (any interval spelling)', () => {
    const fields = (interval: string) => [
      { policy_field_name: 'interval', value: interval },
      { policy_field_name: 'retention_policy_type', value: 'Number of days to retain Snapshots' },
      { policy_field_name: 'retention_policy_value', value: '30' },
      { policy_field_name: 'fullbackup_interval', value: '-1' },
    ];
    const f = formFromPolicy({ name: 'p', description: 'No description', field_values: fields('24hr') });
    assert.deepEqual(f, { name: 'p', description: '', intervalValue: '24', intervalUnit: 'hr', retentionType: 'Number of days to retain Snapshots', retentionValue: '30', fullBackupInterval: '-1' });
    assert.equal(formFromPolicy({ name: 'p', description: '', field_values: fields('2 days') }).intervalUnit, 'days');
    assert.equal(formFromPolicy({ name: 'p', description: '', field_values: fields('30 mins') }).intervalUnit, 'min');
    assert.equal(formFromPolicy({ name: 'p', description: '', field_values: fields('6') }).intervalUnit, 'hr');
  });
});

describe('dashboard storage numbers', () => {
  test('full vs incremental bytes, the reduction ratio and the chart columns in time order', () => {
    const n = storageNumbers(
      [
        { created_at: '2026-11-30T10:00:00.000000', finished_at: '2026-11-30T10:01:00.000000', status: 'available', snapshot_type: 'incremental', size: 100, restore_size: 4000 },
        { created_at: '2026-11-30T09:00:00.000000', finished_at: '2026-11-30T09:02:00.000000', status: 'available', snapshot_type: 'full', size: 900, restore_size: 4000 },
        { created_at: '2026-11-30T11:00:00.000000', finished_at: null, status: 'error', snapshot_type: 'full', size: 0, restore_size: 0 },
      ],
      parseWireTime,
    );
    assert.deepEqual([n.fullBytes, n.fullCount, n.incrementalBytes, n.incrementalCount, n.logicalBytes], [900, 1, 100, 1, 8000]);
    assert.equal(n.reduction, 8);
    assert.deepEqual(n.series, [[Date.UTC(2026, 10, 30, 9, 2) / 1000, Date.UTC(2026, 10, 30, 10, 1) / 1000], [900, 1000], [900, null], [null, 100]]);
    assert.equal(storageNumbers([], parseWireTime).reduction, null);
  });
});
