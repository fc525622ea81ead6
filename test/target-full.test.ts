import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/config.js';
import { verifyTarget } from '../src/app/repo-tools.js';
import { restoredDiskSha, selectiveRestoreAndWait, sha256File, snapshotEnded, startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';

/**
 * Reliability item C11 (shared/spec/reliability.md §2): the backup target fills up in the middle
 * of a snapshot. The target is a 32 MiB tmpfs (mounting needs root; CI runs as root and never
 * skips this). Expected: the snapshot ends `error` saying "No space left on device" (and no
 * path), the workload is unlocked, the failed snapshot has no manifest and left no temp file,
 * the earlier snapshot still verifies and restores byte for byte, and once space is freed the
 * next snapshot succeeds and restores byte for byte. The restore directory is on the same tmpfs:
 * a restore that fills it fails saying so and leaves no partial disk.
 */
const MiB = 1024 * 1024;
const DISK_BYTES = 4 * MiB;
const skip = process.getuid?.() !== 0 && process.env.CI !== 'true' ? 'needs root to mount a small tmpfs as the backup target' : false;

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** Fills the filesystem of `dir` with one file until `leaveBytes` (± a page) stay free; returns its path. */
function fillUpTo(dir: string, leaveBytes: number): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    const block = Buffer.alloc(64 * 1024, 0xee);
    for (;;) {
      const st = statfsSync(dir);
      const free = st.bavail * st.bsize;
      if (free <= leaveBytes) break;
      writeSync(fd, block, 0, Math.min(block.length, free - leaveBytes));
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

describe('a backup target that runs out of space mid-snapshot (reliability C11)', { skip }, () => {
  let h: Harness;
  let mnt = '';
  let wid = '';
  let vmId = '';
  let diskPath = '';
  const target = () => join(mnt, 'target');
  const restoreDir = () => join(mnt, 'instances');
  let lastSnapshot = '';
  const snap = async (sid: string) => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot;
  before(async () => {
    mnt = mkdtempSync(join(tmpdir(), 'lifeboat-full-target-'));
    run('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'tmpfs', mnt]);
    h = await startHarness({ diskBytes: DISK_BYTES, env: { LIFEBOAT_TARGET: `file://${target()}`, LIFEBOAT_RESTORE_DIR: restoreDir() } });
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    vmId = vm.id;
    diskPath = vm.disks[0]!.path;
    writeFileSync(diskPath, randomBytes(DISK_BYTES)); // incompressible: every byte must be stored
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'full-target', instances: [{ 'instance-id': vmId }] } });
    assert.equal(r.status, 202, r.text);
    wid = r.json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
  });
  after(async () => {
    await h?.close();
    if (mnt) {
      spawnSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });

  test('the snapshot fails with "No space left on device"; the earlier one verifies and restores; after space is freed the next succeeds', async () => {
    const s1 = (await takeSnapshotAndWait(h, h.alice, wid, true, 30_000)).id as string;
    const s1Sha = sha256File(diskPath);

    writeFileSync(diskPath, randomBytes(DISK_BYTES)); // 4 MiB of new chunks
    const filler = fillUpTo(mnt, MiB);
    const r = await h.api(h.alice, 'POST', `/workloads/${wid}?full=1`, { snapshot: { name: 'no room', snapshot_type: 'full' } });
    assert.equal(r.status, 200, r.text);
    const s2 = r.json.snapshot.id as string;
    const failed = await snapshotEnded(h, h.alice, s2, 30_000);
    assert.equal(failed.status, 'error');
    assert.match(failed.error_msg, /No space left on device/);
    assert.ok(!failed.error_msg.includes(mnt) && !failed.error_msg.includes(h.home), `a path in ${failed.error_msg}`);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
    assert.equal(existsSync(join(target(), 'manifests', `${s2}.json`)), false, 'the failed snapshot has a manifest');
    assert.deepEqual(filesUnder(target()).filter((p) => p.includes('/.tmp-')), [], 'temp files left on the target');

    const config = loadConfig({ LIFEBOAT_HOME: h.home, LIFEBOAT_TARGET: `file://${target()}` }, h.home);
    const v = await verifyTarget(config, { markBad: false });
    assert.equal(v.ok, true, JSON.stringify(v.problems.slice(0, 3)));

    rmSync(filler); // (the restore directory is on the same filesystem)
    assert.equal(await restoredDiskSha(h, h.alice, wid, s1, vmId), s1Sha);
    const s3 = await takeSnapshotAndWait(h, h.alice, wid, false, 30_000);
    assert.equal(await restoredDiskSha(h, h.alice, wid, s3.id, vmId), sha256File(diskPath));
    assert.equal((await snap(s1)).status, 'available');
    lastSnapshot = s3.id;
  });

  test('a restore whose destination fills up fails saying so, leaves no partial disk, and the snapshot stays restorable', async () => {
    const before = new Set(filesUnder(restoreDir()));
    const filler = fillUpTo(mnt, MiB);
    const done = await selectiveRestoreAndWait(h, h.alice, wid, lastSnapshot, vmId, 30_000);
    assert.equal(done.status, 'error');
    assert.match(done.error_msg, /No space left on device/i);
    assert.ok(!done.error_msg.includes(mnt) && !done.error_msg.includes(h.home), `a path in ${done.error_msg}`);
    assert.deepEqual(filesUnder(restoreDir()).filter((p) => !before.has(p)), [], 'a partial restore left files');
    assert.equal((await snap(lastSnapshot)).status, 'available');
    rmSync(filler);
    assert.equal(await restoredDiskSha(h, h.alice, wid, lastSnapshot, vmId), sha256File(diskPath));
  });
});
