import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { SMTPServer } from 'smtp-server';
import { join } from 'node:path';
import { startHarness, waitFor, type Harness, type TestUser } from './harness.js';

/**
 * Tempest flows F12–F17 through the real service as `npm start` wires it (test/harness.ts):
 * retention, global job scheduler, schedule edits vs the global switch, workload policies,
 * project quotas, settings. The scheduler's firing in time (F2) is covered with a ManualClock
 * in test/scheduler.api.test.ts and src/jobs/scheduler.test.ts.
 */
describe('schedules, policies, quotas and settings on the real service', () => {
  let h: Harness;
  let policyDir: string;
  const PARALLEL = '2ddd528d-c9b4-4d7e-8722-cc395140255a';
  const create = (u: TestUser, vms: string[], extra: Record<string, unknown> = {}) =>
    h.api(u, 'POST', '/workloads', { workload: { name: 'w', workload_type_id: PARALLEL, source_platform: 'openstack', instances: vms.map((v) => ({ 'instance-id': v })), jobschedule: {}, metadata: {}, description: 'test', ...extra } });
  const available = (u: TestUser, w: string) => waitFor(async () => (await h.api(u, 'GET', `/workloads/${w}`)).json.workload.status === 'available', 20_000, 'available');
  const remove = async (u: TestUser, w: string) => {
    for (const s of (await h.api(u, 'GET', `/snapshots?workload_id=${w}`)).json.snapshots) {
      await h.api(u, 'DELETE', `/snapshots/${s.id}`);
      await waitFor(async () => (await h.api(u, 'GET', `/snapshots/${s.id}`)).status === 404, 20_000);
      await available(u, w);
    }
    assert.equal((await h.api(u, 'DELETE', `/workloads/${w}`)).status, 202);
    await waitFor(async () => (await h.api(u, 'GET', `/workloads/${w}`)).status === 404, 20_000);
  };

  before(async () => {
    // This operator lets project members choose their SMTP server and send the test e-mail
    // (admin-only by default: see test/smtp-targets.test.ts).
    policyDir = mkdtempSync(join(tmpdir(), 'lifeboat-policy-'));
    const policy = join(policyDir, 'policy.yaml');
    writeFileSync(policy, "'workload:settings_smtp_update': 'rule:admin_or_owner'\n'workload:settings_email_test': 'rule:admin_or_owner'\n");
    h = await startHarness({ env: { LIFEBOAT_POLICY: policy } });
  });
  after(async () => {
    await h.close();
    rmSync(policyDir, { recursive: true, force: true });
  });

  test('F12: retention keeps the newest 3 of 4 full snapshots; the first is gone from the target too', async () => {
    const r = await create(h.alice, [h.vms[2]!.id], { jobschedule: { retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '3', full_backup_interval: '2', enabled: false } });
    const w = r.json.workload.id;
    await available(h.alice, w);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const s = await h.api(h.alice, 'POST', `/workloads/${w}?full=1`, { snapshot: { name: 'Tempest-test-snapshot', description: 'Test', full: 'True' } });
      assert.equal(s.status, 200, s.text);
      ids.push(s.json.snapshot.id);
      await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${s.json.snapshot.id}`)).json.snapshot.status === 'available', 20_000);
      await available(h.alice, w);
    }
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots?workload_id=${w}`)).json.snapshots.length === 3, 20_000, 'retention');
    const left = (await h.api(h.alice, 'GET', `/snapshots?workload_id=${w}`)).json.snapshots.map((s: { id: string }) => s.id);
    assert.deepEqual(left, ids.slice(1));
    await available(h.alice, w);
    assert.ok(!existsSync(join(h.home, 'target', 'manifests', `${ids[0]}.json`)));
    assert.ok(readdirSync(join(h.home, 'target', 'manifests')).some((m) => m.startsWith(ids[3]!)));
    await remove(h.alice, w);
  });

  test('F13/F14: global job scheduler is admin-only, persists, and blocks schedule edits while off', async () => {
    const r = await create(h.alice, [h.vms[2]!.id]);
    const w = r.json.workload.id;
    await available(h.alice, w);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${w}`)).json.workload.jobschedule.enabled, true);
    const denied = await h.api(h.alice, 'POST', '/global_job_scheduler/disable');
    assert.equal(denied.status, 403);
    assert.equal(denied.json.forbidden.message, "Policy doesn't allow workload:workload_disable_global_job_scheduler to be performed.");
    const off = await h.api(h.admin, 'POST', '/global_job_scheduler/disable');
    assert.equal(off.status, 200);
    assert.deepEqual(off.json, { global_job_scheduler: false });
    assert.deepEqual((await h.api(h.alice, 'GET', '/global_job_scheduler')).json, { global_job_scheduler: false });
    const edit = await h.api(h.alice, 'PUT', `/workloads/${w}`, { workload: { jobschedule: { enabled: 'False' } } });
    assert.equal(edit.status, 400);
    assert.equal(edit.json.badRequest.message, 'Cannot update scheduler related fields when global jobscheduler is disabled.');
    const d = (await h.api(h.alice, 'GET', `/workloads/${w}`)).json.workload.jobschedule;
    assert.equal(d.global_jobscheduler, false);
    assert.equal(d.enabled, false);
    assert.ok(!('nextrun' in d));
    assert.deepEqual((await h.api(h.admin, 'POST', '/global_job_scheduler/enable')).json, { global_job_scheduler: true });
    assert.equal((await h.api(h.alice, 'PUT', `/workloads/${w}`, { workload: { jobschedule: { enabled: 'False' } } })).status, 202);
    const js = (await h.api(h.alice, 'GET', `/workloads/${w}`)).json.workload.jobschedule;
    assert.equal(js.enabled, false);
    assert.equal(js.interval, '24hr');
    assert.ok(!('nextrun' in js));
    // pause/resume
    assert.equal((await h.api(h.alice, 'POST', `/workloads/${w}/resume`)).status, 200);
    const resumed = (await h.api(h.alice, 'GET', `/workloads/${w}`)).json.workload.jobschedule;
    assert.equal(resumed.enabled, true);
    assert.equal(typeof resumed.nextrun, 'number');
    const paused = await h.api(h.alice, 'POST', `/workloads/${w}/pause`);
    assert.equal(paused.status, 200);
    assert.equal(paused.text, '');
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${w}`)).json.workload.jobschedule.enabled, false);
    await remove(h.alice, w);
  });

  test('F15: a workload policy applies its fields, cannot change while used, is deleted after', async () => {
    const fields = { fullbackup_interval: '8', retention_policy_type: 'Number of Snapshots to Keep', interval: '1 hrs', retention_policy_value: '3' };
    const denied = await h.api(h.alice, 'POST', '/workload_policy/', { workload_policy: { field_values: fields, display_name: 'p', display_description: 'd', metadata: {} } });
    assert.equal(denied.status, 403);
    assert.equal(denied.json.forbidden.message, "Policy doesn't allow workload:policy_create to be performed.");
    const p = await h.api(h.admin, 'POST', '/workload_policy/', { workload_policy: { field_values: fields, display_name: 'policy2', display_description: 'description', metadata: {} } });
    assert.ok(p.status === 200 || p.status === 202, p.text);
    const pid = p.json.policy.id;
    assert.ok((await h.api(h.admin, 'GET', '/workload_policy/')).json.policy_list.some((x: { id: string }) => x.id === pid));
    const asg = await h.api(h.admin, 'POST', `/workload_policy/${pid}/assign`, { policy: { remove_projects: [], add_projects: [h.alice.projectId] } });
    assert.equal(asg.status, 200, asg.text);
    const w = (await create(h.alice, [h.vms[2]!.id], { metadata: { policy_id: pid } })).json.workload.id;
    await available(h.alice, w);
    const d = (await h.api(h.alice, 'GET', `/workloads/${w}`)).json.workload;
    assert.equal(d.metadata.policy_id, pid);
    for (const [k, v] of Object.entries(fields)) assert.equal(d.jobschedule[k], v, k);
    const upd = await h.api(h.admin, 'PUT', `/workload_policy/${pid}`, { policy: { field_values: { interval: '7 hrs' }, display_name: 'policy_update', display_description: 'description' } });
    assert.ok(upd.status >= 400, upd.text);
    assert.match(upd.text, /Can not update policy: .*It's assigned to workloads\./);
    const del = await h.api(h.admin, 'DELETE', `/workload_policy/${pid}`);
    assert.ok(del.status >= 400);
    assert.match(del.text, /Can not delete policy: .*It's assigned to workloads\./);
    assert.ok((await h.api(h.alice, 'GET', `/workload_policy/assigned/${h.alice.projectId}`)).json.policies.some((x: { policy_id: string }) => x.policy_id === pid));
    await remove(h.alice, w);
    assert.equal((await h.api(h.admin, 'DELETE', `/workload_policy/${pid}`)).status, 202);
    assert.ok(!(await h.api(h.admin, 'GET', '/workload_policy/')).json.policy_list.some((x: { id: string }) => x.id === pid));
  });

  test('F16: a Workloads quota of 1 refuses the second workload; raised to 2 it passes; show has exactly 7 keys', async () => {
    const types = (await h.api(h.admin, 'GET', '/project_quota_types')).json.quota_types;
    const wl = types.find((t: { display_name: string }) => t.display_name === 'Workloads');
    assert.ok(wl);
    const c = await h.api(h.admin, 'POST', `/project_allowed_quotas/${h.alice.projectId}`, { allowed_quotas: [{ quota_type_id: wl.id, project_id: h.alice.projectId, allowed_value: 1, high_watermark: 1 }] });
    assert.equal(c.status, 200, c.text);
    const qid = c.json.allowed_quotas.find((q: { quota_type_id: string }) => q.quota_type_id === wl.id).id;
    const w1 = (await create(h.alice, [h.vms[2]!.id])).json.workload.id;
    await available(h.alice, w1);
    const second = await create(h.alice, [h.vms[1]!.id]);
    assert.equal(second.status, 403, second.text);
    assert.match(second.json.forbidden.message, /Quota exceeded for Workloads/);
    const u = await h.api(h.admin, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: { project_id: h.alice.projectId, allowed_value: 2, high_watermark: 2 } });
    assert.ok(u.status === 202 || u.status === 200, u.text);
    const w2 = (await create(h.alice, [h.vms[1]!.id])).json.workload.id;
    assert.ok(w2);
    await available(h.alice, w2);
    assert.deepEqual((await h.api(h.admin, 'GET', `/project_allowed_quota/${qid}`)).json.allowed_quotas, {
      id: qid,
      project_id: h.alice.projectId,
      quota_type_id: wl.id,
      allowed_value: 2,
      high_watermark: 2,
      version: '4.1.124',
      quota_type_name: 'Workloads',
    });
    assert.equal((await h.api(h.admin, 'DELETE', `/project_allowed_quotas/${qid}`)).status, 202);
    await remove(h.alice, w1);
    await remove(h.alice, w2);
  });

  test('a failed snapshot is mailed to the project with the workload name, snapshot id and error', async () => {
    const mails: string[] = [];
    const server = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      logger: false,
      onAuth(auth, _s, cb) {
        if (auth.username === 'mailer' && auth.password === 'smtp-pw') cb(null, { user: 'mailer' });
        else cb(new Error('Invalid username or password'));
      },
      onData(stream, _s, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push(Buffer.concat(chunks).toString('utf8'));
          cb();
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.server.address() as { port: number }).port;
    try {
      const set = (name: string, value: string) => ({ name, value, category: '', is_public: false, is_hidden: false, metadata: {}, type: '', description: '' });
      const r = await h.api(h.alice, 'POST', '/settings', {
        settings: [
          set('smtp_default_recipient', 'ops@example.com'),
          set('smtp_default_sender', 'lifeboat@example.com'),
          set('smtp_port', String(port)),
          set('smtp_server_name', '127.0.0.1'),
          set('smtp_server_password', 'smtp-pw'),
          set('smtp_server_username', 'mailer'),
          set('smtp_timeout', '10'),
          set('smtp_email_enable', '1'),
        ],
      });
      assert.equal(r.status, 200, r.text);
      const vm = h.vms[2]!;
      const w = (await create(h.alice, [vm.id], { name: 'payroll-db' })).json.workload.id;
      await available(h.alice, w);
      renameSync(vm.disks[0]!.path, `${vm.disks[0]!.path}.gone`); // the disk vanishes: the snapshot fails
      try {
        const s = await h.api(h.alice, 'POST', `/workloads/${w}?full=1`);
        const sid = s.json.snapshot.id;
        const failed = await waitFor(async () => {
          const x = (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot;
          return x.status === 'error' ? x : null;
        }, 20_000, 'snapshot error');
        const raw = await waitFor(async () => mails.find((m) => m.includes(sid)), 20_000, 'failure e-mail');
        // quoted-printable body: join soft line breaks, decode =XX
        const mail = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, hx: string) => String.fromCharCode(parseInt(hx, 16)));
        assert.match(mail, /payroll-db/);
        assert.match(mail, /failed/);
        assert.ok(mail.includes(failed.error_msg.slice(0, 40)), `error message in mail: ${failed.error_msg}`);
        assert.match(mail, /To: .*ops@example\.com/);
        assert.ok(!mail.includes('smtp-pw'));
      } finally {
        renameSync(`${vm.disks[0]!.path}.gone`, vm.disks[0]!.path);
      }
      for (const name of Object.keys((await h.api(h.alice, 'POST', '/workloads/settings')).json.settings)) await h.api(h.alice, 'DELETE', `/settings/${name}`);
      await available(h.alice, w);
      await remove(h.alice, w);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('F17: settings map, SMTP settings without echoing the password, delete answers exactly 200', async () => {
    const items = [
      ['smtp_default_recipient', 'ops@example.com'],
      ['smtp_default_sender', 'lifeboat@example.com'],
      ['smtp_port', '587'],
      ['smtp_server_name', '127.0.0.1'],
      ['smtp_server_password', 'hunter2-secret'],
      ['smtp_server_username', 'mailer'],
      ['smtp_timeout', '10'],
    ].map(([name, value]) => ({ name: name as string, value: value as string, category: '', is_public: false, is_hidden: false, metadata: {}, type: '', description: '' }));
    const r = await h.api(h.alice, 'POST', '/settings', { settings: items });
    assert.equal(r.status, 200, r.text);
    assert.ok(!r.text.includes('hunter2-secret'));
    const got = Object.fromEntries(r.json.settings.map((s: { name: string; value: string }) => [s.name, s.value]));
    for (const it of items) if (it.name !== 'smtp_server_password') assert.equal(got[it.name], it.value);
    const en = await h.api(h.alice, 'POST', '/settings', { settings: [{ name: 'smtp_email_enable', value: '1', category: '', is_public: false, is_hidden: false, metadata: {}, type: '', description: '' }] });
    assert.equal(en.json.settings[0].name, 'smtp_email_enable');
    assert.equal(String(en.json.settings[0].value), '1');
    const map = await h.api(h.alice, 'POST', '/workloads/settings');
    assert.equal(map.status, 200);
    assert.ok(!map.text.includes('hunter2-secret'));
    for (const name of Object.keys(map.json.settings)) assert.equal((await h.api(h.alice, 'DELETE', `/settings/${name}`)).status, 200, name);
    assert.deepEqual((await h.api(h.alice, 'POST', '/workloads/settings')).json.settings, {});
    // another project never sees them
    assert.deepEqual((await h.api(h.bob, 'GET', '/settings')).json.settings, []);
  });
});
