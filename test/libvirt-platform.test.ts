import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import type { LibvirtPlatform } from '../src/platform/libvirt/libvirt.platform.js';
import { run, skipUnlessInstalled } from '../src/nbd/testing.js';
import { startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { RecentLog } from './recent-log.js';
import { LIBVIRT_TOOLS, startLibvirtd, testDomainXml, type Libvirtd } from './libvirtd.js';

/**
 * The libvirt platform through the real service (issue 11, first slice): a running domain
 * assigned to a project with `lifeboat libvirt-assign`, a workload of it, a full snapshot, guest
 * writes through the QEMU monitor, an incremental that reads exactly the dirty 64 KiB blocks,
 * both snapshots equal to the guest disk as it was, and no checkpoint metadata left in libvirt.
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const SIZE = 64 * MiB;
const DOM = 'lifeboat-platform-test';
const BACKEND = '/machine/peripheral/virtio-disk0/virtio-backend';

describe('libvirt platform through the service', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let h: Harness;
  let uuid: string;
  let scratchDir: string;
  const warnings = new RecentLog(10_000); // the service's log lines (the scratch check reads them)
  let wid: string;
  let expected: Buffer; // the guest disk, kept in step with every write
  const cliHome = mkdtempSync(join(tmpdir(), 'lifeboat-cli-'));

  const lifeboat = (...args: string[]) =>
    spawnSync(process.execPath, ['dist/src/main.js', ...args], { encoding: 'utf8', env: { ...process.env, LIFEBOAT_HOME: cliHome, LIFEBOAT_LIBVIRT_URI: lv.uri } });

  before(async () => {
    lv = await startLibvirtd();
    const data = lv.dataDir;
    expected = Buffer.alloc(SIZE);
    randomBytes(8 * MiB).copy(expected, 0);
    randomBytes(4 * MiB).copy(expected, 32 * MiB);
    writeFileSync(join(data, 'seed.raw'), expected);
    run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', join(data, 'seed.raw'), join(data, 'disk0.qcow2')]);
    rmSync(join(data, 'seed.raw'));
    lv.own(join(data, 'disk0.qcow2'));
    scratchDir = join(data, 'scratch');
    mkdirSync(scratchDir, { mode: 0o750 });
    lv.own(scratchDir);
    writeFileSync(join(data, 'dom.xml'), testDomainXml(DOM, lv.domainType, join(data, 'disk0.qcow2')));
    lv.virsh('define', join(data, 'dom.xml'));
    lv.virsh('start', DOM);
    uuid = lv.virsh('domuuid', DOM).trim();
    h = await startHarness({ env: { LIFEBOAT_PLATFORM: 'libvirt', LIFEBOAT_LIBVIRT_URI: lv.uri, LIFEBOAT_LIBVIRT_SCRATCH_DIR: scratchDir }, log: warnings });
  });

  after(async () => {
    try {
      await h?.close();
    } finally {
      rmSync(cliHome, { recursive: true, force: true });
      if (lv) {
        try {
          lv.virsh('destroy', DOM);
          lv.virsh('undefine', DOM, '--checkpoints-metadata');
        } finally {
          await lv.stop();
        }
      }
    }
  });

  const checkpointsInLibvirt = () => lv.virsh('checkpoint-list', DOM, '--name').trim();
  const platform = () => h.lb.platform as LibvirtPlatform;

  function guestWrite(pattern: number, offset: number, length: number): void {
    lv.virsh('qemu-monitor-command', DOM, '--hmp', `qemu-io -d ${BACKEND} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
    expected.fill(pattern, offset, offset + length);
  }

  /**
   * A snapshot through the API; returns once it is available and its libvirt backup has ended
   * (the job ends the platform session just after the snapshot becomes available).
   */
  async function snapshot(full: boolean): Promise<{ id: string; size: number; warning_msg: string | null }> {
    const before = platform().lastBackupStats(uuid);
    const s = await takeSnapshotAndWait(h, h.alice, wid, full);
    await waitFor(async () => platform().lastBackupStats(uuid) !== before, 20_000, 'libvirt backup ended');
    return s;
  }

  async function snapshotContent(sid: string): Promise<Buffer> {
    const sink = new MemDiskSink(SIZE);
    await restoreDisk({ repo: h.lb.repo, snapshotId: sid, diskKey: diskKey(uuid, '/dev/vda'), sink });
    return sink.data;
  }

  test('an unassigned domain is invisible; libvirt-assign gives it to a project and the instance comes from the domain XML', async () => {
    const refused = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'lv', instances: [{ 'instance-id': uuid }] } });
    assert.ok(refused.status >= 400 && refused.status < 500, `unassigned domain: ${refused.status} ${refused.text}`);
    assert.equal(await platform().getInstance(h.alice.projectId, uuid), null);

    const toBob = lifeboat('libvirt-assign', uuid, h.bob.projectId);
    assert.equal(toBob.status, 0, toBob.stderr);
    assert.ok(await platform().getInstance(h.bob.projectId, uuid), 'assigned by uuid');
    const removed = lifeboat('libvirt-assign', DOM, '--remove');
    assert.equal(removed.status, 0, removed.stderr);
    assert.equal(await platform().getInstance(h.bob.projectId, uuid), null, '--remove makes it invisible again');
    assert.doesNotMatch(lv.virsh('dumpxml', DOM, '--inactive'), /urn:lifeboat/, 'from the persistent definition too');

    const assigned = lifeboat('libvirt-assign', DOM, h.alice.projectId);
    assert.equal(assigned.status, 0, assigned.stderr);
    assert.match(lv.virsh('dumpxml', DOM, '--inactive'), new RegExp(`project="${h.alice.projectId}"`), 'kept in the persistent definition');
    assert.match(assigned.stdout, new RegExp(uuid));
    assert.equal(await platform().getInstance(h.bob.projectId, uuid), null, 'another project does not see it');
    const inst = await platform().getInstance(h.alice.projectId, uuid);
    assert.deepEqual(
      { id: inst?.id, name: inst?.name, status: inst?.status, vcpus: inst?.flavor.vcpus, ram: inst?.flavor.ram, disks: inst?.disks, nics: inst?.nics.length },
      { id: uuid, name: DOM, status: 'ACTIVE', vcpus: 1, ram: 128, disks: [{ device: '/dev/vda', format: 'qcow2' }], nics: 0 },
    );
    assert.deepEqual((await platform().listInstances(h.alice.projectId)).map((i) => i.id), [uuid]);

    const usage = lifeboat('libvirt-assign', DOM);
    assert.equal(usage.status, 2, 'neither a project nor --remove');
    const missing = lifeboat('libvirt-assign', 'no-such-domain', h.alice.projectId);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /could not be found/);
    assert.doesNotMatch(missing.stderr, /\/tmp|socket=/, 'no path in the message');

    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'lv', instances: [{ 'instance-id': uuid }] } });
    assert.equal(r.status, 202, r.text);
    wid = r.json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
  });

  test('full, guest writes, incremental: the incremental reads exactly the dirty blocks; both equal the disk; no checkpoint stays in libvirt', async () => {
    assert.ok(wid, 'the workload of the previous test exists');
    const full = await snapshot(true);
    assert.equal(full.warning_msg, null);
    assert.equal(checkpointsInLibvirt(), '', 'no checkpoint metadata after the full');
    assert.deepEqual(platform().lastBackupStats(uuid), { mode: 'full', bytesRead: 12 * MiB }, 'a full reads only the allocated data');
    assert.ok(full.size >= 12 * MiB, `full stored ${full.size} bytes of random data`);
    const atFull = Buffer.from(expected);

    guestWrite(0x5a, 1 * MiB, 64 * KiB); // aligned, inside data
    guestWrite(0x5b, 10 * MiB + 1000, 100 * KiB); // unaligned, in a hole: 2 blocks
    guestWrite(0x5c, 40 * MiB - 512, 1024); // across the 40 MiB block edge: 2 blocks
    const inc = await snapshot(false);
    assert.equal(inc.warning_msg, null);
    assert.equal(checkpointsInLibvirt(), '', 'no checkpoint metadata after the incremental');
    assert.deepEqual(platform().lastBackupStats(uuid), { mode: 'incremental', bytesRead: 5 * 64 * KiB }, 'only the five dirty 64 KiB blocks are read');
    assert.ok(inc.size < 1 * MiB, `incremental stored ${inc.size} bytes`);

    assert.ok((await snapshotContent(full.id)).equals(atFull), 'the full is the disk at its backup-begin');
    assert.ok((await snapshotContent(inc.id)).equals(expected), 'the incremental is the disk at its backup-begin');
    // The model of the guest disk is the disk: qemu-img reads the live qcow2 (no write since the incremental).
    const live = join(lv.dataDir, 'live.raw');
    run('qemu-img', ['convert', '-U', '-q', '-f', 'qcow2', '-O', 'raw', join(lv.dataDir, 'disk0.qcow2'), live]);
    assert.equal(sha256File(live), sha256(expected), 'the source disk as qemu-img reads it');
    rmSync(live);
  });

  test('a recorded checkpoint libvirt cannot use makes the next snapshot a full with a warning, and the chain continues after it', async () => {
    assert.ok(wid, 'the workload of the first test exists');
    // The base bitmap disappears from the running domain (as after an unclean QEMU exit).
    const bitmaps = JSON.parse(lv.virsh('qemu-monitor-command', DOM, '{"execute":"query-named-block-nodes","arguments":{"flat":true}}')).return as { 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[];
    const node = bitmaps.find((n) => (n['dirty-bitmaps'] ?? []).some((b) => b.name?.startsWith('lifeboat-')))!;
    assert.ok(node, `the last checkpoint has a bitmap in QEMU: ${JSON.stringify(bitmaps.map((n) => n['dirty-bitmaps']))}`);
    for (const b of node['dirty-bitmaps']!) {
      lv.virsh('qemu-monitor-command', DOM, JSON.stringify({ execute: 'block-dirty-bitmap-remove', arguments: { node: node['node-name'], name: b.name } }));
    }
    guestWrite(0x6a, 2 * MiB, 64 * KiB);
    const fallback = await snapshot(false);
    assert.match(fallback.warning_msg ?? '', /read in full and a new checkpoint chain started/);
    assert.doesNotMatch(fallback.warning_msg ?? '', /\/tmp|socket=/);
    assert.equal(platform().lastBackupStats(uuid)?.mode, 'full');
    assert.equal(checkpointsInLibvirt(), '');
    assert.ok((await snapshotContent(fallback.id)).equals(expected), 'the fallback full is the disk');

    guestWrite(0x6b, 3 * MiB, 64 * KiB);
    const next = await snapshot(false);
    assert.equal(next.warning_msg, null);
    assert.deepEqual(platform().lastBackupStats(uuid), { mode: 'incremental', bytesRead: 64 * KiB });
    assert.ok((await snapshotContent(next.id)).equals(expected));
    assert.equal(checkpointsInLibvirt(), '');
  });

  test('a shut-off domain is backed up from its images, incrementally from the persistent bitmap; running again, the chain continues', async () => {
    assert.ok(wid, 'the workload of the first test exists');
    lv.virsh('destroy', DOM); // SIGTERM: a clean QEMU exit
    assert.equal(lv.virsh('domstate', DOM).trim(), 'shut off');
    const offline = await snapshot(false);
    assert.equal(offline.warning_msg, null);
    assert.deepEqual(platform().lastBackupStats(uuid), { mode: 'incremental', bytesRead: 0 }, 'nothing written since the last snapshot');
    assert.ok((await snapshotContent(offline.id)).equals(expected), 'the offline snapshot is the disk');

    lv.virsh('start', DOM); // the image is free again: qemu-nbd has exited
    const first = await snapshot(false);
    assert.equal(first.warning_msg, null);
    assert.equal(platform().lastBackupStats(uuid)?.mode, 'incremental', 'the checkpoint made offline is the base');
    guestWrite(0x7a, 5 * MiB, 64 * KiB);
    const next = await snapshot(false);
    assert.deepEqual(platform().lastBackupStats(uuid), { mode: 'incremental', bytesRead: 64 * KiB });
    assert.ok((await snapshotContent(next.id)).equals(expected));
    assert.equal(checkpointsInLibvirt(), '');
  });
  test('a backup whose worker died (session never ended) is cleaned up by the next begin; a failed end keeps the base; no job, socket, scratch file or checkpoint stays', async () => {
    const inst = (await platform().getInstance(h.alice.projectId, uuid))!;
    const jobDir = join(scratchDir, uuid);
    const first = await platform().beginBackup(inst, { baseCheckpoint: null });
    // The job reuses the scratch image Lifeboat made (qemu-img create, then backup-begin --reuse-external).
    const [scratchFile, ...others] = readdirSync(jobDir).filter((n) => n.endsWith('.scratch'));
    assert.match(scratchFile ?? '', /^vda\.[0-9a-z]+-[0-9a-f]{8}\.scratch$/);
    assert.deepEqual(others, []);
    const scratchInfo = JSON.parse(run('qemu-img', ['info', '-U', '--output=json', join(jobDir, scratchFile!)])) as { format: string; 'virtual-size': number };
    assert.deepEqual([scratchInfo.format, scratchInfo['virtual-size']], ['qcow2', SIZE]);
    assert.doesNotMatch(warnings.tail(), /could not make the scratch images/);
    await first.end('committed');
    const base = first.checkpoint!;
    assert.ok(base.name.startsWith('lifeboat-'));
    guestWrite(0x8a, 6 * MiB, 64 * KiB);

    // A worker that dies mid-backup: its NBD connections go, end() never runs.
    const dead = await platform().beginBackup(inst, { baseCheckpoint: base });
    for (const d of dead.disks) await d.source.close();
    assert.match(lv.virsh('domjobinfo', DOM), /Operation:\s+Backup/, 'the dead worker left its job open');
    assert.notEqual(checkpointsInLibvirt(), '', 'and its checkpoints');
    assert.ok(readdirSync(jobDir).length > 0, 'and its socket and scratch file');

    const again = await platform().beginBackup(inst, { baseCheckpoint: base });
    try {
      assert.deepEqual(again.warnings, []);
      assert.deepEqual(await again.disks[0]!.source.changedExtentsSince!(base.name), [{ offset: 6 * MiB, length: 64 * KiB }], 'the chain continues from the base, exactly');
    } finally {
      await again.end('failed');
    }
    assert.doesNotMatch(lv.virsh('domjobinfo', DOM), /Operation:\s+Backup/, 'no job after end');
    assert.equal(checkpointsInLibvirt(), '');
    assert.ok(!existsSync(jobDir), 'no socket or scratch file after end');

    const retry = await platform().beginBackup(inst, { baseCheckpoint: base });
    try {
      assert.deepEqual(await retry.disks[0]!.source.changedExtentsSince!(base.name), [{ offset: 6 * MiB, length: 64 * KiB }], 'a failed backup keeps the base usable');
    } finally {
      await retry.end('committed');
    }
    assert.equal(checkpointsInLibvirt(), '');
    assert.ok(!existsSync(jobDir));
  });

  test('guest writes during the backup job: the export stays the disk at backup-begin, and the next incremental holds exactly those writes', async () => {
    const inst = (await platform().getInstance(h.alice.projectId, uuid))!;
    const s = await platform().beginBackup(inst, { baseCheckpoint: null });
    const atBegin = Buffer.from(expected);
    let base;
    try {
      guestWrite(0x9a, 0, 8 * MiB); // over data
      guestWrite(0x9b, 20 * MiB, 1 * MiB); // into a hole
      const src = s.disks[0]!.source;
      const got = Buffer.alloc(SIZE, 0xee);
      for (let off = 0; off < SIZE; off += 4 * MiB) assert.equal(await src.read(got, off, 4 * MiB, off), 4 * MiB);
      assert.ok(got.equals(atBegin), 'the export shows no write made after backup-begin');
      base = s.checkpoint!;
    } finally {
      await s.end('committed');
    }
    const next = await platform().beginBackup(inst, { baseCheckpoint: base });
    try {
      assert.deepEqual(await next.disks[0]!.source.changedExtentsSince!(base.name), [
        { offset: 0, length: 8 * MiB },
        { offset: 20 * MiB, length: 1 * MiB },
      ]);
    } finally {
      await next.end('failed');
    }
    assert.equal(checkpointsInLibvirt(), '');
  });

  /** Lifeboat's bitmaps in the running domain's qcow2, as QEMU lists them (test only: the query taints the domain). */
  const bitmapsInQemu = () =>
    (JSON.parse(lv.virsh('qemu-monitor-command', DOM, '{"execute":"query-named-block-nodes","arguments":{"flat":true}}')).return as { 'dirty-bitmaps'?: { name?: string }[] }[])
      .flatMap((n) => (n['dirty-bitmaps'] ?? []).map((b) => b.name ?? ''))
      .filter((n) => n.startsWith('lifeboat-'));
  const ledgerOf = () => (JSON.parse(readFileSync(join(scratchDir, `${uuid}.bitmaps.json`), 'utf8')) as { bitmaps: string[] }).bitmaps;

  test('readsDone ends the job, its socket and scratch files and libvirt forgets the new checkpoint while the snapshot is still being committed; its bitmap waits for end()', async () => {
    const inst = (await platform().getInstance(h.alice.projectId, uuid))!;
    const jobDir = join(scratchDir, uuid);
    const s = await platform().beginBackup(inst, { baseCheckpoint: null });
    const backupJob = () => /Operation:\s+Backup/.test(lv.virsh('domjobinfo', DOM));
    let ended = false;
    try {
      const src = s.disks[0]!.source;
      const got = Buffer.alloc(SIZE);
      for (let off = 0; off < SIZE; off += 4 * MiB) assert.equal(await src.read(got, off, 4 * MiB, off), 4 * MiB);
      assert.ok(got.equals(expected));
      assert.ok(backupJob() && existsSync(jobDir), 'the job runs until told');
      assert.notEqual(checkpointsInLibvirt(), '', 'the new checkpoint is defined during the job');
      s.readsDone!();
      await waitFor(() => !backupJob() && !existsSync(jobDir) && checkpointsInLibvirt() === '', 10_000, 'the job, its files and the checkpoint metadata to go');
      assert.ok(bitmapsInQemu().includes(s.checkpoint!.name), 'the new bitmap waits for the outcome');
      await assert.rejects(src.read(got, 0, 64 * KiB, 0), 'the export is gone');
      ended = true;
      await s.end('committed');
    } finally {
      if (!ended) await s.end('failed');
    }
    assert.equal(checkpointsInLibvirt(), '');
    guestWrite(0xaa, 7 * MiB, 64 * KiB);
    const next = await platform().beginBackup(inst, { baseCheckpoint: s.checkpoint });
    try {
      assert.deepEqual(await next.disks[0]!.source.changedExtentsSince!(s.checkpoint!.name), [{ offset: 7 * MiB, length: 64 * KiB }], 'the committed checkpoint is the next base');
      next.readsDone!();
      await waitFor(() => !backupJob() && checkpointsInLibvirt() === s.checkpoint!.name, 10_000, 'the new checkpoint forgotten, the base still defined');
    } finally {
      await next.end('failed');
    }
    // A failure after the reads: the new bitmap (whose metadata libvirt had forgotten) is
    // removed all the same, and the base stays the base.
    assert.equal(checkpointsInLibvirt(), '');
    assert.deepEqual(bitmapsInQemu(), [s.checkpoint!.name], 'only the base bitmap stays in the qcow2');
    assert.deepEqual(ledgerOf(), [s.checkpoint!.name], 'the ledger names only the base');
    guestWrite(0xab, 9 * MiB, 64 * KiB);
    const again = await platform().beginBackup(inst, { baseCheckpoint: s.checkpoint });
    try {
      assert.deepEqual(await again.disks[0]!.source.changedExtentsSince!(s.checkpoint!.name), [{ offset: 7 * MiB, length: 64 * KiB }, { offset: 9 * MiB, length: 64 * KiB }], 'the base still holds every write since it');
    } finally {
      await again.end('failed');
    }
    assert.equal(checkpointsInLibvirt(), '');
  });
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sha256File = (p: string) => sha256(readFileSync(p));

