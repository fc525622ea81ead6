import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mutateDisk, selectiveRestoreAndWait, sha256File, startHarness, takeSnapshotAndWait, waitFor, type Harness, type TestUser, type TestVm } from './harness.js';

/**
 * Disaster recovery through the API against a real service (workloadmgr-api §4.12, issue 17):
 * snapshots of two workloads in two projects, one encrypted and on a second backup target
 * (LIFEBOAT_TARGETS); the database and everything of LIFEBOAT_HOME but the encryption key file
 * are deleted (the targets live elsewhere) (the identity file, inventory and VM disks stand for the cloud,
 * which survives); a fresh service imports from the target and every snapshot restores
 * byte-exact. Then orphans (a project removed from the identity file) and reassign (F18).
 */

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Taken {
  sid: string;
  wid: string;
  owner: TestUser;
  vm: TestVm;
  /** Disk device → sha256 of the source disk when the snapshot was taken. */
  truth: Map<string, string>;
  detail: Json;
}

/** Everything of a snapshot's detail view an import must reproduce (metadata records get new ids). */
function comparable(s: Json): Json {
  const { metadata, ...rest } = s;
  return { ...rest, metadata: Object.fromEntries((metadata as { key: string; value: string }[]).map((m) => [m.key, m.value])) };
}

const fault = (r: { json: Json }) => (Object.values(r.json ?? {})[0] as { code: number; message: string } | undefined) ?? { code: 0, message: '' };

describe('disaster recovery: import from the target, orphans, reassign', () => {
  let h: Harness;
  // Two backup targets outside LIFEBOAT_HOME: `local` (the default) and `second`.
  const targets = mkdtempSync(join(tmpdir(), 'lifeboat-dr-targets-'));
  const taken: Taken[] = [];
  let w1 = '';
  let w2 = '';
  let policyId = '';
  let damagedSid = '';
  let usageBefore: Map<string, Json>;

  const inventory = (): { id: string; disks: { device: string; path: string }[] }[] => JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances;

  const createWorkload = async (u: TestUser, name: string, vm: TestVm, metadata: Record<string, string> = {}, extra: Record<string, unknown> = {}): Promise<string> => {
    const r = await h.api(u, 'POST', '/workloads', { workload: { name, instances: [{ 'instance-id': vm.id }], metadata, ...extra } });
    assert.equal(r.status, 202, r.text);
    const wid = r.json.workload.id as string;
    await waitFor(async () => (await h.api(u, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
    return wid;
  };

  const snap = async (u: TestUser, wid: string, vm: TestVm, full: boolean): Promise<Taken> => {
    const truth = new Map(vm.disks.map((d) => [d.device, sha256File(d.path)]));
    const s = await takeSnapshotAndWait(h, u, wid, full, 60_000);
    const t = { sid: s.id as string, wid, owner: u, vm, truth, detail: s };
    return t;
  };

  /** Selective restore into a new instance; every disk compared with the source at snapshot time. */
  const assertRestoresExact = async (t: Taken, as: TestUser = t.owner) => {
    const done = await selectiveRestoreAndWait(h, as, t.wid, t.sid, t.vm.id, 60_000);
    assert.equal(done.status, 'available', done.error_msg);
    const inst = inventory().find((i) => i.id === done.instances[0].id);
    assert.ok(inst, 'restored instance in the inventory');
    for (const [device, sha] of t.truth) {
      const disk: { device: string; path: string } | undefined = inst.disks.find((d) => d.device === device);
      assert.ok(disk, `restored ${device}`);
      assert.equal(sha256File(disk.path), sha, `snapshot ${t.sid} ${device} byte-exact`);
    }
  };

  before(async () => {
    h = await startHarness({ diskBytes: 1024 * 1024, env: { LIFEBOAT_TARGETS: `local=file://${join(targets, 'local')};second=file://${join(targets, 'second')}` } });
    const vmA = h.vms.find((v) => v.name === 'vm-a1')!;
    const vmB = h.vms.find((v) => v.name === 'vm-b1')!;
    const p = await h.api(h.admin, 'POST', '/workload_policy/', {
      workload_policy: { display_name: 'dr-policy', display_description: 'kept on the target', field_values: { interval: '6 hrs', retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '5', fullbackup_interval: '3' }, metadata: {} },
    });
    assert.ok(p.status === 200 || p.status === 202, p.text);
    policyId = p.json.policy.id;
    const a = await h.api(h.admin, 'POST', `/workload_policy/${policyId}/assign`, { policy: { add_projects: [h.alice.projectId], remove_projects: [] } });
    assert.equal(a.status, 200, a.text);

    // dr-alpha is encrypted and on the second target: its data key is there, its key-encryption key in the kept key file.
    w1 = await createWorkload(h.alice, 'dr-alpha', vmA, { policy_id: policyId }, { encryption: true, backup_target_types: 'second' });
    w2 = await createWorkload(h.bob, 'dr-beta', vmB);
    taken.push(await snap(h.alice, w1, vmA, true));
    mutateDisk(vmA.disks[0]!.path, 8);
    mutateDisk(vmA.disks[1]!.path, 3);
    taken.push(await snap(h.alice, w1, vmA, false));
    taken.push(await snap(h.bob, w2, vmB, true));
    mutateDisk(vmB.disks[0]!.path, 4);
    taken.push(await snap(h.bob, w2, vmB, false));
    // One more snapshot of w2 whose manifest gets damaged on the target: skipped and reported.
    mutateDisk(vmB.disks[0]!.path, 2);
    damagedSid = (await snap(h.bob, w2, vmB, false)).sid;
    for (const t of taken) t.detail = (await h.api(t.owner, 'GET', `/snapshots/${t.sid}`)).json.snapshot;
    usageBefore = new Map();
    usageBefore.set(w1, (await h.api(h.alice, 'GET', `/workloads/${w1}`)).json.workload.storage_usage);

    await h.restart(() => {
      const manifest = join(targets, 'local', 'manifests', `${damagedSid}.json`);
      const text = readFileSync(manifest, 'utf8');
      writeFileSync(manifest, text.replace('"snapshot_type"', '"snapshot_typo"'));
      // The primary site is gone: only the targets, the key file (and the cloud: identity, inventory, VM disks) remain.
      const keep = new Set(['encryption.key', 'identity.json', 'inventory.json', 'disks']);
      for (const f of readdirSync(h.home)) if (!keep.has(f)) rmSync(join(h.home, f), { recursive: true, force: true });
    });
  });
  after(async () => {
    await h?.close();
    rmSync(targets, { recursive: true, force: true });
  });

  test('a fresh service lists the target\'s workloads as importable, per project too; members cannot', async () => {
    assert.equal((await h.api(h.alice, 'GET', '/workloads')).json.workloads.length, 0, 'the database is new');
    const all = await h.api(h.admin, 'GET', '/workloads/get_list/import_workloads');
    assert.equal(all.status, 200, all.text);
    assert.deepEqual(all.json.workloads.map((w: Json) => w.id).sort(), [w1, w2].sort());
    const alpha = await h.api(h.admin, 'GET', `/workloads/get_list/import_workloads?project_id=${h.alice.projectId}`);
    assert.deepEqual(alpha.json.workloads.map((w: Json) => [w.id, w.name, w.project_id]), [[w1, 'dr-alpha', h.alice.projectId]]);
    const denied = await h.api(h.alice, 'GET', '/workloads/get_list/import_workloads');
    assert.equal(denied.status, 403);
    assert.equal((await h.api(h.alice, 'POST', '/workloads/import_workloads', {})).status, 403);
  });

  test('import: every workload with its snapshots (every detail field), paused schedule, policy, storage usage; the damaged manifest is reported', async () => {
    const r = await h.api(h.admin, 'POST', '/workloads/import_workloads', { workload_ids: [] });
    assert.equal(r.status, 200, r.text);
    const { imported_workloads: imported, failed_workloads: failed, skipped_snapshots: skipped } = r.json.workloads;
    assert.deepEqual(imported.map((w: Json) => w.id).sort(), [w1, w2].sort());
    assert.deepEqual(failed, []);
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0].snapshot_id, damagedSid);
    assert.match(skipped[0].reason, /checksum/);
    for (const w of imported) {
      assert.equal(w.status, 'available');
      assert.equal(w.jobschedule.enabled, false, 'imported schedules are paused');
    }
    const wa = imported.find((w: Json) => w.id === w1);
    assert.equal(wa.project_id, h.alice.projectId);
    assert.equal(wa.metadata.policy_id, policyId);
    assert.equal(wa.encryption, true, 'imported as the encrypted workload it was');
    assert.ok(readdirSync(join(targets, 'second', 'datakeys')).length === 1 && !readdirSync(join(targets, 'local')).includes('datakeys'), 'the data key lives on the workload\'s own target');
    assert.equal(wa.jobschedule.interval, '6 hrs');
    assert.deepEqual(wa.storage_usage, usageBefore.get(w1));
    // The policy came back from the target, assigned to alpha.
    const pol = await h.api(h.admin, 'GET', `/workload_policy/${policyId}`);
    assert.equal(pol.status, 200, pol.text);
    assert.equal(pol.json.policy.name, 'dr-policy');
    assert.deepEqual(pol.json.policy.policy_assignments.map((x: Json) => x.project_id), [h.alice.projectId]);
    for (const t of taken) {
      const s = await h.api(t.owner, 'GET', `/snapshots/${t.sid}`);
      assert.equal(s.status, 200, s.text);
      assert.deepEqual(comparable(s.json.snapshot), comparable(t.detail), `snapshot ${t.sid} detail view`);
    }
    assert.equal((await h.api(h.bob, 'GET', `/snapshots/${damagedSid}`)).status, 404);
  });

  test('importing again changes nothing: each existing workload is skipped with a reason', async () => {
    const r = await h.api(h.admin, 'POST', '/workloads/import_workloads');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.workloads.imported_workloads, []);
    assert.deepEqual(r.json.workloads.failed_workloads.map((f: Json) => [f.id, f.reason]).sort(), [[w1, 'Workload already exists in this installation'], [w2, 'Workload already exists in this installation']].sort());
    assert.equal((await h.api(h.admin, 'GET', '/workloads/get_list/import_workloads')).json.workloads.length, 0);
    const bad = await h.api(h.admin, 'POST', '/workloads/import_workloads', { workload_ids: ['nope'] });
    assert.equal(bad.status, 400);
    assert.match(fault(bad).message, /workload_ids/);
  });

  test('every imported snapshot restores byte-exact', async () => {
    for (const t of taken) await assertRestoresExact(t);
  });

  test('an incremental after the import uses the imported chain', async () => {
    const t = taken[1]!;
    mutateDisk(t.vm.disks[0]!.path, 2);
    const next = await snap(h.alice, w1, t.vm, false);
    assert.equal(next.detail.snapshot_type, 'incremental');
    assert.ok(readdirSync(join(targets, 'second', 'manifests')).includes(`${next.sid}.json`), 'the imported workload still writes to its own target');
    await assertRestoresExact(next);
  });

  const userId = (name: string): string => (JSON.parse(readFileSync(join(h.home, 'identity.json'), 'utf8')).users as { id: string; name: string }[]).find((u) => u.name === name)!.id;

  test('orphans: a workload whose project left the identity file is listed; members cannot ask', async () => {
    const path = join(h.home, 'identity.json');
    const original = readFileSync(path, 'utf8');
    const id = JSON.parse(original);
    id.projects = id.projects.filter((p: { name: string }) => p.name !== 'beta');
    for (const u of id.users) u.roles = u.roles.filter((r: { project: string }) => r.project !== 'beta');
    assert.equal((await h.api(h.admin, 'GET', '/workloads/orphan_workloads/')).json.workloads.length, 0, 'nothing orphaned yet');
    writeFileSync(path, JSON.stringify(id), { mode: 0o600 });
    try {
      const r = await h.api(h.admin, 'GET', '/workloads/orphan_workloads/');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.workloads.map((w: Json) => [w.id, w.in_database, w.orphan_reason]), [[w2, true, `Project ${h.bob.projectId} no longer exists`]]);
      assert.equal((await h.api(h.alice, 'GET', '/workloads/orphan_workloads/')).status, 403);
    } finally {
      writeFileSync(path, original, { mode: 0o600 });
    }
    await waitFor(async () => (await h.api(h.admin, 'GET', '/workloads/orphan_workloads/')).json.workloads.length === 0, 10_000, 'identity file followed again');
  });

  const reassign = (body: unknown) => h.api(h.admin, 'POST', '/workloads/reasign_workloads', body);
  const f18 = (wid: string, user: string, project: string) => [{ workload_ids: [wid], migrate_cloud: false, old_tenant_ids: [], user_id: user, new_tenant_id: project }];

  test('reassign (F18): to another project and user and back, available each time; restores work in both places', async () => {
    const r = await reassign(f18(w1, userId('bob'), h.bob.projectId));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.workloads.reassigned_workloads[0].status, 'available');
    assert.equal(r.json.workloads.reassigned_workloads[0].project_id, h.bob.projectId);
    assert.equal(r.json.workloads.reassigned_workloads[0].user_id, userId('bob'));
    assert.deepEqual(r.json.workloads.failed_workloads, []);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${w1}`)).status, 404);
    assert.equal((await h.api(h.bob, 'GET', `/snapshots/${taken[0]!.sid}`)).json.snapshot.project_id, h.bob.projectId);
    await assertRestoresExact(taken[0]!, h.bob);
    const back = await reassign(f18(w1, userId('alice'), h.alice.projectId));
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json.workloads.reassigned_workloads[0].status, 'available');
    await assertRestoresExact(taken[1]!, h.alice);
  });

  test('reassign to an unknown project or user, or a user without a role there → 400, nothing changed', async () => {
    const cases: [unknown, RegExp][] = [
      [f18(w1, userId('bob'), 'f'.repeat(32)), /project f{32} does not exist/],
      [f18(w1, 'e'.repeat(32), h.bob.projectId), /user e{32} does not exist/],
      [f18(w1, userId('alice'), h.bob.projectId), /has no role on project/],
      [{ workload_ids: [w1] }, /non-empty list/],
      [[{ workload_ids: [w1], old_tenant_ids: [h.alice.projectId], user_id: userId('bob'), new_tenant_id: h.bob.projectId }], /either workload_ids or old_tenant_ids/],
    ];
    for (const [body, msg] of cases) {
      const r = await reassign(body);
      assert.equal(r.status, 400, r.text);
      assert.match(fault(r).message, msg);
    }
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${w1}`)).json.workload.project_id, h.alice.projectId);
    assert.equal((await h.api(h.alice, 'POST', '/workloads/reasign_workloads', f18(w1, userId('bob'), h.bob.projectId))).status, 403);
  });

  test('reassign that fails half-way (a busy workload) changes nothing and names the workload', async () => {
    const db = h.lb.store.db;
    await db.updateTable('workloads').set({ status: 'locked' }).where('id', '=', w2).execute();
    try {
      const r = await reassign([...f18(w1, userId('bob'), h.bob.projectId), ...f18(w2, userId('alice'), h.alice.projectId)]);
      assert.equal(r.status, 400, r.text);
      assert.match(fault(r).message, new RegExp(`Workload ${w2} \\(dr-beta\\).*no workload was reassigned`));
    } finally {
      await db.updateTable('workloads').set({ status: 'available' }).where('id', '=', w2).execute();
    }
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${w1}`)).json.workload.project_id, h.alice.projectId, 'w1 did not move');
    assert.equal((await h.api(h.bob, 'GET', `/workloads/${w2}`)).json.workload.project_id, h.bob.projectId);
  });
});
