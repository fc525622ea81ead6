import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { applianceDirs, libguestfsSocketDirs } from '../src/recovery/guestfish.js';
import { applianceTag, fuseMountsUnder, processesTagged } from '../src/recovery/mounts.js';
import { loadConfig } from '../src/config/config.js';
import { startLifeboat, type Lifeboat } from '../src/app/app.js';
import { silentLogger } from '../src/lib/logger.js';
import { freePort, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { buildExt4Disk } from './fs-images.js';
import { startProcess, type LifeboatProcess } from './process.js';

/**
 * The life of a mount in a real `lifeboat serve` process: a mount nobody touches for
 * LIFEBOAT_MOUNT_IDLE is dismounted (a browsed one is not); SIGTERM dismounts everything before
 * the process exits; a service killed (SIGKILL) with snapshots mounted (one by fuse2fs, one by
 * the libguestfs appliance) leaves FUSE mounts and their processes behind, and the next start
 * removes them. Every time the snapshot ends
 * up `available` and no FUSE mount, appliance or NBD socket remains.
 */
describe('file recovery: idle timeout, SIGTERM and kill -9 with a mount open', { skip: skipUnlessInstalled('guestfish', 'sgdisk', 'mkfs.ext4', 'fusermount3') }, () => {
  let h: Harness;
  let p: LifeboatProcess | null = null;
  let lb2: Lifeboat | null = null;
  let sid = ''; // vm-a3: one ext4 disk, mounted with fuse2fs
  let sidAppliance = ''; // vm-a1: ext4 + a disk of unknown data, mounted by the appliance

  /** A full snapshot of a new workload of `vm`. */
  async function snapshotOf(vm: number): Promise<string> {
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: `crash-${vm}`, instances: [{ 'instance-id': h.vms[vm]!.id }] } });
    const wid = r.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
    return (await takeSnapshotAndWait(h, h.alice, wid, true, 120_000)).id as string;
  }

  before(async () => {
    h = await startHarness({ env: { LIFEBOAT_APPLIANCE_TCG: '1' } });
    await buildExt4Disk(h.vms[2]!.disks[0]!.path, 32, { 'etc/hostname': 'vm-a3\n' });
    await buildExt4Disk(h.vms[0]!.disks[0]!.path, 32, { 'etc/hostname': 'vm-a1\n' });
    sid = await snapshotOf(2);
    sidAppliance = await snapshotOf(0);
    await h.lb.close(); // the home stays: the real process below serves it
  });
  after(async () => {
    await p?.kill9();
    await lb2?.close();
    rmSync(h.home, { recursive: true, force: true });
  });

  const env = async (extra: Record<string, string> = {}) => ({ LIFEBOAT_HOME: h.home, LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`, LIFEBOAT_NODE_NAME: 'TVM1', LIFEBOAT_APPLIANCE_TCG: '1', ...extra });
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

  const mounts = () => join(h.home, 'mounts');
  const statusOf = async (url: string, snapshot = sid) => (await call(url, 'GET', `/snapshots/${snapshot}`)).json.snapshot.status as string;

  /** Mounts the snapshot through `url` (recovery VM `vm`) and waits (polling) until it is mounted. */
  async function mountAndWait(url: string, snapshot = sid, vm = 0): Promise<void> {
    const m = await call(url, 'POST', `/snapshots/${snapshot}/mount`, { mount: { mount_vm_id: h.vms[vm]!.id, options: {} } });
    assert.equal(m.status, 200, JSON.stringify(m.json));
    await waitFor(async () => {
      const s = await statusOf(url, snapshot);
      assert.notEqual(s, 'available', 'the mount failed');
      return s === 'mounted' || delay(250).then(() => false);
    }, 600_000, 'mounted');
  }

  /** Nothing of a mount is left on this host: FUSE mount, appliance, NBD socket, mount directory. */
  async function assertNothingLeft(): Promise<void> {
    assert.deepEqual(fuseMountsUnder(mounts()), [], 'no FUSE mount');
    await waitFor(() => processesTagged(applianceTag(h.home)).length === 0, 30_000, 'no appliance left');
    const nbd = join(h.home, 'nbd');
    assert.deepEqual(existsSync(nbd) ? readdirSync(nbd) : [], [], 'no NBD socket');
    assert.deepEqual(existsSync(mounts()) ? readdirSync(mounts()) : [], [], 'no mount directory');
    await waitFor(() => applianceDirs(applianceTag(h.home)).length === 0, 30_000, "no appliance's temporary directory left");
  }

  async function assertAvailableAndUnmounted(url: string): Promise<void> {
    for (const snapshot of [sid, sidAppliance]) {
      const s = await call(url, 'GET', `/snapshots/${snapshot}`);
      assert.equal(s.json.snapshot.status, 'available');
      assert.ok(!s.json.snapshot.metadata.some((x: { key: string }) => ['mount_vm_id', 'mounturl', 'mount_error'].includes(x.key)), JSON.stringify(s.json.snapshot.metadata));
    }
    assert.deepEqual((await call(url, 'GET', '/snapshots/mounted/list')).json.mounted_snapshots, []);
  }

  test('idle timeout: a browsed mount stays, one left alone for LIFEBOAT_MOUNT_IDLE is dismounted', async () => {
    const idleMs = 10_000;
    p = await startProcess(await env({ LIFEBOAT_MOUNT_IDLE: String(idleMs / 1000) }));
    await mountAndWait(p.url!);
    // Browsed every second for longer than the idle time: still mounted.
    const browsedUntil = Date.now() + idleMs * 1.5;
    let lastAccess = 0;
    while (Date.now() < browsedUntil) {
      const r = await call(p.url!, 'GET', `/snapshots/${sid}/files?path=/vda1/etc`);
      lastAccess = Date.now();
      assert.equal(r.status, 200, 'a browsed mount is not dismounted');
      assert.deepEqual(r.json.files.map((f: { name: string }) => f.name), ['hostname']);
      await delay(1000);
    }
    // Left alone: dismounted, and not before the idle time since the last access.
    await waitFor(async () => (await statusOf(p!.url!)) === 'available' || delay(250).then(() => false), 120_000, 'idle dismount');
    assert.ok(Date.now() - lastAccess >= idleMs, 'not dismounted before LIFEBOAT_MOUNT_IDLE passed');
    await assertNothingLeft();
    await assertAvailableAndUnmounted(p.url!);
    assert.equal((await call(p.url!, 'GET', `/snapshots/${sid}/files?path=/`)).status, 400, 'nothing to browse any more');
    await p.stop();
    p = null;
  });

  test('SIGTERM with a mount open: dismounted before exit, available at the next start', async () => {
    p = await startProcess(await env());
    await mountAndWait(p.url!);
    assert.ok(fuseMountsUnder(mounts()).length > 0);
    await p.stop(); // SIGTERM; resolves when the process has exited
    assert.equal(p.child.exitCode, 0, p.output());
    await assertNothingLeft();
    p = await startProcess(await env());
    await assertAvailableAndUnmounted(p.url!);
    await p.stop();
    p = null;
  });

  test('kill -9 with two mounts open (fuse2fs, appliance): no stale FUSE mount, no orphan process, snapshots available again', async () => {
    p = await startProcess(await env());
    await mountAndWait(p.url!);
    await mountAndWait(p.url!, sidAppliance, 1);
    assert.ok(fuseMountsUnder(mounts()).includes(join(mounts(), sidAppliance)), 'the appliance serves its mount with FUSE');
    assert.ok(fuseMountsUnder(mounts()).length > 0);
    await p.kill9();
    assert.ok(fuseMountsUnder(mounts()).length > 0, 'the killed service left its FUSE mounts');
    assert.ok(processesTagged(applianceTag(h.home)).length > 0, 'and the processes serving them (fuse2fs, nbdfuse)');
    assert.equal(applianceDirs(applianceTag(h.home)).length, 1, "and the appliance's temporary directory (overlays)");
    const socketDirs = processesTagged(applianceTag(h.home)).flatMap(libguestfsSocketDirs);
    assert.equal(socketDirs.length, 1, "and libguestfs' socket directory in /tmp");

    lb2 = await startLifeboat(loadConfig(await env(), h.home), { role: 'all', demo: false, log: silentLogger });
    await assertNothingLeft();
    assert.equal(existsSync(socketDirs[0]!), false, "libguestfs' socket directory is gone");
    await assertAvailableAndUnmounted(`http://${lb2.address}`);
  });
});
