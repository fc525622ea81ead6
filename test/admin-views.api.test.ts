import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATE_CHANGING_GETS } from '../src/http/audit.hook.js';
import { createWorkloadAndWait, makeDisk, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';

const ADMIN_VIEWS = [
  ['/workloads/metrics/storage_usage', 'workload:get_storage_usage'],
  ['/workloads/metrics/tenants_usage', 'workload:get_tenants_usage'],
  ['/workloads/metrics/tenants_chargeback', 'workload:get_tenants_chargeback'],
  ['/workloads/metrics/vms_protected', 'workload:get_protected_vms'],
  ['/workloads/audit/auditlog', 'workload:get_auditlog'],
] as const;

/** Adds a VM with one small disk to project `projectId` in the harness inventory (the platform re-reads it). */
function addVm(h: Harness, projectId: string, name: string): string {
  const path = join(h.home, 'inventory.json');
  const inv = JSON.parse(readFileSync(path, 'utf8')) as { instances: Record<string, unknown>[] };
  const id = randomUUID();
  const disk = join(h.home, 'disks', `${name}.raw`);
  makeDisk(disk, 256 * 1024, 7);
  const template = inv.instances[0]!;
  inv.instances.push({ ...template, id, name, project_id: projectId, disks: [{ device: '/dev/vda', path: disk, format: 'raw' }], nics: [] });
  writeFileSync(path, JSON.stringify(inv, null, 2));
  return id;
}

describe('admin views (workloadmgr-api §4.11): tempest chargeback flows F19, audit log', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  test('F19: tenants usage grows by the new VM and its workload; chargeback, protected VMs, audit log and storage usage show them', async () => {
    const alpha = h.alice.projectId;
    const before = (await h.api(h.admin, 'GET', '/workloads/metrics/tenants_usage')).json;
    const T = before.global_usage.total_vms as number;
    const P = before.tenants_usage[alpha].vms_protected as number;
    assert.equal(before.tenants_usage[alpha].tenant_name, 'alpha');
    assert.equal(before.tenants_usage[alpha].total_vms, 3);

    // "create 1 VM + workload"
    const vmName = `vm-f19-${randomUUID().slice(0, 8)}`;
    const vm = addVm(h, alpha, vmName);
    await waitFor(async () => (await h.api(h.admin, 'GET', '/workloads/metrics/tenants_usage')).json.global_usage.total_vms === T + 1, 10_000, 'the new VM counted');
    const wid = await createWorkloadAndWait(h, h.alice, [vm], 'f19');
    const usage = (await h.api(h.admin, 'GET', '/workloads/metrics/tenants_usage')).json;
    assert.equal(usage.global_usage.total_vms, T + 1);
    assert.equal(usage.tenants_usage[alpha].vms_protected, P + 1);
    assert.equal(usage.global_usage.vms_protected, before.global_usage.vms_protected + 1);
    assert.equal(typeof usage.global_usage.total_capacity, 'number');

    const snap = await takeSnapshotAndWait(h, h.alice, wid, true);
    const cb = (await h.api(h.admin, 'GET', '/workloads/metrics/tenants_chargeback')).json;
    assert.equal(cb[alpha].tenant_name, 'alpha');
    assert.ok(wid in cb[alpha].workloads);
    const w = cb[alpha].workloads[wid];
    assert.deepEqual(w.protected_vms, { [vm]: { name: vmName } });
    assert.ok(snap.size > 0);
    assert.deepEqual(w.snapshots[snap.id], { name: snap.name, size: snap.size, created_at: snap.created_at });
    assert.equal(w.size, snap.size);
    assert.ok(cb[alpha].used_capacity >= snap.size);
    assert.equal(cb[alpha].no_of_workloads, Object.keys(cb[alpha].workloads).length);
    assert.ok(!(wid in (cb[h.bob.projectId]?.workloads ?? {})), "beta's entry holds only beta's workloads");

    const vms = (await h.api(h.admin, 'GET', '/workloads/metrics/vms_protected')).json.protected_vms;
    assert.ok(vms.some((v: { id: string; workload_id: string; project_id: string }) => v.id === vm && v.workload_id === wid && v.project_id === alpha));

    const log = (await h.api(h.admin, 'GET', '/workloads/audit/auditlog?time_in_minutes=1440')).json.auditlog;
    assert.ok(Array.isArray(log));
    const created = log.find((e: { ObjectId: string; Details: string }) => e.ObjectId === wid && e.Details.startsWith('POST /workloads '));
    assert.ok(created, JSON.stringify(log.slice(0, 5)));
    assert.equal(created.UserName, 'alice');
    assert.equal(created.ProjectId, alpha);
    assert.equal(created.ProjectName, 'alpha');
    assert.equal(created.ObjectName, 'f19');
    assert.equal(created.Details, 'POST /workloads (workload:workload_create) → 202');
    assert.match(created.Timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);
    assert.ok(log.some((e: { ObjectId: string; ObjectType: string }) => e.ObjectId === snap.id && e.ObjectType === 'snapshot'), 'the snapshot taken is audited');

    const storage = (await h.api(h.admin, 'GET', '/workloads/metrics/storage_usage')).json;
    const s0 = storage.storage_usage[0];
    assert.notEqual(s0.total_capacity_humanized, null);
    assert.match(s0.total_capacity_humanized, /^\d+\.\d\d [KMGTPE]B$/);
    assert.equal(s0.storage_type, 'nfs');
    assert.equal(s0['nfs_share(s)'][0].status, 'Online');
    assert.ok(s0.full >= snap.size);
    assert.equal(s0.total, s0.full + s0.incremental);
    assert.ok(storage.count_dict.full >= 1);
  });

  test('every admin view: a member gets 403 with the policy message; a URL tenant not the token’s is 400', async () => {
    for (const [path, action] of ADMIN_VIEWS) {
      const r = await h.api(h.alice, 'GET', path);
      assert.equal(r.status, 403, path);
      assert.deepEqual(r.json, { forbidden: { code: 403, message: `Policy doesn't allow ${action} to be performed.` } });
      const foreign = await h.api(h.admin, 'GET', `/v1/${h.alice.projectId}${path}`);
      assert.equal(foreign.status, 400, path);
      assert.equal(foreign.json.badRequest.message, 'Malformed request url');
    }
  });

  test('audit log: bad windows are 400 faults; refused state changes are recorded with their status; reads are not', async () => {
    for (const q of ['time_in_minutes=0', 'time_in_minutes=abc', 'start_range=2026-01-01', 'end_range=01-01-2026', 'start_range=01-02-2026&end_range=01-01-2026']) {
      const r = await h.api(h.admin, 'GET', `/workloads/audit/auditlog?${q}`);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.badRequest.code, 400);
    }
    const wid = await createWorkloadAndWait(h, h.alice, [h.vms[1]!.id], 'audited');
    assert.equal((await h.api(h.bob, 'DELETE', `/workloads/${wid}`)).status, 404);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${wid}`)).status, 200);
    assert.equal((await h.api(h.alice, 'DELETE', `/workloads/${wid}`)).status, 202);
    const today = new Date();
    const day = `${String(today.getUTCMonth() + 1).padStart(2, '0')}-${String(today.getUTCDate()).padStart(2, '0')}-${today.getUTCFullYear()}`;
    const log = (await h.api(h.admin, 'GET', `/workloads/audit/auditlog?start_range=${day}&end_range=${day}`)).json.auditlog as { ObjectId: string; UserName: string; Details: string }[];
    const mine = log.filter((e) => e.ObjectId === wid).reverse();
    assert.deepEqual(
      mine.map((e) => [e.UserName, e.Details]),
      [
        ['alice', 'POST /workloads (workload:workload_create) → 202'],
        ['bob', 'DELETE /workloads/:id (workload:workload_delete) → 404'],
        ['alice', 'DELETE /workloads/:id (workload:workload_delete) → 202'],
      ],
    );
    // A window that ended yesterday holds none of today's entries.
    const y = new Date(Date.now() - 86_400_000);
    const yesterday = `${String(y.getUTCMonth() + 1).padStart(2, '0')}-${String(y.getUTCDate()).padStart(2, '0')}-${y.getUTCFullYear()}`;
    const old = (await h.api(h.admin, 'GET', `/workloads/audit/auditlog?start_range=${yesterday}&end_range=${yesterday}`)).json.auditlog as { ObjectId: string }[];
    assert.ok(!old.some((e) => e.ObjectId === wid));
  });

  test('the state-changing GET routes the audit trail names all exist', () => {
    for (const url of STATE_CHANGING_GETS) assert.ok(h.lb.http!.hasRoute({ method: 'GET', url }), url);
  });
});
