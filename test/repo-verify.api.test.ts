import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWorkloadAndWait, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { loadConfig } from '../src/config/config.js';
import { verifyTarget } from '../src/app/repo-tools.js';

/**
 * `repo verify` results in the admin API (issue 16, admin pages): a verify started over HTTP
 * runs as a durable job on a real repository and is recorded with its counts; damage found is
 * listed with the snapshots it affects; CLI runs (`lifeboat repo verify`) land in the same
 * history; members get 403; bad input gets a 400 fault and starts nothing.
 */
describe('repo verify results (admin API)', () => {
  let h: Harness;
  let sid = '';
  const files = (dir: string): string[] => readdirSync(dir).map((f) => join(dir, f)).flatMap((p) => (statSync(p).isDirectory() ? files(p) : [p]));

  before(async () => {
    h = await startHarness({ diskBytes: 1024 * 1024 });
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    const wid = await createWorkloadAndWait(h, h.alice, [vm.id], 'verify');
    sid = (await takeSnapshotAndWait(h, h.alice, wid, true)).id as string;
  });
  after(async () => h?.close());

  async function startAndWait(body: unknown): Promise<Record<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await h.api(h.admin, 'POST', '/repo_verifications', body);
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.repo_verification.status, 'queued');
    const id = r.json.repo_verification.id as string;
    let last: Record<string, any> = {}; // eslint-disable-line @typescript-eslint/no-explicit-any
    await waitFor(async () => {
      last = (await h.api(h.admin, 'GET', `/repo_verifications/${id}`)).json.repo_verification;
      return !['queued', 'running'].includes(last.status);
    }, 60_000, 'verify run');
    return last;
  }

  test('an admin starts a verify as a job; the run is recorded with its counts', async () => {
    const run = await startAndWait({ repo_verification: { target: 'default' } });
    assert.equal(run.status, 'ok', JSON.stringify(run));
    assert.equal(run.target, 'default');
    assert.equal(run.scope, 'full');
    assert.equal(run.source, 'api');
    assert.equal(run.progress_percent, 100);
    assert.equal(run.snapshots, 1);
    assert.equal(run.disks, 1);
    assert.ok(run.chunks_checked > 0 && run.packs_read > 0 && run.bytes_read > 0, JSON.stringify(run));
    assert.deepEqual(run.problems, []);
    assert.ok(run.started_at && run.finished_at);
    const list = await h.api(h.admin, 'GET', '/repo_verifications?limit=5');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.targets, ['default']);
    assert.equal(list.json.repo_verifications[0].id, run.id);
  });

  test('damage is found and named: status damaged, the affected snapshot listed and marked', async () => {
    const pack = files(join(h.home, 'target', 'packs'))[0]!;
    const original = readFileSync(pack);
    const bad = Buffer.from(original);
    bad[10] = bad[10]! ^ 0xff;
    writeFileSync(pack, bad);
    try {
      const run = await startAndWait({ repo_verification: { read_data_subset: '100%', mark_bad: false } });
      assert.equal(run.status, 'damaged', JSON.stringify(run));
      assert.ok(run.problem_count >= 1);
      assert.match(run.problems[0], /^CORRUPT chunk [0-9a-f]+ \(pack /);
      assert.deepEqual(run.failed_snapshots, [sid]);
      assert.ok(!JSON.stringify(run).includes(h.home), 'no host paths');
      assert.match((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.warning_msg, /found by verify/);
    } finally {
      writeFileSync(pack, original);
    }
    // The CLI's run lands in the same history (and, complete and clean, clears the warning).
    const v = await verifyTarget(loadConfig({ LIFEBOAT_HOME: h.home }, h.home), { markBad: true });
    assert.equal(v.ok, true);
    const list = (await h.api(h.admin, 'GET', '/repo_verifications')).json.repo_verifications;
    assert.equal(list[0].source, 'cli');
    assert.equal(list[0].status, 'ok');
    assert.equal(list[0].snapshots, 1);
    assert.equal(list[1].status, 'damaged');
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.warning_msg, null);
  });

  test('members get 403; bad input gets a 400 fault and starts nothing', async () => {
    const before = (await h.api(h.admin, 'GET', '/repo_verifications?limit=100')).json.repo_verifications.length;
    for (const [method, path] of [['GET', '/repo_verifications'], ['POST', '/repo_verifications'], ['GET', '/repo_verifications/00000000-0000-4000-8000-000000000000']] as const) {
      const r = await h.api(h.alice, method, path, method === 'POST' ? {} : undefined);
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.ok(r.json.forbidden, r.text);
    }
    const bad: [unknown, RegExp][] = [
      [{ repo_verification: { target: 'nowhere' } }, /No backup target named "nowhere"; configured: default/],
      [{ repo_verification: { target: '../x' } }, /target must be a backup target name/],
      [{ repo_verification: { read_data_subset: '0%' } }, /read_data_subset must be a percentage/],
      [{ repo_verification: { read_data_subset: '150' } }, /read_data_subset must be a percentage/],
      [{ repo_verification: 7 }, /./],
      [{ repo_verification: { mark_bad: 'yes' } }, /./],
    ];
    for (const [body, msg] of bad) {
      const r = await h.api(h.admin, 'POST', '/repo_verifications', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.badRequest.code, 400);
      assert.match(r.json.badRequest.message, msg);
    }
    for (const q of ['limit=0', 'limit=101', 'limit=x', 'target=nowhere', 'target=..']) {
      const r = await h.api(h.admin, 'GET', `/repo_verifications?${q}`);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
      assert.equal(r.json.badRequest.code, 400);
    }
    for (const id of ['nope', '00000000-0000-4000-8000-000000000000']) {
      const r = await h.api(h.admin, 'GET', `/repo_verifications/${id}`);
      assert.equal(r.status, 404, r.text);
      assert.equal(r.json.itemNotFound.code, 404);
    }
    assert.equal((await h.api(h.admin, 'GET', '/repo_verifications?limit=100')).json.repo_verifications.length, before);
  });

  test('the routes are in the OpenAPI document with their schemas', async () => {
    const doc = (await (await fetch(`${h.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, any>> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    const p = doc.paths['/v1/{tenant_id}/repo_verifications']!;
    assert.ok(p.get && p.post, Object.keys(doc.paths).join(' '));
    assert.ok(JSON.stringify(p.post).includes('read_data_subset'));
    assert.ok(JSON.stringify(p.get).includes('limit'));
    assert.ok(doc.paths['/v1/{tenant_id}/repo_verifications/{id}']?.get);
  });
});
