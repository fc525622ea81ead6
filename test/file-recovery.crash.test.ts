import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { applianceTag, fuseMountsUnder, processesTagged } from '../src/recovery/mounts.js';
import { loadConfig } from '../src/config/config.js';
import { startLifeboat, type Lifeboat } from '../src/app/app.js';
import { silentLogger } from '../src/lib/logger.js';
import { freePort, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { buildExt4Disk } from './fs-images.js';
import { startProcess, type LifeboatProcess } from './process.js';

/**
 * A service killed (SIGKILL) with a snapshot mounted leaves a FUSE mount and a libguestfs
 * appliance behind; the next start removes both and puts the snapshot back to available.
 */
describe('file recovery: kill -9 with a mount open, then restart', { skip: skipUnlessInstalled('guestfish', 'sgdisk', 'mkfs.ext4', 'fusermount3') }, () => {
  let h: Harness;
  let p: LifeboatProcess | null = null;
  let lb2: Lifeboat | null = null;
  let wid = '';
  let sid = '';

  before(async () => {
    h = await startHarness({ env: { LIFEBOAT_APPLIANCE_TCG: '1' } });
    await buildExt4Disk(h.vms[2]!.disks[0]!.path, 32, { 'etc/hostname': 'vm-a3\n' });
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'crash', instances: [{ 'instance-id': h.vms[2]!.id }] } });
    wid = r.json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
    sid = (await takeSnapshotAndWait(h, h.alice, wid, true, 120_000)).id;
    await h.lb.close(); // the home stays: the real process below serves it
  });
  after(async () => {
    await p?.kill9();
    await lb2?.close();
    rmSync(h.home, { recursive: true, force: true });
  });

  const env = async () => ({ LIFEBOAT_HOME: h.home, LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`, LIFEBOAT_NODE_NAME: 'TVM1', LIFEBOAT_APPLIANCE_TCG: '1' });
  const tokens = new Map<string, string>();
  async function call(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    let token = tokens.get(url);
    if (!token) {
      const auth = await fetch(`${url}/identity/v3/auth/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: 'alice', domain: { name: 'Default' }, password: 'alice-pw' } } }, scope: { project: { id: h.alice.projectId } } } }),
      });
      token = auth.headers.get('x-subject-token')!;
      tokens.set(url, token);
    }
    const r = await fetch(`${url}/v1/${h.alice.projectId}${path}`, { method, headers: { 'x-auth-token': token, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined };
  }

  test('no stale FUSE mount, no orphan appliance, snapshot available again', async () => {
    p = await startProcess(await env());
    const m = await call(p.url!, 'POST', `/snapshots/${sid}/mount`, { mount: { mount_vm_id: h.vms[0]!.id, options: {} } });
    assert.equal(m.status, 200);
    await waitFor(async () => {
      const s = (await call(p!.url!, 'GET', `/snapshots/${sid}`)).json.snapshot.status;
      assert.notEqual(s, 'available', 'the mount failed');
      return s === 'mounted';
    }, 600_000, 'mounted');
    const mounts = join(h.home, 'mounts');
    assert.equal(fuseMountsUnder(mounts).length, 1);
    await p.kill9();
    assert.equal(fuseMountsUnder(mounts).length, 1, 'the killed service left its FUSE mount');
    assert.ok(processesTagged(applianceTag(h.home)).length > 0, 'and its appliance');

    lb2 = await startLifeboat(loadConfig(await env(), h.home), { role: 'all', demo: false, log: silentLogger });
    assert.deepEqual(fuseMountsUnder(mounts), []);
    await waitFor(() => processesTagged(applianceTag(h.home)).length === 0, 30_000, 'orphan appliance gone');
    const s = await call(`http://${lb2.address}`, 'GET', `/snapshots/${sid}`);
    assert.equal(s.json.snapshot.status, 'available');
    assert.ok(!s.json.snapshot.metadata.some((x: { key: string }) => x.key === 'mount_vm_id'));
    assert.deepEqual((await call(`http://${lb2.address}`, 'GET', '/snapshots/mounted/list')).json.mounted_snapshots, []);
  });
});
