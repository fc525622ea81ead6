import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startHarness, waitFor, type Harness, type TestUser } from './harness.js';

/**
 * Policy rules see the object acted on (its project and owner), not the caller: an operator
 * file (LIFEBOAT_POLICY) that makes workloads and snapshots owner-only denies a second member
 * of the same project, while tenant scoping still hides other projects' objects as 404s.
 */

const OWNER_ONLY = [
  'owner: "project_id:%(project_id)s and user_id:%(user_id)s"',
  '"workload:workload_show": "rule:admin_api or rule:owner"',
  '"workload:workload_modify": "rule:admin_api or rule:owner"',
  '"workload:workload_snapshot": "rule:admin_api or rule:owner"',
  '"snapshot:snapshot_show": "rule:admin_api or rule:owner"',
  '"snapshot:snapshot_delete": "rule:admin_api or rule:owner"',
].join('\n');

const denied = (action: string) => ({ forbidden: { code: 403, message: `Policy doesn't allow ${action} to be performed.` } });

async function createAvailable(h: Harness, u: TestUser, vm: string): Promise<string> {
  const r = await h.api(u, 'POST', '/workloads', { workload: { name: 'w', instances: [{ 'instance-id': vm }] } });
  assert.equal(r.status, 202, r.text);
  const id = r.json.workload.id as string;
  await waitFor(async () => (await h.api(u, 'GET', `/workloads/${id}`)).json?.workload?.status === 'available', 10_000, 'workload available');
  return id;
}

describe('policy target: an owner-only policy file', () => {
  let h: Harness;
  let dir: string;
  let workload: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lb-policy-target-'));
    const path = join(dir, 'policy.yaml');
    writeFileSync(path, `${OWNER_ONLY}\n`);
    h = await startHarness({ env: { LIFEBOAT_POLICY: path } });
    workload = await createAvailable(h, h.alice, h.vms[0]!.id);
  });
  after(async () => {
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the owner may show and modify their workload', async () => {
    const show = await h.api(h.alice, 'GET', `/workloads/${workload}`);
    assert.equal(show.status, 200, show.text);
    const put = await h.api(h.alice, 'PUT', `/workloads/${workload}`, { workload: { name: 'renamed by owner' } });
    assert.equal(put.status, 202, put.text);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${workload}`)).json.workload.name, 'renamed by owner');
  });

  test('another member of the same project is denied the owner-only actions with the oslo message', async () => {
    const show = await h.api(h.carol, 'GET', `/workloads/${workload}`);
    assert.equal(show.status, 403);
    assert.deepEqual(show.json, denied('workload:workload_show'));

    const put = await h.api(h.carol, 'PUT', `/workloads/${workload}`, { workload: { name: 'renamed by carol' } });
    assert.equal(put.status, 403);
    assert.deepEqual(put.json, denied('workload:workload_modify'));

    const snap = await h.api(h.carol, 'POST', `/workloads/${workload}`, { snapshot: { name: 'by carol' } });
    assert.equal(snap.status, 403);
    assert.deepEqual(snap.json, denied('workload:workload_snapshot'));

    // Nothing changed: the denied modify did not rename, the denied snapshot did not start.
    const after = (await h.api(h.alice, 'GET', `/workloads/${workload}`)).json.workload;
    assert.notEqual(after.name, 'renamed by carol');
    assert.equal(after.status, 'available');
    assert.equal((await h.api(h.alice, 'GET', `/snapshots?workload_id=${workload}`)).json.snapshots.length, 0);

    // Rules left at their default (admin_or_owner) still let the project's members in.
    const list = await h.api(h.carol, 'GET', '/workloads');
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.json.workloads.map((w: { id: string }) => w.id),
      [workload],
    );
  });

  test("a snapshot's owner is its taker: the owner reads it, another member may not read or delete it", async () => {
    const taken = await h.api(h.alice, 'POST', `/workloads/${workload}`, { snapshot: { name: 'by alice' } });
    assert.equal(taken.status, 200, taken.text);
    const sid = taken.json.snapshot.id as string;
    await waitFor(async () => ['available', 'error'].includes((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json?.snapshot?.status), 20_000, 'snapshot done');
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).status, 200);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${workload}/snapshots/${sid}`)).status, 200);

    const show = await h.api(h.carol, 'GET', `/snapshots/${sid}`);
    assert.equal(show.status, 403);
    assert.deepEqual(show.json, denied('snapshot:snapshot_show'));
    const del = await h.api(h.carol, 'DELETE', `/workloads/${workload}/snapshots/${sid}`);
    assert.equal(del.status, 403);
    assert.deepEqual(del.json, denied('snapshot:snapshot_delete'));
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.status, 'available');
  });

  test("another project's workload answers 404 exactly like a missing one", async () => {
    const missing = randomUUID();
    for (const [path, kind] of [
      [`/workloads/${workload}`, 'Workload'],
      [`/workloads/${missing}`, 'Workload'],
    ] as const) {
      const id = path.split('/').pop()!;
      const r = await h.api(h.bob, 'GET', path);
      assert.equal(r.status, 404, path);
      assert.deepEqual(r.json, { itemNotFound: { code: 404, message: `${kind} ${id} could not be found.` } });
    }
    const put = await h.api(h.bob, 'PUT', `/workloads/${workload}`, { workload: { name: 'x' } });
    assert.equal(put.status, 404);
    const snap = await h.api(h.bob, 'POST', `/workloads/${workload}`, {});
    assert.equal(snap.status, 404);
    assert.deepEqual(snap.json, { itemNotFound: { code: 404, message: `Workload ${workload} could not be found.` } });
  });
});

describe('policy target: the default policy', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  test("admin_or_owner lets every member of the project act on a colleague's workload", async () => {
    const workload = await createAvailable(h, h.alice, h.vms[1]!.id);
    assert.equal((await h.api(h.carol, 'GET', `/workloads/${workload}`)).status, 200);
    const put = await h.api(h.carol, 'PUT', `/workloads/${workload}`, { workload: { name: 'renamed by carol' } });
    assert.equal(put.status, 202, put.text);
    assert.equal((await h.api(h.alice, 'GET', `/workloads/${workload}`)).json.workload.name, 'renamed by carol');
    const other = await h.api(h.bob, 'GET', `/workloads/${workload}`);
    assert.equal(other.status, 404);
    assert.deepEqual(other.json, { itemNotFound: { code: 404, message: `Workload ${workload} could not be found.` } });
  });
});
