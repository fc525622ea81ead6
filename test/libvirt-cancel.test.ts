import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openBackend } from '../src/backend/open.js';
import { loadConfig } from '../src/config/config.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import { Repository } from '../src/repository/repository.js';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { freePort, waitFor } from './harness.js';
import { LIBVIRT_TOOLS, startLibvirtd, type Libvirtd } from './libvirtd.js';
import { TestGuest } from './libvirt-guest.js';
import { runLifeboat, startProcess, type LifeboatProcess } from './process.js';

/**
 * Issue 11, cancel and crash of a libvirt backup through real `lifeboat serve` processes on a
 * real libvirtd (TCG): a snapshot cancelled, or whose worker is killed with -9, while its pull
 * job is open leaves no libvirt job, NBD socket or scratch file (the reconciler ends a dead
 * worker's job), and the next snapshot continues the chain exactly. A domain that vanishes
 * mid-backup fails the snapshot naming it; libvirtd down fails it naming libvirt, unlocks the
 * workload and publishes nothing.
 *
 * "Mid-backup" is made deterministic by stopping the domain's QEMU process (SIGSTOP) as soon
 * as the pull job exists: the NBD server is QEMU, so no read completes until SIGCONT.
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const SIZE = 192 * MiB;
const hex = () => randomBytes(16).toString('hex');

describe('libvirt: cancel, kill -9, vanished domain, libvirtd down', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let g: TestGuest;
  let home: string;
  let env: Record<string, string>;
  let scratchDir: string;
  let proc: LifeboatProcess | null = null;
  let api: Api;
  let wid: string;
  const projectId = hex();
  const dom = `lb-cancel-${randomBytes(3).toString('hex')}`;

  before(async () => {
    lv = await startLibvirtd();
    g = TestGuest.create(lv, dom, [{ target: 'vda', format: 'qcow2', size: SIZE, fill: (b) => randomBytes(160 * MiB).copy(b, 0) }]);
    scratchDir = join(lv.dataDir, 'scratch');
    mkdirSync(scratchDir, { mode: 0o750 });
    lv.own(scratchDir);
    home = mkdtempSync(join(tmpdir(), 'lifeboat-lvcancel-'));
    writeFileSync(
      join(home, 'identity.json'),
      JSON.stringify({ projects: [{ id: projectId, name: 'p' }], users: [{ id: hex(), name: 'u', password: 'pw', roles: [{ project: 'p', role: 'member' }] }] }),
      { mode: 0o600 },
    );
    env = {
      LIFEBOAT_HOME: home,
      LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`,
      LIFEBOAT_JOB_LEASE: '2',
      LIFEBOAT_NODE_NAME: 'lv-cancel',
      LIFEBOAT_LOG_LEVEL: 'info',
      LIFEBOAT_PLATFORM: 'libvirt',
      LIFEBOAT_LIBVIRT_URI: lv.uri,
      LIFEBOAT_LIBVIRT_SCRATCH_DIR: scratchDir,
    };
    const assign = runLifeboat(env, ['libvirt-assign', g.uuid, projectId]);
    assert.equal(assign.status, 0, assign.stderr);
    await restart();
    const w = await api('POST', '/workloads', { workload: { name: 'w', instances: [{ 'instance-id': g.uuid }] } });
    assert.equal(w.status, 202, JSON.stringify(w.json));
    wid = w.json.workload.id;
    await workloadAvailable();
  });

  after(async () => {
    try {
      await proc?.stop();
    } finally {
      rmSync(home, { recursive: true, force: true });
      // A test that failed while QEMU was stopped must not leave it stopped: libvirt could not destroy it.
      try {
        process.kill(g.qemuPid(), 'SIGCONT');
      } catch {
        // no QEMU of the guest left
      }
      await lv?.stop();
    }
  });

  async function restart(): Promise<void> {
    await proc?.stop();
    proc = await startProcess(env);
    api = await client(proc, projectId);
  }

  const workloadAvailable = () => waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
  const jobDir = () => join(scratchDir, g.uuid);
  /** 'running' once a backup job is open; 'starting' while libvirt sets one up ('backup job data missing'). */
  const backupJob = (): 'none' | 'starting' | 'running' => {
    const r = spawnSync('virsh', ['-q', '-c', lv.uri, 'domjobinfo', dom], { encoding: 'utf8' });
    if (r.status !== 0 && /backup job data missing/.test(r.stderr)) return 'starting';
    if (r.status !== 0) throw new Error(`virsh domjobinfo failed: ${r.stderr}`);
    return /Operation:\s+Backup/.test(r.stdout) ? 'running' : 'none';
  };
  const hasBackupJob = () => backupJob() !== 'none';

  function snapshotDone(sid: string, states = ['available', 'error', 'cancelled']) {
    return waitFor(async () => {
      const x = (await api('GET', `/snapshots/${sid}`)).json.snapshot;
      return states.includes(x.status) ? x : null;
    }, 60_000, `snapshot ${states.join('|')}`);
  }

  async function snapshot(full = false): Promise<{ id: string; warning_msg: string | null }> {
    const r = await api('POST', `/workloads/${wid}${full ? '?full=1' : ''}`, { snapshot: { name: 's', snapshot_type: full ? 'full' : 'incremental' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const s = await snapshotDone(r.json.snapshot.id);
    assert.equal(s.status, 'available', s.error_msg);
    await workloadAvailable();
    return s;
  }

  /**
   * Starts a full (it reads all 160 MiB: a long window) and stops QEMU the moment its pull job
   * exists; returns the snapshot id. A full keeps the last good checkpoint until it commits.
   */
  async function snapshotHeldMidBackup(): Promise<string> {
    const r = await api('POST', `/workloads/${wid}?full=1`, { snapshot: { name: 'held', snapshot_type: 'full' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await waitFor(async () => backupJob() === 'running', 30_000, 'libvirt pull job begun');
    process.kill(g.qemuPid(), 'SIGSTOP');
    const s = (await api('GET', `/snapshots/${r.json.snapshot.id}`)).json.snapshot;
    assert.ok(['executing', 'uploading'].includes(s.status), `still running while QEMU is stopped: ${s.status}`);
    return r.json.snapshot.id;
  }

  /** The snapshot's vda read back from the repository equals the model; QEMU holds one Lifeboat bitmap; nothing of a job is left. */
  async function assertExactAndClean(sid: string, what: string): Promise<void> {
    const config = loadConfig({ ...process.env, ...env });
    const repo = await Repository.open(await openBackend(config.target, { create: false, connections: config.targetConnections }));
    const sink = new MemDiskSink(SIZE);
    await restoreDisk({ repo, snapshotId: sid, diskKey: diskKey(g.uuid, '/dev/vda'), sink });
    assert.ok(sink.data.equals(g.disk('vda').expected), `${what}: restores byte-exact`);
    assertNoJobLeft(what);
    assert.equal(g.lifeboatBitmaps().length, 1, `${what}: one Lifeboat bitmap: ${JSON.stringify(g.lifeboatBitmaps())}`);
  }

  function assertNoJobLeft(what: string): void {
    assert.equal(hasBackupJob(), false, `${what}: no libvirt backup job`);
    assert.ok(!existsSync(jobDir()), `${what}: no NBD socket or scratch file`);
    assert.equal(lv.virsh('checkpoint-list', dom, '--name').trim(), '', `${what}: no checkpoint metadata`);
  }

  /** The modes the last snapshot's disks were read in, from the worker's log ("snapshot available"). */
  function lastModes(): string[] {
    const lines = proc!.output().split('\n').filter((l) => l.includes('"snapshot available"'));
    return (JSON.parse(lines.at(-1) ?? '{}') as { modes?: string[] }).modes ?? [];
  }

  test('kill -9 of the worker mid-backup: the reconciler ends the libvirt job (no job, socket, scratch file); the next incremental continues exactly', async () => {
    await snapshot(true);
    g.write('vda', 0x11, 1 * MiB, 64 * KiB);
    const sid = await snapshotHeldMidBackup();
    await proc!.kill9();
    process.kill(g.qemuPid(), 'SIGCONT');
    assert.ok(hasBackupJob(), 'the dead worker left its pull job open');
    assert.ok(readdirSync(jobDir()).length > 0, 'and its socket and scratch file');

    await restart();
    const dead = await snapshotDone(sid, ['error']);
    assert.equal(dead.error_msg, 'Snapshot did not finish successfully');
    assertNoJobLeft('after the reconciler');
    await workloadAvailable();

    g.write('vda', 0x12, 2 * MiB, 64 * KiB);
    const next = await snapshot();
    // Both writes (before and after the dead full) are in the incremental from the last good checkpoint.
    assert.equal(next.warning_msg, null);
    assert.deepEqual(lastModes(), ['changed-extents'], 'the chain continues from the last good checkpoint');
    await assertExactAndClean(next.id, 'after kill -9');
  });

  test('cancel mid-backup: the snapshot ends cancelled, the job is ended; the next incremental holds the writes since the last good one', async () => {
    g.write('vda', 0x21, 3 * MiB, 64 * KiB);
    const sid = await snapshotHeldMidBackup();
    const c = await api('GET', `/snapshots/${sid}/cancel`);
    assert.equal(c.status, 200);
    await waitFor(async () => (await api('GET', `/snapshots/${sid}`)).json.snapshot.status === 'cancelling', 10_000, 'cancelling');
    // The job sees a cancel request on its next progress tick (every 500 ms) and there is no
    // event to wait on while QEMU is stopped: three ticks pass before the reads can go on.
    const t0 = Date.now();
    await waitFor(async () => Date.now() - t0 > 1500, 5_000, 'three progress ticks');
    process.kill(g.qemuPid(), 'SIGCONT');
    const end = await snapshotDone(sid);
    assert.equal(end.status, 'cancelled');
    await workloadAvailable();
    assertNoJobLeft('after the cancel');

    g.write('vda', 0x22, 4 * MiB, 64 * KiB);
    const next = await snapshot();
    assert.equal(next.warning_msg, null);
    assert.deepEqual(lastModes(), ['changed-extents']);
    await assertExactAndClean(next.id, 'after a cancel');
  });

  test('the domain disappears mid-backup: the snapshot fails naming it, nothing is left', async () => {
    const sid = await snapshotHeldMidBackup();
    // Undefined while running (it becomes transient), then its QEMU dies: the domain is gone.
    lv.virsh('undefine', dom, '--checkpoints-metadata');
    process.kill(g.qemuPid(), 'SIGKILL');
    const s = await snapshotDone(sid);
    assert.equal(s.status, 'error');
    assert.match(s.error_msg, new RegExp(`Instance ${dom} \\(${g.uuid}\\) disappeared during the backup`));
    await workloadAvailable();
    assert.ok(!existsSync(jobDir()), 'no NBD socket or scratch file');
  });

  test('libvirtd down: the snapshot fails naming libvirt, the workload is unlocked, nothing is published', async () => {
    const before = JSON.parse(runLifeboat(env, ['repo', 'verify', '--json']).stdout).snapshots as number;
    const daemon = spawnSync('pgrep', ['-f', `libvirtd -f ${lv.dir}/libvirtd.conf`], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number);
    assert.equal(daemon.length, 1, 'one libvirtd of this test');
    process.kill(daemon[0]!, 'SIGKILL');
    const r = await api('POST', `/workloads/${wid}`, { snapshot: { name: 'down', snapshot_type: 'incremental' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const s = await snapshotDone(r.json.snapshot.id);
    assert.equal(s.status, 'error');
    assert.match(s.error_msg, /libvirt \S+ failed/);
    assert.doesNotMatch(s.error_msg, /\/tmp|socket=/, 'no path in the message');
    await workloadAvailable();
    assert.equal(JSON.parse(runLifeboat(env, ['repo', 'verify', '--json']).stdout).snapshots, before, 'no new manifest');
  });
});

type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; json: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A member of `projectId` signed in to the process's API (Keystone-style password auth). */
async function client(proc: LifeboatProcess, projectId: string): Promise<Api> {
  const r = await fetch(`${proc.url}/identity/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: 'u', domain: { id: 'default' }, password: 'pw' } } }, scope: { project: { id: projectId } } } }),
  });
  const token = r.headers.get('x-subject-token')!;
  return async (method, path, body) => {
    const res = await fetch(`${proc.url}/v1/${projectId}${path}`, { method, headers: { 'x-auth-token': token, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
}
