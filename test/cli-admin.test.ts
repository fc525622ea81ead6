import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, takeSnapshotAndWait, waitFor, type Harness, type TestUser } from './harness.js';
import { runClient } from '../src/cli/commands.js';

/**
 * The rest of the vendor CLI against a real server (workloadmgr-api §7): policy-*, quota
 * commands, setting-*, the global job scheduler, workload pause/resume, import, orphans and
 * reassign. Each checks output (-f table/json/value), the `ERROR: ...` style and exit codes.
 */

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** `| key | value |` of a Property/Value table. */
function prop(table: string, key: string): string | undefined {
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length > 1 && cells[1] === key) return cells[2];
  }
  return undefined;
}

describe('lifeboat admin client commands against a real server', () => {
  let h: Harness;

  const envOf = (u: TestUser): Record<string, string> => ({
    OS_AUTH_URL: `${h.url}/identity/v3`,
    OS_USERNAME: u.name,
    OS_PASSWORD: u.password,
    OS_PROJECT_NAME: u.projectName,
  });

  const run = async (u: TestUser, args: string[]): Promise<Run> => {
    let stdout = '';
    let stderr = '';
    const code = await runClient(args, {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s), isTTY: false },
      env: envOf(u),
      fetch: globalThis.fetch.bind(globalThis),
      readFile: (p) => readFileSync(p, 'utf8'),
    });
    return { code, stdout, stderr };
  };
  const ok = async (u: TestUser, args: string[]): Promise<Run> => {
    const r = await run(u, args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const userId = (name: string): string => (JSON.parse(readFileSync(join(h.home, 'identity.json'), 'utf8')).users as { id: string; name: string }[]).find((u) => u.name === name)!.id;

  before(async () => {
    h = await startHarness();
  });
  after(() => h?.close());

  test('policy-create/-show/-update/-assign/-list/list-assigned-policies/-delete, policy-field-list; a member is refused (exit 3)', async () => {
    const fields = ['--policy-fields', "interval=1 hrs", '--policy-fields', 'retention_policy_type=Number of Snapshots to Keep', '--policy-fields', 'retention_policy_value=3', '--policy-fields', 'fullbackup_interval=8'];
    const c = await ok(h.admin, ['policy-create', ...fields, '--display-description', 'cli policy', 'cli-policy']);
    const id = prop(c.stdout, 'id')!;
    assert.equal(prop(c.stdout, 'name'), 'cli-policy');
    assert.equal(prop(c.stdout, 'field_values'), "{'fullbackup_interval': '8', 'interval': '1 hrs', 'retention_policy_type': 'Number of Snapshots to Keep', 'retention_policy_value': '3'}");
    const denied = await run(h.alice, ['policy-create', ...fields, 'nope']);
    assert.equal(denied.code, 3);
    assert.match(denied.stderr, /^ERROR: Policy doesn't allow workload:policy_create to be performed\./);

    const u = await ok(h.admin, ['policy-update', '--policy-fields', 'interval=2 hrs', '--display-name', 'cli-policy-2', id]);
    assert.equal(prop(u.stdout, 'name'), 'cli-policy-2');
    const a = await ok(h.admin, ['policy-assign', '--add_project', h.alice.projectId, id, '-f', 'json']);
    assert.deepEqual(JSON.parse(a.stdout).policy_assignments.map((x: Json) => x.project_id), [h.alice.projectId]);
    const list = await ok(h.alice, ['policy-list', '-f', 'json']);
    assert.deepEqual(JSON.parse(list.stdout).map((p: Json) => [p.ID, p.Name]), [[id, 'cli-policy-2']]);
    const show = await ok(h.alice, ['policy-show', id, '-f', 'value', '-c', 'name']);
    assert.equal(show.stdout, 'cli-policy-2\n');
    const assigned = await ok(h.alice, ['list-assigned-policies', h.alice.projectId, '-f', 'json']);
    assert.deepEqual(JSON.parse(assigned.stdout).map((p: Json) => [p['Policy ID'], p['Project Name']]), [[id, 'alpha']]);
    const fl = await ok(h.alice, ['policy-field-list', '-f', 'value', '-c', 'Name']);
    assert.deepEqual(fl.stdout.trim().split('\n').sort(), ['fullbackup_interval', 'interval', 'retention_policy_type', 'retention_policy_value']);
    await ok(h.admin, ['policy-assign', '--remove_project', h.alice.projectId, id]);
    await ok(h.admin, ['policy-delete', id]);
    const gone = await run(h.admin, ['policy-show', id]);
    assert.equal(gone.code, 4);
    assert.match(gone.stderr, /^ERROR: /);
    const usage = await run(h.admin, ['policy-assign', id]);
    assert.equal(usage.code, 2);
  });

  test('project-quota-type-list/-show, project-allowed-quota-create/-list/-show/-update/-delete', async () => {
    const types = JSON.parse((await ok(h.alice, ['project-quota-type-list', '-f', 'json'])).stdout) as { ID: string; Name: string }[];
    const wl = types.find((t) => t.Name === 'Workloads')!;
    assert.ok(wl, JSON.stringify(types));
    assert.equal(prop((await ok(h.alice, ['project-quota-type-show', wl.ID])).stdout, 'display_name'), 'Workloads');
    const c = await ok(h.admin, ['project-allowed-quota-create', '--quota-type-id', wl.ID, '--allowed-value', '5', '--high-watermark', '4', '--project-id', h.alice.projectId, '-f', 'json']);
    const qid = JSON.parse(c.stdout)[0].ID as string;
    const shown = await ok(h.alice, ['project-allowed-quota-show', qid, '-f', 'value']);
    assert.deepEqual(shown.stdout.split('\n').slice(0, 4), ['5', '4', qid, h.alice.projectId]);
    const up = await ok(h.admin, ['project-allowed-quota-update', '--allowed-value', '7', '--high-watermark', '6', '--project-id', h.alice.projectId, qid, '-f', 'json']);
    assert.deepEqual([JSON.parse(up.stdout)[0]['Allowed Value'], JSON.parse(up.stdout)[0]['High Watermark']], [7, 6]);
    assert.equal(JSON.parse((await ok(h.alice, ['project-allowed-quota-list', h.alice.projectId, '-f', 'json'])).stdout).length, 1);
    const bad = await run(h.admin, ['project-allowed-quota-update', '--allowed-value', 'lots', '--project-id', h.alice.projectId, qid]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^ERROR: --allowed-value expects a whole number/);
    await ok(h.admin, ['project-allowed-quota-delete', qid]);
    assert.equal(JSON.parse((await ok(h.alice, ['project-allowed-quota-list', h.alice.projectId, '-f', 'json'])).stdout).length, 0);
  });

  test('setting-create/-show/-update/-list/-delete', async () => {
    const c = await ok(h.alice, ['setting-create', '--description', 'a test', '--is-public', 'False', 'cli_setting', 'one']);
    assert.equal(prop(c.stdout, 'value'), 'one');
    assert.equal(prop(c.stdout, 'description'), 'a test');
    await ok(h.alice, ['setting-update', 'cli_setting', 'two']);
    assert.equal((await ok(h.alice, ['setting-show', 'cli_setting', '-f', 'value', '-c', 'value'])).stdout, 'two\n');
    assert.match((await ok(h.alice, ['setting-list', '-f', 'value', '-c', 'Name', '-c', 'Value'])).stdout, /^cli_setting two$/m);
    await ok(h.alice, ['setting-delete', 'cli_setting']);
    const gone = await run(h.alice, ['setting-show', 'cli_setting']);
    assert.equal(gone.code, 4);
  });

  test('get/disable/enable-global-job-scheduler (admin only), workload-pause/-resume', async () => {
    assert.equal(prop((await ok(h.alice, ['get-global-job-scheduler'])).stdout, 'global_job_scheduler'), 'True');
    assert.equal((await run(h.alice, ['disable-global-job-scheduler'])).code, 3);
    assert.equal((await ok(h.admin, ['disable-global-job-scheduler', '-f', 'json'])).stdout.trim(), '{\n    "global_job_scheduler": false\n}');
    assert.equal(prop((await ok(h.admin, ['enable-global-job-scheduler'])).stdout, 'global_job_scheduler'), 'True');

    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'paused', instances: [{ 'instance-id': h.vms[2]!.id }], jobschedule: { enabled: true } } });
    assert.equal(r.status, 202, r.text);
    const wid = r.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
    await ok(h.alice, ['workload-pause', wid]);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.jobschedule.enabled, false);
    await ok(h.alice, ['workload-resume', wid]);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.jobschedule.enabled, true);
    assert.equal((await run(h.alice, ['workload-pause', '00000000-0000-4000-8000-000000000000'])).code, 4);
    await h.api(h.alice, 'DELETE', `/workloads/${wid}`);
  });

  test('workload-get-importworkloads-list, workload-importworkloads, orphans, workload-reassign-workloads', async () => {
    const vm = h.vms.find((v) => v.name === 'vm-b1')!;
    const r = await h.api(h.bob, 'POST', '/workloads', { workload: { name: 'cli-dr', instances: [{ 'instance-id': vm.id }] } });
    const wid = r.json.workload.id as string;
    await waitFor(async () => (await h.api(h.bob, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
    await takeSnapshotAndWait(h, h.bob, wid, true);

    // Nothing to import: the workload is in the database already.
    assert.equal((await ok(h.admin, ['workload-get-importworkloads-list', '-f', 'json'])).stdout.trim(), '[]');
    const again = await ok(h.admin, ['workload-importworkloads', '--workloadids', wid, '-f', 'json']);
    assert.deepEqual(
      JSON.parse(again.stdout).map((x: Json) => [x.ID, x.Result]),
      [[wid, 'Workload already exists in this installation']],
    );
    assert.equal((await run(h.bob, ['workload-importworkloads'])).code, 3);
    const bad = await run(h.admin, ['workload-importworkloads', '--workloadids', 'not-a-uuid']);
    assert.equal(bad.code, 5);
    assert.match(bad.stderr, /^ERROR: Invalid workload_ids/);

    assert.equal((await ok(h.admin, ['workload-get-orphaned-workloads-list', '-f', 'json'])).stdout.trim(), '[]');

    const moved = await ok(h.admin, ['workload-reassign-workloads', '--workload_ids', wid, '--new_tenant_id', h.alice.projectId, '--user_id', userId('alice'), '-f', 'json']);
    assert.deepEqual(
      JSON.parse(moved.stdout).map((x: Json) => [x.ID, x['Project ID'], x.Status, x.Result]),
      [[wid, h.alice.projectId, 'available', 'reassigned']],
    );
    const refused = await run(h.admin, ['workload-reassign-workloads', '--workload_ids', wid, '--new_tenant_id', h.bob.projectId, '--user_id', userId('alice')]);
    assert.equal(refused.code, 5);
    assert.match(refused.stderr, /^ERROR: Invalid user_id: user [0-9a-f]+ has no role on project/);
    assert.equal((await run(h.admin, ['workload-reassign-workloads', '--workload_ids', wid])).code, 2);
  });
  test('workload-get-storage-usage, workload-get-tenants-usage (get-tenants-usage), workload-get-auditlog (admin only); trust-create without a cloud is a 400 (exit 5)', async () => {
    const usage = JSON.parse((await ok(h.admin, ['workload-get-storage-usage', '-f', 'json'])).stdout);
    assert.equal(usage.length, 1);
    assert.equal(usage[0].storage_type, 'nfs'); // a directory target, as the vendor names file shares
    assert.ok(typeof usage[0].total_capacity_humanized === 'string' && usage[0].total_capacity_humanized !== '', JSON.stringify(usage));
    const tenants = JSON.parse((await ok(h.admin, ['workload-get-tenants-usage', '-f', 'json'])).stdout);
    assert.ok(Number.isInteger(tenants.global_usage.total_vms) && tenants.global_usage.total_vms > 0, JSON.stringify(tenants));
    assert.ok(h.alice.projectId in tenants.tenants_usage, 'alpha is listed');
    assert.deepEqual(JSON.parse((await ok(h.admin, ['get-tenants-usage', '-f', 'json'])).stdout).global_usage, tenants.global_usage);
    // The earlier tests' admin actions are in the audit log.
    const audit = JSON.parse((await ok(h.admin, ['workload-get-auditlog', '-f', 'json'])).stdout) as Json[];
    assert.ok(audit.length > 0 && audit.every((e) => typeof e.Timestamp === 'string' && 'Details' in e), JSON.stringify(audit.slice(0, 2)));
    const today = new Date();
    const day = `${String(today.getUTCMonth() + 1).padStart(2, '0')}-${String(today.getUTCDate()).padStart(2, '0')}-${today.getUTCFullYear()}`;
    assert.equal(JSON.parse((await ok(h.admin, ['workload-get-auditlog', '--start_range', day, '-f', 'json'])).stdout).length, audit.length);
    const mixed = await run(h.admin, ['workload-get-auditlog', '--time_in_minutes', '5', '--start_range', day]);
    assert.equal(mixed.code, 5);
    assert.match(mixed.stderr, /^ERROR: Invalid query: give either time_in_minutes or start_range\/end_range/);
    for (const cmd of ['workload-get-storage-usage', 'workload-get-tenants-usage', 'workload-get-auditlog']) assert.equal((await run(h.alice, [cmd])).code, 3, cmd);
    const trust = await run(h.alice, ['trust-create', 'member', '--is_cloud_trust', 'False']);
    assert.equal(trust.code, 5);
    assert.match(trust.stderr, /^ERROR: Trusts need an OpenStack cloud/);
    assert.equal((await ok(h.alice, ['trust-list', '-f', 'json'])).stdout.trim(), '[]');
  });
});
