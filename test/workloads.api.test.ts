import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, waitFor, type Harness } from './harness.js';

const PARALLEL = '2ddd528d-c9b4-4d7e-8722-cc395140255a';
const SERIAL = 'f82ce76f-17fe-438b-aa37-7a023058e50d';
const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The tempest F1 payload. */
function f1Body(vm: string, extra: Record<string, unknown> = {}) {
  return { workload: { name: 'tempest2021-07-27 10:11:12-123456', workload_type_id: PARALLEL, source_platform: 'openstack', instances: [{ 'instance-id': vm }], jobschedule: {}, metadata: {}, description: 'test', ...extra } };
}

describe('workloads API over HTTP', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  async function createAvailable(vm: string, extra: Record<string, unknown> = {}) {
    const r = await h.api(h.alice, 'POST', '/workloads', f1Body(vm, extra));
    assert.equal(r.status, 202, r.text);
    const id = r.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload.status === 'available', 10_000, 'workload available');
    return id;
  }

  test('F1: create answers 202 with the summary view and becomes available', async () => {
    const vm = h.vms[1]!.id;
    const r = await h.api(h.alice, 'POST', '/workloads', f1Body(vm));
    assert.equal(r.status, 202);
    assert.match(r.headers.get('x-compute-request-id')!, /^req-[0-9a-f-]{36}$/);
    assert.equal(r.headers.get('x-openstack-request-id'), r.headers.get('x-compute-request-id'));
    const w = r.json.workload;
    assert.deepEqual(Object.keys(w).sort(), ['created_at', 'description', 'id', 'links', 'name', 'project_id', 'scheduler_trust', 'snapshots_info', 'status', 'updated_at', 'user_id', 'workload_type_id'].sort());
    assert.equal(w.status, 'creating');
    assert.match(w.id, UUID);
    assert.match(w.created_at, TS);
    assert.equal(w.project_id, h.alice.projectId);
    assert.equal(w.workload_type_id, PARALLEL);
    assert.equal(w.snapshots_info, '');
    assert.equal(w.scheduler_trust, null);
    assert.deepEqual(w.links, [
      { rel: 'self', href: `${h.url}/v1/${h.alice.projectId}/workloads/${w.id}` },
      { rel: 'bookmark', href: `${h.url}/${h.alice.projectId}/workloads/${w.id}` },
    ]);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${w.id}`)).json.workload.status === 'available', 10_000, 'available');

    // §2.2 detail view, field for field.
    const d = (await h.api(h.alice, 'GET', `/workloads/${w.id}`)).json.workload;
    assert.deepEqual(
      Object.keys(d).sort(),
      ['availability_zone', 'backup_target_types', 'created_at', 'description', 'error_msg', 'id', 'instances', 'interval', 'jobschedule', 'links', 'metadata', 'name', 'project_id', 'status', 'storage_usage', 'updated_at', 'user_id', 'workload_type_id'].sort(),
    );
    assert.deepEqual(d.instances, [{ id: vm, name: 'vm-a2', metadata: {} }]);
    assert.equal(d.backup_target_types, 'default', 'the one configured target, by name');
    assert.deepEqual(d.storage_usage, { usage: 0, full: { snap_count: 0, usage: 0 }, incremental: { snap_count: 0, usage: 0 } });
    assert.equal(d.jobschedule.enabled, true);
    assert.equal(d.jobschedule.start_time, '09:00 PM');
    assert.equal(d.jobschedule.interval, '24hr');
    assert.equal(d.jobschedule.retention_policy_type, 'Number of Snapshots to Keep');
    assert.equal(d.jobschedule.retention_policy_value, '30');
    assert.equal(d.jobschedule.fullbackup_interval, '-1');
    assert.equal(d.jobschedule.end_date, 'No End');
    assert.equal(d.jobschedule.global_jobscheduler, true);
    assert.equal(typeof d.jobschedule.nextrun, 'number');
    assert.match(d.jobschedule.start_date, /^\d{2}\/\d{2}\/\d{4}$/);

    // list and detail list
    const list = (await h.api(h.alice, 'GET', '/workloads')).json.workloads;
    assert.ok(list.some((x: { id: string }) => x.id === w.id));
    const dl = (await h.api(h.alice, 'GET', '/workloads/detail')).json.workloads;
    assert.ok(dl.some((x: { id: string; instances: unknown[] }) => x.id === w.id && x.instances.length === 1));

    // F21: unlock → available; delete → gone (404), listed no more
    assert.equal((await h.api(h.alice, 'POST', `/workloads/${w.id}/unlock`)).status, 202);
    assert.equal((await h.api(h.alice, 'DELETE', `/workloads/${w.id}`)).status, 202);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${w.id}`)).status === 404, 10_000, 'deleted');
    assert.ok(!(await h.api(h.alice, 'GET', '/workloads')).json.workloads.some((x: { id: string }) => x.id === w.id));
    // The VM is free again.
    const again = await createAvailable(vm);
    assert.equal((await h.api(h.alice, 'DELETE', `/workloads/${again}`)).status, 202);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${again}`)).status === 404);
  });

  test('explicit schedule (F2 formats) is stored and echoed canonically; nonsense is 400', async () => {
    const vm = h.vms[2]!.id;
    const id = await createAvailable(vm, {
      jobschedule: { start_date: '07/27/21', start_time: '10:15 AM', interval: '1 hrs', retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '3', enabled: 'True', full_backup_interval: '2' },
    });
    const js = (await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload.jobschedule;
    assert.equal(js.start_date, '07/27/2021');
    assert.equal(js.start_time, '10:15 AM');
    assert.equal(js.interval, '1 hrs');
    assert.equal(js.retention_policy_value, '3');
    assert.equal(js.enabled, true);
    assert.ok(js.nextrun >= 0 && js.nextrun <= 3600, `nextrun ${js.nextrun}`);
    // modify: disable → enabled false and no nextrun; tempest's empty jobschedule means no change
    assert.equal((await h.api(h.alice, 'PUT', `/workloads/${id}?is_admin_dashboard=False`, { workload: { jobschedule: { enabled: 'False' } } })).status, 202);
    let d = (await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload;
    assert.equal(d.jobschedule.enabled, false);
    assert.ok(!('nextrun' in d.jobschedule));
    assert.equal((await h.api(h.alice, 'PUT', `/workloads/${id}`, { workload: { name: 'renamed', instances: [{ 'instance-id': vm }], jobschedule: {} } })).status, 202);
    d = (await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload;
    assert.equal(d.name, 'renamed');
    assert.equal(d.jobschedule.enabled, false);
    for (const bad of [{ start_date: '2021/07/27' }, { start_time: '25:00' }, { interval: 'often' }, { retention_policy_value: 'x' }, { enabled: 'maybe' }, { retention_policy_type: 'forever' }, { timezone: 'Mars/Base' }]) {
      const r = await h.api(h.alice, 'PUT', `/workloads/${id}`, { workload: { jobschedule: bad } });
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.json.badRequest.code, 400);
    }
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload.name, 'renamed');
    await h.api(h.alice, 'DELETE', `/workloads/${id}`);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${id}`)).status === 404);
  });

  test('reset passes through resetting back to available', async () => {
    const id = await createAvailable(h.vms[2]!.id);
    assert.equal((await h.api(h.alice, 'POST', `/workloads/${id}/reset`)).status, 202);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload.status === 'available');
    await h.api(h.alice, 'DELETE', `/workloads/${id}`);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${id}`)).status === 404);
  });

  test('workload types: Serial and Parallel with fixed ids', async () => {
    const r = await h.api(h.alice, 'GET', '/workload_types');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.workload_types.map((t: { id: string }) => t.id).sort(), [PARALLEL, SERIAL].sort());
    const one = await h.api(h.alice, 'GET', `/workload_types/${SERIAL}`);
    assert.equal(one.json.workload_type.name, 'Serial');
    assert.equal((await h.api(h.alice, 'GET', '/workload_types/detail')).json.workload_types.length, 2);
    assert.equal((await h.api(h.alice, 'GET', `/workload_types/${crypto.randomUUID()}`)).status, 404);
  });

  test('version document without auth; trailing slashes accepted', async () => {
    const r = await fetch(`${h.url}/`);
    assert.equal(r.status, 200);
    const j = (await r.json()) as { versions: { id: string; status: string }[] };
    assert.equal(j.versions[0]!.id, 'v1.0');
    assert.equal((await h.api(h.alice, 'GET', '/workloads/')).status, 200);
  });

  describe('bad input gets a 4xx fault and changes nothing', () => {
    test('missing, invalid token → 401 Keystone body + WWW-Authenticate', async () => {
      for (const headers of [{}, { 'x-auth-token': 'garbage' }, { 'x-auth-token': '' }] as Record<string, string>[]) {
        const r = await fetch(`${h.url}/v1/${h.alice.projectId}/workloads`, { headers });
        assert.equal(r.status, 401);
        assert.deepEqual(await r.json(), { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } });
        assert.match(r.headers.get('www-authenticate')!, /^Keystone uri="http:\/\/127\.0\.0\.1:\d+\/identity\/v3"$/);
        assert.match(r.headers.get('x-compute-request-id')!, /^req-/);
      }
    });

    test('client identity headers are ignored', async () => {
      const r = await fetch(`${h.url}/v1/${h.bob.projectId}/workloads`, {
        headers: { 'x-auth-token': await h.token(h.alice), 'x-project-id': h.bob.projectId, 'x-roles': 'admin', 'x-identity-status': 'Confirmed' },
      });
      assert.equal(r.status, 400);
      assert.deepEqual(await r.json(), { badRequest: { code: 400, message: 'Malformed request url' } });
    });

    test('foreign tenant in URL → 400 Malformed request url', async () => {
      const r = await h.api(h.alice, 'GET', `/v1/${h.bob.projectId}/workloads`);
      assert.equal(r.status, 400);
      assert.equal(r.json.badRequest.message, 'Malformed request url');
    });

    test("another project's workload answers exactly like a missing one", async () => {
      const bobW = await h.api(h.bob, 'POST', '/workloads', f1Body(h.vms[3]!.id));
      assert.equal(bobW.status, 202);
      const id = bobW.json.workload.id;
      const missing = crypto.randomUUID();
      for (const [method, suffix] of [['GET', ''], ['PUT', ''], ['DELETE', ''], ['POST', '/unlock'], ['POST', '/reset']] as const) {
        const body = method === 'PUT' ? { workload: { name: 'x' } } : undefined;
        const a = await h.api(h.alice, method, `/workloads/${id}${suffix}`, body);
        const b = await h.api(h.alice, method, `/workloads/${missing}${suffix}`, body);
        assert.equal(a.status, 404, `${method} ${suffix}`);
        assert.equal(a.text.replace(id, 'X'), b.text.replace(missing, 'X'));
        assert.equal(a.json.itemNotFound.message, `Workload ${id} could not be found.`);
      }
      assert.ok(!(await h.api(h.alice, 'GET', '/workloads')).json.workloads.some((w: { id: string }) => w.id === id));
      // bob's workload is untouched
      await waitFor(async () => (await h.api(h.bob, 'GET', `/workloads/${id}`)).json.workload.status === 'available');
      assert.equal((await h.api(h.bob, 'GET', `/workloads/${id}`)).json.workload.name, 'tempest2021-07-27 10:11:12-123456');
      // admin sees all with all_workloads; members are silently scoped
      const all = (await h.api(h.admin, 'GET', '/workloads?all_workloads=true')).json.workloads;
      assert.ok(all.some((w: { id: string }) => w.id === id));
      const scoped = (await h.api(h.alice, 'GET', '/workloads?all_workloads=true')).json.workloads;
      assert.ok(!scoped.some((w: { id: string }) => w.id === id));
      await h.api(h.bob, 'DELETE', `/workloads/${id}`);
      await waitFor(async () => (await h.api(h.bob, 'GET', `/workloads/${id}`)).status === 404);
    });

    test('non-UUID ids → 404', async () => {
      for (const bad of ['not-a-uuid', '1', "'; drop table workloads; --", 'x'.repeat(150)]) {
        const r = await h.api(h.alice, 'GET', `/workloads/${encodeURIComponent(bad)}`);
        assert.equal(r.status, 404, bad);
        assert.ok(r.json.itemNotFound);
      }
    });

    test('malformed bodies', async () => {
      const count = async () => (await h.api(h.alice, 'GET', '/workloads')).json.workloads.length;
      const before = await count();
      const cases: [unknown, number, string | RegExp][] = [
        ['{"workload": ', 400, 'Malformed request body'],
        ['[]', 400, 'Incorrect request body format'],
        ['"x"', 400, 'Incorrect request body format'],
        [{ workloads: {} }, 400, 'Incorrect request body format'],
        [{ workload: [] }, 400, 'Incorrect request body format'],
        [{ workload: { instances: 'vm' } }, 400, /instances/],
        [{ workload: {} }, 400, /instances/],
        [{ workload: { instances: [] } }, 400, /at least one/],
        [{ workload: { instances: [{ 'instance-id': 'nope' }] } }, 400, /UUID/],
        [{ workload: { name: 5, instances: [{ 'instance-id': h.vms[0]!.id }] } }, 400, /name/],
        [{ workload: { name: 'a\u0001b', instances: [{ 'instance-id': h.vms[0]!.id }] } }, 400, /control/],
        [{ workload: { name: 'n'.repeat(256), instances: [{ 'instance-id': h.vms[0]!.id }] } }, 400, /255/],
        [{ workload: { workload_type_id: crypto.randomUUID(), instances: [{ 'instance-id': h.vms[0]!.id }] } }, 400, 'Invalid workload type'],
        [{ workload: { metadata: { a: { b: 1 } }, instances: [{ 'instance-id': h.vms[0]!.id }] } }, 400, /metadata/],
        ['{"__proto__": {"x": 1}, "workload": {}}', 400, /./],
      ];
      for (const [body, status, msg] of cases) {
        const r = await h.api(h.alice, 'POST', '/workloads', body);
        assert.equal(r.status, status, `${JSON.stringify(body)} → ${r.text}`);
        const fault = r.json.badRequest;
        assert.ok(fault, r.text);
        assert.equal(fault.code, 400);
        if (typeof msg === 'string') assert.equal(fault.message, msg);
        else assert.match(fault.message, msg);
      }
      assert.equal(await count(), before);
    });

    test('oversized body → 413 overLimit (also without Content-Length)', async () => {
      const big = JSON.stringify({ workload: { description: 'x'.repeat(120_000), instances: [] } });
      const r = await h.api(h.alice, 'POST', '/workloads', big);
      assert.equal(r.status, 413);
      assert.equal(r.json.overLimit.code, 413);
      assert.equal(r.json.overLimit.message, 'Request is too large.');
      // chunked upload, no Content-Length
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(big));
          c.close();
        },
      });
      const r2 = await fetch(`${h.url}/v1/${h.alice.projectId}/workloads`, {
        method: 'POST',
        headers: { 'x-auth-token': await h.token(h.alice), 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
      } as RequestInit);
      assert.equal(r2.status, 413);
    });

    test('non-JSON content type → 415 badMediaType', async () => {
      const r = await h.api(h.alice, 'POST', '/workloads', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' });
      assert.equal(r.status, 415);
      assert.equal(r.json.badMediaType.code, 415);
    });

    test('instance of another project, unknown instance, instance already in a workload', async () => {
      const before = (await h.api(h.alice, 'GET', '/workloads')).json.workloads.length;
      const foreign = await h.api(h.alice, 'POST', '/workloads', f1Body(h.vms[3]!.id));
      const unknown = await h.api(h.alice, 'POST', '/workloads', f1Body(crypto.randomUUID()));
      assert.equal(foreign.status, 400);
      assert.equal(unknown.status, 400);
      assert.equal(foreign.json.badRequest.message.replace(h.vms[3]!.id, 'X'), unknown.json.badRequest.message.replace(/[0-9a-f-]{36}/, 'X'));
      const id = await createAvailable(h.vms[0]!.id);
      const dup = await h.api(h.alice, 'POST', '/workloads', f1Body(h.vms[0]!.id));
      assert.equal(dup.status, 400);
      assert.equal(dup.json.badRequest.message, 'Invalid instance as vm-a1 already attached with other workload');
      // modify another workload to take the VM → also 400
      const other = await createAvailable(h.vms[1]!.id);
      const steal = await h.api(h.alice, 'PUT', `/workloads/${other}`, { workload: { instances: [{ 'instance-id': h.vms[0]!.id }] } });
      assert.equal(steal.status, 400);
      assert.equal((await h.api(h.alice, 'GET', `/workloads/${other}`)).json.workload.instances[0].id, h.vms[1]!.id);
      assert.equal((await h.api(h.alice, 'GET', '/workloads')).json.workloads.length, before + 2);
      for (const w of [id, other]) {
        await h.api(h.alice, 'DELETE', `/workloads/${w}`);
        await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${w}`)).status === 404);
      }
    });

    test('two concurrent creates with one VM: exactly one wins', async () => {
      const vm = h.vms[2]!.id;
      const rs = await Promise.all([1, 2, 3].map(() => h.api(h.alice, 'POST', '/workloads', f1Body(vm))));
      const ok = rs.filter((r) => r.status === 202);
      assert.equal(ok.length, 1, rs.map((r) => r.status).join(','));
      assert.ok(rs.filter((r) => r.status === 400).length === 2);
      const id = ok[0]!.json.workload.id;
      await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${id}`)).json.workload.status === 'available');
      await h.api(h.alice, 'DELETE', `/workloads/${id}`);
      await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${id}`)).status === 404);
    });

    test('unknown route → 404 itemNotFound', async () => {
      const r = await h.api(h.alice, 'GET', '/nothing-here');
      assert.equal(r.status, 404);
      assert.ok(r.json.itemNotFound);
    });
  });
});

describe('token expiry and policy file', () => {
  let h: Harness;
  let policyDir: string;
  before(async () => {
    policyDir = mkdtempSync(join(tmpdir(), 'lifeboat-policy-'));
    const policyPath = join(policyDir, 'policy.yaml');
    writeFileSync(policyPath, 'backup_api: "role:backup"\n"workload:workload_create": "rule:backup_api"\n');
    h = await startHarness({ env: { LIFEBOAT_TOKEN_TTL: '1', LIFEBOAT_POLICY: policyPath } });
  });
  after(async () => {
    await h.close();
    rmSync(policyDir, { recursive: true, force: true });
  });

  test('a custom policy denies with the oslo message', async () => {
    const r = await h.api(h.alice, 'POST', '/workloads', f1Body(h.vms[0]!.id));
    assert.equal(r.status, 403);
    assert.deepEqual(r.json, { forbidden: { code: 403, message: "Policy doesn't allow workload:workload_create to be performed." } });
    assert.equal((await h.api(h.alice, 'GET', '/workloads')).json.workloads.length, 0);
  });

  test('an expired token → 401', async () => {
    const t = await h.token(h.alice, true);
    assert.equal((await fetch(`${h.url}/v1/${h.alice.projectId}/workloads`, { headers: { 'x-auth-token': t } })).status, 200);
    // TTL 1 s: valid above, refused once the TTL has passed (polled, not slept), and from then on.
    const refused = async () => (await fetch(`${h.url}/v1/${h.alice.projectId}/workloads`, { headers: { 'x-auth-token': t } })).status === 401;
    await waitFor(refused, 10_000, 'token expiry');
    assert.equal(await refused(), true);
  });
});
