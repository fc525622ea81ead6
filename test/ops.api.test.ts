import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { createWorkloadAndWait, freePort, startHarness, takeSnapshotAndWait, type Harness } from './harness.js';

/**
 * Sum of the samples of `name` whose labels include every pair of `labels` (Prometheus text
 * format: `name{a="x",b="y"} value`); NaN when no sample matches.
 */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = NaN;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[3]);
  }
  return sum;
}

describe('operations endpoints: /healthz, /readyz, /metrics', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const r = await fetch(`${h.url}${path}`, { headers });
    return { status: r.status, type: r.headers.get('content-type') ?? '', text: await r.text() };
  };

  test('/healthz answers 200 without a token', async () => {
    const r = await get('/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.text), { status: 'ok' });
  });

  test('/readyz: 200 while store and target answer, 503 naming the target while it is gone, 200 again after', async () => {
    const ok = await get('/readyz');
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(JSON.parse(ok.text), { status: 'ready', checks: { store: 'ok', target: 'ok' } });

    const target = join(h.home, 'target');
    renameSync(target, `${target}.away`);
    try {
      const down = await get('/readyz');
      assert.equal(down.status, 503);
      assert.deepEqual(JSON.parse(down.text), { status: 'not ready', checks: { store: 'ok', target: 'unreachable' } });
      assert.ok(!down.text.includes(h.home), 'no path in the answer');
    } finally {
      renameSync(`${target}.away`, target);
    }
    assert.equal((await get('/readyz')).status, 200);
  });

  test('/metrics: HTTP by route template, jobs by kind and state, backup bytes, chunk lookups, backend latency', async () => {
    const wid = await createWorkloadAndWait(h, h.alice, [h.vms[0]!.id]);
    await takeSnapshotAndWait(h, h.alice, wid, true);
    await takeSnapshotAndWait(h, h.alice, wid, false);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${crypto.randomUUID()}`)).status, 404);

    const r = await get('/metrics');
    assert.equal(r.status, 200, r.text);
    assert.match(r.type, /^text\/plain/);
    const m = r.text;
    // HTTP: route templates, never raw URLs (no ids in any label).
    assert.ok(sample(m, 'lifeboat_http_requests_total', { method: 'GET', route: '/v1/:tenant_id/workloads/:id', status_code: '200' }) >= 1);
    assert.ok(sample(m, 'lifeboat_http_requests_total', { method: 'GET', route: '/v1/:tenant_id/workloads/:id', status_code: '404' }) >= 1);
    assert.ok(sample(m, 'lifeboat_http_request_duration_seconds_count', { method: 'POST', route: '/v1/:tenant_id/workloads' }) >= 1);
    assert.ok(!m.includes(wid) && !m.includes(h.alice.projectId), 'no workload or project id in the metrics');
    // Jobs of the shared queue by kind and state.
    assert.ok(sample(m, 'lifeboat_jobs', { state: 'done' }) >= 3, 'workload create + two snapshot jobs done');
    assert.equal(sample(m, 'lifeboat_jobs', { state: 'running' }) || 0, 0);
    // Bytes: the two disks of vm-a1 are read in full at least once; the incremental stores less than it reads.
    const disksBytes = 2 * 1024 * 1024 + 4096;
    assert.ok(sample(m, 'lifeboat_backup_bytes_total', { kind: 'read' }) >= disksBytes);
    assert.ok(sample(m, 'lifeboat_backup_bytes_total', { kind: 'stored' }) > 0);
    assert.ok(sample(m, 'lifeboat_backup_bytes_total', { kind: 'deduplicated' }) > 0, 'the incremental reused the full’s chunks');
    assert.ok(sample(m, 'lifeboat_chunk_cache_lookups_total', { result: 'hit' }) > 0);
    assert.ok(sample(m, 'lifeboat_chunk_cache_lookups_total', { result: 'miss' }) > 0);
    // Backend: real requests of the target with latency, by operation.
    assert.ok(sample(m, 'lifeboat_backend_request_duration_seconds_count', { op: 'get' }) >= 1);
    assert.ok(sample(m, 'lifeboat_backend_request_duration_seconds_bucket', { op: 'stat', le: '+Inf' }) >= 1);
    assert.match(m, /^# TYPE lifeboat_backend_request_errors_total counter$/m);
  });

  test('/metrics from off the loopback: 401 without a token, 403 for a member, 200 for the admin', async () => {
    const app = h.lb.http!;
    const off = { remoteAddress: '10.20.30.40' };
    const anon = await app.inject({ method: 'GET', url: '/metrics', ...off });
    assert.equal(anon.statusCode, 401);
    assert.equal(anon.json().error.code, 401);
    const member = await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-auth-token': await h.token(h.alice) }, ...off });
    assert.equal(member.statusCode, 403);
    assert.deepEqual(member.json(), { forbidden: { code: 403, message: "Policy doesn't allow workload:get_metrics to be performed." } });
    const bad = await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-auth-token': 'not-a-token' }, ...off });
    assert.equal(bad.statusCode, 401);
    const admin = await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-auth-token': await h.token(h.admin) }, ...off });
    assert.equal(admin.statusCode, 200);
    assert.match(admin.body, /^# HELP lifeboat_jobs /m);
  });
});

describe('LIFEBOAT_METRICS_LISTEN: a worker-only process serves /metrics, /healthz, /readyz on its own port', () => {
  let h: Harness;
  let opsUrl: string;
  before(async () => {
    const port = await freePort();
    opsUrl = `http://127.0.0.1:${port}`;
    h = await startHarness({ role: 'worker', env: { LIFEBOAT_METRICS_LISTEN: `127.0.0.1:${port}` } });
  });
  after(async () => h.close());

  test('no API on the worker, but its health, readiness and counters', async () => {
    assert.equal(h.lb.http, null);
    assert.equal((await fetch(`${opsUrl}/healthz`)).status, 200);
    const ready = await fetch(`${opsUrl}/readyz`);
    assert.deepEqual(await ready.json(), { status: 'ready', checks: { store: 'ok', target: 'ok' } });
    const m = await (await fetch(`${opsUrl}/metrics`)).text();
    assert.match(m, /^# TYPE lifeboat_backend_request_duration_seconds histogram$/m);
    assert.ok(sample(m, 'lifeboat_backend_request_duration_seconds_count', { op: 'stat' }) >= 1, 'the readiness check went to the target');
    const v1 = await fetch(`${opsUrl}/v1/${h.alice.projectId}/workloads`);
    assert.equal(v1.status, 404);
    assert.ok(((await v1.json()) as { itemNotFound?: unknown }).itemNotFound);
  });
});
