import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { waitFor } from './harness.js';
import { LIBVIRT_TOOLS, startLibvirtd, type Libvirtd } from './libvirtd.js';
import { TestGuest } from './libvirt-guest.js';
import { libvirtOwnedDir, startLibvirtServe, type LibvirtServe } from './libvirt-process.js';
import { runLifeboat, snapshotDiskOf, type ProcessApi } from './process.js';

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

describe('libvirt: cancel, kill -9, vanished domain, libvirtd down', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let g: TestGuest;
  let scratchDir: string;
  let lb: LibvirtServe;
  let wid: string;
  const dom = `lb-cancel-${randomBytes(3).toString('hex')}`;

  before(async () => {
    lv = await startLibvirtd();
    g = TestGuest.create(lv, dom, [{ target: 'vda', format: 'qcow2', size: SIZE, fill: (b) => randomBytes(160 * MiB).copy(b, 0) }]);
    scratchDir = libvirtOwnedDir(lv, 'scratch');
    // Log level info: lastModes() reads the worker's "snapshot available" lines.
    lb = await startLibvirtServe(lv, { nodeName: 'lv-cancel', homePrefix: 'lifeboat-lvcancel-', scratchDir, env: { LIFEBOAT_LOG_LEVEL: 'info' } });
    wid = await lb.protect(g.uuid);
  });

  after(async () => {
    try {
      await lb?.close();
    } finally {
      // A test that failed while QEMU was stopped must not leave it stopped: libvirt could not destroy it.
      try {
        process.kill(g.qemuPid(), 'SIGCONT');
      } catch {
        // no QEMU of the guest left
      }
      await lv?.stop();
    }
  });

  const api: ProcessApi = (method, path, body) => lb.api(method, path, body);
  const restart = () => lb.restart();
  const workloadAvailable = () => lb.workloadAvailable(wid, 20_000);
  const snapshot = (full = false) => lb.snapshot(wid, full);
  const jobDir = () => join(scratchDir, g.uuid);
  const xmlDir = () => join(scratchDir, `${g.uuid}.xml`);
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
    const data = await snapshotDiskOf(lb.env, sid, g.uuid, '/dev/vda', SIZE);
    assert.ok(data.equals(g.disk('vda').expected), `${what}: restores byte-exact`);
    assertNoJobLeft(what);
    assert.equal(g.lifeboatBitmaps().length, 1, `${what}: one Lifeboat bitmap: ${JSON.stringify(g.lifeboatBitmaps())}`);
  }

  function assertNoJobLeft(what: string): void {
    assert.equal(hasBackupJob(), false, `${what}: no libvirt backup job`);
    assert.ok(!existsSync(jobDir()), `${what}: no NBD socket or scratch file`);
    assert.ok(!existsSync(xmlDir()), `${what}: no XML file of the backup`);
    assert.equal(lv.virsh('checkpoint-list', dom, '--name').trim(), '', `${what}: no checkpoint metadata`);
  }

  /** The modes the last snapshot's disks were read in, from the worker's log ("snapshot available"). */
  function lastModes(): string[] {
    const lines = lb.proc!.output().split('\n').filter((l) => l.includes('"snapshot available"'));
    return (JSON.parse(lines.at(-1) ?? '{}') as { modes?: string[] }).modes ?? [];
  }

  test('kill -9 of the worker mid-backup: the reconciler ends the libvirt job (no job, socket, scratch file); the next incremental continues exactly', async () => {
    await snapshot(true);
    g.write('vda', 0x11, 1 * MiB, 64 * KiB);
    const sid = await snapshotHeldMidBackup();
    await lb.proc!.kill9();
    process.kill(g.qemuPid(), 'SIGCONT');
    assert.ok(hasBackupJob(), 'the dead worker left its pull job open');
    assert.ok(readdirSync(jobDir()).length > 0, 'and its socket and scratch file');
    assert.ok(readdirSync(xmlDir()).length > 0, 'and its XML files');

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

  test('lifeboat serve stops: it ends its virsh shells first, no virsh process is left', async () => {
    await snapshot();
    const pid = lb.proc!.child.pid!;
    const shells = virshOf(lv.uri).filter((p) => p.ppid === pid);
    assert.ok(shells.length > 0, 'the service talks to libvirt through virsh shells');
    await lb.proc!.stop();
    // Looked at the moment the service has exited, with no waiting: a shell it left to notice
    // the end of its stdin on its own would still be there.
    assert.deepEqual(virshOf(lv.uri), [], 'no virsh process left');
    await restart();
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
    assert.ok(!existsSync(xmlDir()), 'no XML file of the backup');
  });

  test('libvirtd down: the snapshot fails naming libvirt, the workload is unlocked, nothing is published', async () => {
    const before = JSON.parse(runLifeboat(lb.env, ['repo', 'verify', '--json']).stdout).snapshots as number;
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
    assert.equal(JSON.parse(runLifeboat(lb.env, ['repo', 'verify', '--json']).stdout).snapshots, before, 'no new manifest');
  });
});

/** Running `virsh … -c <uri>` processes (the test's own calls are synchronous: none is running now). */
function virshOf(uri: string): { pid: number; ppid: number }[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' }).stdout;
  return ps
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && /^virsh\s/.test(m[3]!) && m[3]!.includes(` -c ${uri}`))
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]) }));
}

