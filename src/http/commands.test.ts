import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../lib/errors.js';
import { parseCreateWorkload, parseModifyWorkload } from './workload.commands.js';
import { parseTakeSnapshot } from './snapshot.commands.js';
import { parseCreateRestore } from './restore.commands.js';
import { parseAssignPolicy, parseCreatePolicy, parseUpdatePolicy } from './policy.commands.js';
import { parseCreateQuotas, parseUpdateQuota } from './quota.commands.js';
import { parseSettingsList, parseSettingsMap } from './setting.commands.js';

const VM = '7d3e0f2a-1b2c-4d5e-8f90-123456789abc';
const PARALLEL = '2ddd528d-c9b4-4d7e-8722-cc395140255a';
const WORKLOADS_QUOTA = '1c5d4290-2e08-11ea-889c-7440bb00b67d';

/** Asserts a 400 whose message matches `re` (the text the client reads). */
function bad(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ValidationError && re.test(e.message), String(re));
}

describe('http commands: bodies become typed commands, bad ones a 400 naming the field', () => {
  it('workload create: defaults, canonical ids, parsed schedule; every bad field named', () => {
    const c = parseCreateWorkload({ workload: { instances: [{ 'instance-id': VM.toUpperCase() }], jobschedule: { start_time: '21:05', enabled: 'False' } } });
    assert.deepEqual(c, {
      name: 'workload',
      description: 'no-description',
      workloadTypeId: 'f82ce76f-17fe-438b-aa37-7a023058e50d',
      sourcePlatform: 'openstack',
      instanceIds: [VM],
      jobschedule: { enabled: false, start_time: '09:05 PM' },
      metadata: {},
    });
    assert.equal(parseCreateWorkload({ workload: { workload_type_id: PARALLEL, instances: [] } }).workloadTypeId, PARALLEL);
    bad(() => parseCreateWorkload({ workloads: {} }), /^Incorrect request body format$/);
    bad(() => parseCreateWorkload({ workload: { instances: [{ 'instance-id': VM }], workload_type_id: 'x' } }), /^Invalid workload type$/);
    bad(() => parseCreateWorkload({ workload: {} }), /instances list is required/);
    bad(() => parseCreateWorkload({ workload: { instances: [{ 'instance-id': VM }, { 'instance-id': VM }] } }), /listed twice/);
    bad(() => parseCreateWorkload({ workload: { instances: [], jobschedule: { interval: 'often' } } }), /^Invalid interval/);
    bad(() => parseCreateWorkload({ workload: { instances: [], metadata: { k: {} } } }), /^Invalid metadata\.k/);
  });

  it('workload modify: only what the body names, blanks change nothing', () => {
    assert.deepEqual(parseModifyWorkload({ workload: { name: ' ', description: 'd' } }), { description: 'd', jobschedule: {} });
    assert.deepEqual(parseModifyWorkload({ workload: { metadata: null, instances: [{ 'instance-id': VM }] } }), { jobschedule: {}, metadata: {}, instanceIds: [VM] });
  });

  it('take snapshot: query `full`, body snapshot_type wins, optional body', () => {
    assert.deepEqual(parseTakeSnapshot({}, undefined), { name: 'Snapshot', description: 'no-description', type: 'incremental', isScheduled: false });
    assert.equal(parseTakeSnapshot({ full: '1' }, undefined).type, 'full');
    assert.equal(parseTakeSnapshot({ full: 'true' }, { snapshot: { snapshot_type: 'incremental', is_scheduled: 'True' } }).type, 'incremental');
    bad(() => parseTakeSnapshot({ full: 'maybe' }, undefined), /^Invalid value for full/);
    bad(() => parseTakeSnapshot({}, { snapshot: { snapshot_type: 'differential' } }), /^Invalid snapshot_type/);
  });

  it('restore: kind, instances and network mappings checked for shape; the options kept as posted', () => {
    const options = {
      type: 'openstack',
      restore_type: 'selective',
      openstack: {
        instances: [{ id: VM.toUpperCase(), include: 'False', vdisks: [{ id: '/dev/vda' }], name: '' }],
        networks_mapping: { networks: [{ snapshot_network: { id: 'net-1' }, target_network: { id: VM, subnet: { id: VM } } }] },
      },
    };
    const c = parseCreateRestore({ restore: { options } });
    assert.equal(c.options, options);
    assert.equal(c.name, 'restore');
    assert.deepEqual(c.request, {
      kind: 'selective',
      instances: [{ id: VM, include: false, diskIds: ['/dev/vda'] }],
      networks: [{ snapshotNetworkId: 'net-1', target: { id: VM, name: VM, subnet: { id: VM } } }],
    });
    assert.deepEqual(parseCreateRestore({ restore: { options: { type: 'openstack', oneclickrestore: true } } }).request, { kind: 'oneclick', instances: [], networks: [] });
    bad(() => parseCreateRestore({ restore: {} }), /restore_type must be/);
    bad(() => parseCreateRestore({ restore: { options: { type: 'vmware', oneclickrestore: true } } }), /type must be "openstack"/);
    bad(() => parseCreateRestore({ restore: { options: { type: 'openstack', restore_type: 'inplace' } } }), /openstack\.instances must list/);
    const sel = (openstack: unknown) => () => parseCreateRestore({ restore: { options: { type: 'openstack', restore_type: 'selective', openstack } } });
    bad(sel({ instances: [{ id: VM }, { id: VM }] }), /listed twice/);
    bad(sel({ instances: [{ id: VM, vdisks: [{ id: 3 }] }] }), /disk 3 is not a disk/);
    bad(sel({ instances: [{}] }), /needs an "id"/);
    bad(sel({ instances: [], networks_mapping: { networks: [{ snapshot_network: { id: 'n' }, target_network: { id: 'not-a-uuid' } }] } }), /target network id/);
    bad(sel({ instances: [], networks_mapping: { networks: [{ snapshot_network: { id: 'n' }, target_network: { id: 'network:a b' } }] } }), /target network id/);
    bad(sel({ instances: [{ id: VM, power_on: 'perhaps' }] }), /power_on/);
    bad(sel({ instances: [{ id: VM, vdisks: [{ id: '/dev/vda', new_volume_type: 7 }] }] }), /new_volume_type/);
  });

  it('restore: Lifeboat power_on (per instance, or for all), new_volume_type and availability_zone per disk, libvirt network:/bridge: targets', () => {
    const req = parseCreateRestore({
      restore: {
        options: {
          type: 'openstack',
          restore_type: 'selective',
          power_on: 'False',
          openstack: {
            instances: [{ id: VM, power_on: true, vdisks: [{ id: '/dev/vda', new_volume_type: 'qcow2' }, { id: '/dev/vdb', availability_zone: 'az2', new_volume_type: '' }] }],
            networks_mapping: { networks: [{ snapshot_network: { id: 'network:default' }, target_network: { id: 'bridge:br0' } }] },
          },
        },
      },
    }).request;
    assert.deepEqual(req, {
      kind: 'selective',
      instances: [{ id: VM, include: true, diskIds: ['/dev/vda', '/dev/vdb'], volumeTypes: { '/dev/vda': 'qcow2' }, volumeZones: { '/dev/vdb': 'az2' }, powerOn: true }],
      networks: [{ snapshotNetworkId: 'network:default', target: { id: 'bridge:br0', name: 'bridge:br0' } }],
      powerOn: false,
    });
    assert.deepEqual(parseCreateRestore({ restore: { options: { type: 'openstack', restore_type: 'oneclick', power_on: null } } }).request, { kind: 'oneclick', instances: [], networks: [] });
  });

  it('workload policies: the four fields, canonical numbers, assign lists', () => {
    const fields = { interval: '1 hrs', retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '08', fullbackup_interval: 2 };
    assert.deepEqual(parseCreatePolicy({ workload_policy: { display_name: 'gold', field_values: fields } }), {
      name: 'gold',
      description: 'No description',
      fields: { interval: '1 hrs', retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '8', fullbackup_interval: '2' },
      metadata: {},
    });
    bad(() => parseCreatePolicy({ workload_policy: { field_values: fields } }), /^Please provide policy name\.$/);
    bad(() => parseCreatePolicy({ workload_policy: { name: 'x', field_values: { interval: '1 hrs' } } }), /^Please provide all of/);
    bad(() => parseUpdatePolicy({ policy: { field_values: { colour: 'red' } } }), /^Please provide only/);
    assert.deepEqual(parseUpdatePolicy({ policy: { name: '', field_values: { retention_policy_value: 3 } } }), { fields: { retention_policy_value: '3' } });
    assert.deepEqual(parseAssignPolicy({ policy: { add_projects: ['a', 'a', ' b '], remove_projects: 'c' } }), { addProjects: ['a', 'b'], removeProjects: ['c'] });
    bad(() => parseAssignPolicy({ policy: {} }), /^Please provide tenant_id's/);
    bad(() => parseAssignPolicy({ policy: { add_projects: ['a'], remove_projects: ['a'] } }), /same project: a/);
  });

  it('quotas: one limit per type, watermark defaults to the limit, update needs a value', () => {
    assert.deepEqual(parseCreateQuotas({ allowed_quotas: [{ quota_type_id: WORKLOADS_QUOTA.toUpperCase(), allowed_value: '5' }] }, 'p1'), [{ typeId: WORKLOADS_QUOTA, allowed: 5, high: 5 }]);
    bad(() => parseCreateQuotas({ quotas: [] }, 'p1'), /^Incorrect request body format$/);
    bad(() => parseCreateQuotas({ allowed_quotas: [{ quota_type_id: WORKLOADS_QUOTA, allowed_value: 1, project_id: 'p2' }] }, 'p1'), /does not match the project in the URL/);
    bad(() => parseCreateQuotas({ allowed_quotas: [{ quota_type_id: WORKLOADS_QUOTA, allowed_value: -1 }] }, 'p1'), /^Invalid allowed_value/);
    assert.deepEqual(parseUpdateQuota({ allowed_quotas: { high_watermark: 3, quota_type_id: WORKLOADS_QUOTA } }), { high: 3, quotaTypeId: WORKLOADS_QUOTA });
    bad(() => parseUpdateQuota({ allowed_quotas: {} }), /^Please provide allowed_value or high_watermark$/);
  });

  it('settings: list and map forms, names checked, each name once', () => {
    const [s] = parseSettingsList({ settings: [{ name: ' smtp_port ', value: 587, is_hidden: 'true', metadata: [{ key: 'k', value: 1 }] }] });
    assert.deepEqual(s, { name: 'smtp_port', value: '587', description: '', category: '', type: '', isPublic: false, isHidden: true, metadata: { k: 1 } });
    assert.deepEqual(
      parseSettingsMap({ settings: { a: 'x', b: true } }).map((i) => [i.name, i.value]),
      [
        ['a', 'x'],
        ['b', 'true'],
      ],
    );
    assert.deepEqual(parseSettingsMap({ settings: {} }), []);
    bad(() => parseSettingsList({ settings: [] }), /expected 1 to 100 items/);
    bad(() => parseSettingsList({ settings: [{ name: 'a b' }] }), /^Invalid setting name/);
    bad(() => parseSettingsList({ settings: [{ name: 'a' }, { name: 'a' }] }), /a is listed twice/);
    bad(() => parseSettingsList([]), /^Incorrect request body format$/);
  });
});
