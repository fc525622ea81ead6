import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWorkloadAndWait, startHarness, takeSnapshotAndWait, type Harness } from './harness.js';

/**
 * The small API additions the dashboard needs, tested over HTTP against a real Lifeboat:
 * the platform inventory of the caller's project, the job queue's health (admin) and
 * Keystone's GET /v3/auth/projects (project switch).
 */
describe('dashboard API additions', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h?.close());

  test('GET /platform/instances lists the caller project only, without disk paths', async () => {
    const a = await h.api(h.alice, 'GET', '/platform/instances');
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json.instances.map((i: { name: string }) => i.name), ['vm-a1', 'vm-a2', 'vm-a3']);
    const a1 = a.json.instances[0];
    assert.equal(a1.id, h.vms.find((v) => v.name === 'vm-a1')!.id);
    assert.deepEqual(a1.disks.map((d: { device: string }) => d.device), ['/dev/vda', '/dev/vdb']);
    assert.deepEqual(a1.networks, [{ id: '5fb7027d-a2ac-4a21-9ee1-438c281d2b26', name: 'private', ip_address: '10.0.0.5' }]);
    assert.equal(a1.unprotectable_reason, null);
    assert.ok(!a.text.includes(h.home), 'no host paths in the answer');
    const b = await h.api(h.bob, 'GET', '/platform/instances');
    assert.deepEqual(b.json.instances.map((i: { name: string }) => i.name), ['vm-b1']);
    const other = await h.api(h.bob, 'GET', `/v1/${h.alice.projectId}/platform/instances`);
    assert.ok([400, 401, 403].includes(other.status), `another project path: ${other.status}`);
    assert.ok(!other.text.includes('vm-a'), other.text);
    const anon = await fetch(`${h.url}/v1/${h.alice.projectId}/platform/instances`);
    assert.equal(anon.status, 401);
  });

  test("GET /platform/networks: the inventory's networks for the project or shared, and those of its VMs", async () => {
    const r = await h.api(h.alice, 'GET', '/platform/networks');
    assert.equal(r.status, 200, r.text);
    const priv = { id: '5fb7027d-a2ac-4a21-9ee1-438c281d2b26', name: 'private', shared: false, active: true, subnets: [{ id: 'b7b54304-aa82-4d50-91e6-66445ab56db4', name: 'private-subnet', cidr: '10.0.0.0/24' }] };
    assert.deepEqual(r.json.networks, [priv]);
    // Networks declared in the inventory file appear at once (the platform re-reads it on change).
    const file = join(h.home, 'inventory.json');
    const original = readFileSync(file, 'utf8');
    const sub = (id: string, cidr: string) => ({ id, name: `s-${cidr.split('.')[2]}`, cidr, ip_version: 4, gateway_ip: null });
    const dmz = { id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c01', name: 'dmz', subnets: [sub('0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c11', '192.0.2.0/24')] };
    const alphaOnly = { id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c02', name: 'alpha-backend', project_id: h.alice.projectId, subnets: [sub('0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c12', '10.9.2.0/24'), sub('0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c13', '10.9.1.0/24')] };
    const betaOnly = { id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c03', name: 'beta-backend', project_id: h.bob.projectId };
    writeFileSync(file, JSON.stringify({ ...JSON.parse(original), networks: [dmz, alphaOnly, betaOnly] }));
    try {
      const a = (await h.api(h.alice, 'GET', '/platform/networks')).json.networks;
      assert.deepEqual(a, [
        { id: alphaOnly.id, name: 'alpha-backend', shared: false, active: true, subnets: [{ id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c13', name: 's-1', cidr: '10.9.1.0/24' }, { id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c12', name: 's-2', cidr: '10.9.2.0/24' }] },
        { id: dmz.id, name: 'dmz', shared: true, active: true, subnets: [{ id: '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c11', name: 's-2', cidr: '192.0.2.0/24' }] },
        priv,
      ]);
      const b = (await h.api(h.bob, 'GET', '/platform/networks')).json.networks.map((n: { name: string }) => n.name);
      assert.deepEqual(b, ['beta-backend', 'dmz', 'private'], "bob's VM is on private too; alpha's own network is not his");
    } finally {
      writeFileSync(file, original);
    }
  });

  test('GET /workloads/metrics/jobs: admin only; counts the queue by kind and state', async () => {
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    const wid = await createWorkloadAndWait(h, h.alice, [vm.id], 'jobs');
    await takeSnapshotAndWait(h, h.alice, wid, true);
    const denied = await h.api(h.alice, 'GET', '/workloads/metrics/jobs');
    assert.equal(denied.status, 403);
    assert.match(denied.text, /forbidden/);
    const r = await h.api(h.admin, 'GET', '/workloads/metrics/jobs');
    assert.equal(r.status, 200, r.text);
    const done = r.json.jobs.filter((j: { state: string }) => j.state === 'done');
    assert.ok(done.length >= 1, r.text);
    assert.ok(r.json.totals.done >= 1);
    for (const j of r.json.jobs) assert.deepEqual(Object.keys(j).sort(), ['count', 'kind', 'state']);
  });

  test('GET /identity/v3/auth/projects: the projects a token may re-scope to', async () => {
    const anon = await fetch(`${h.url}/identity/v3/auth/projects`);
    assert.equal(anon.status, 401);
    const r = await h.api(h.alice, 'GET', '/identity/v3/auth/projects');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.projects.map((p: { id: string; name: string }) => [p.id, p.name]), [[h.alice.projectId, 'alpha']]);

    // A user with roles on two projects sees both, and re-scopes with the token method.
    const file = join(h.home, 'identity.json');
    const data = JSON.parse(readFileSync(file, 'utf8'));
    data.users.push({ id: 'd'.repeat(32), name: 'dave', password: 'dave-pw', roles: [{ project: 'alpha', role: 'member' }, { project: 'beta', role: 'member' }] });
    writeFileSync(file, JSON.stringify(data));
    const dave = { name: 'dave', password: 'dave-pw', projectId: h.alice.projectId, projectName: 'alpha' };
    const d = await h.api(dave, 'GET', '/identity/v3/auth/projects');
    assert.deepEqual(d.json.projects.map((p: { name: string }) => p.name), ['alpha', 'beta']);
    const beta = d.json.projects[1].id as string;
    const rescoped = await fetch(`${h.url}/identity/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ auth: { identity: { methods: ['token'], token: { id: await h.token(dave) } }, scope: { project: { id: beta } } } }),
    });
    assert.equal(rescoped.status, 201);
    const t = rescoped.headers.get('x-subject-token')!;
    const list = await fetch(`${h.url}/v1/${beta}/platform/instances`, { headers: { 'x-auth-token': t } });
    assert.deepEqual(((await list.json()) as { instances: { name: string }[] }).instances.map((i) => i.name), ['vm-b1']);
  });
});
