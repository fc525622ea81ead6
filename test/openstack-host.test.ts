import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { diskKey } from '../src/jobs/snapshot.job.js';
import { waitFor } from '../src/lib/testing.js';
import { RecentLog } from './recent-log.js';
import type { OpenStackPlatform } from '../src/platform/openstack/openstack.platform.js';
import { guestWrite, KVM_HOST, kvmHostSkip, kvmVirsh, kvmWorkerEnv, OsFixture, paddedSha256, pollFor, restoredDiskSha, sha256File, snapshotOf, startOsLifeboat, tokenOf, volumeFile, workloadBody, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * The compute-host data path against the loopback stack's libvirt host: a server booted from
 * a Glance image on oib-kvm with a Cinder volume attached, protected by a Lifeboat whose node
 * name is oib-kvm. Snapshots read the server's libvirt domain (the qcow2 root disk through
 * dirty bitmaps, the raw volume in full), restore byte for byte, leave no checkpoint metadata
 * in libvirt, so Nova's hard reboot and delete still work; a backup dropped half-way (a killed
 * worker) is cleaned up by the reconciler's hook.
 */
const skip = await kvmHostSkip();
const GiB = 1 << 30;
const MiB = 1 << 20;
const KiB = 1024;

let f: OsFixture;
let os: OsLifeboat;
let p1: OsProject;
let member: OsUser;
let server: string;
let dataVol: string;
let scratchDir: string;
/** The service's log lines (the scratch check reads them). */
const log = new RecentLog(10_000);
/** The root disk's first 8 MiB as the guest sees them (the image, then the test's writes); zeros beyond. */
const rootHead = Buffer.alloc(8 * MiB);

before(async () => {
  if (skip) return;
  f = new OsFixture();
  const svc = await f.serviceUser();
  p1 = await f.project('host');
  member = await f.user('member', p1, ['member']);
  const ops = f.sessionOf(await f.user('ops', p1, ['admin', 'member']), p1);
  const image = randomBytes(4 * MiB);
  image.copy(rootHead);
  const imageId = await f.image(image);
  const flavor = await f.flavor({ ram: 128, disk: 1 });
  // The volume first: cleanup runs in reverse, so the server is deleted (freeing the volume) before it.
  dataVol = await f.volume(ops, 'data');
  f.onCleanup('volume freed by the server delete', () => f.volumeStatus(ops, dataVol, 'available'));
  server = (await f.activeServer(ops, { name: 'kvm', imageRef: imageId, flavorRef: flavor.id, networks: 'none', availability_zone: `nova:${KVM_HOST}` })).id;
  await ops.call('compute', 'POST', `/servers/${server}/os-volume_attachments`, { json: { volumeAttachment: { volumeId: dataVol } } });
  // No detach at cleanup: the server's delete frees the volume (a guest without an OS never
  // completes a live detach), and the server goes before the volume (reverse order).
  await f.volumeStatus(ops, dataVol, 'in-use');
  const worker = kvmWorkerEnv(f.run);
  scratchDir = worker.scratchDir;
  os = await startOsLifeboat(svc, worker.env, { log });
});

after(async () => {
  if (skip) return;
  await os?.close();
  if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
  assert.deepEqual(await f.cleanup(), []);
});

/** sha256 of the whole 1 GiB root disk: rootHead, then zeros. */
const rootSha = () => paddedSha256(rootHead, GiB);

/** Restores one disk of the server from a snapshot and returns its sha256. */
const restoredSha = (snapshotId: string, device: string, size: number) => restoredDiskSha(os.lb.repo, scratchDir, snapshotId, diskKey(server, device), size);

const platform = () => os.lb.platform as OpenStackPlatform;
const lifeboatCheckpoints = () => kvmVirsh('checkpoint-list', server, '--name').split('\n').map((s) => s.trim()).filter((s) => s.startsWith('lifeboat-'));

/** Both disks of the snapshot equal the server's at snapshot time; the volume's bytes are its Cinder file. */
async function assertRestoresExactly(snapshotId: string, volumeSha: string): Promise<void> {
  assert.equal(await restoredSha(snapshotId, '/dev/vda', GiB), rootSha(), 'the root disk restores byte for byte');
  assert.equal(await restoredSha(snapshotId, '/dev/vdb', GiB), volumeSha, 'the volume restores byte for byte');
}

test('a Lifeboat on the compute host reads the server through libvirt: full, incremental through dirty bitmaps, Nova reboot and delete still work', { skip }, async () => {
  const token = await tokenOf(member, p1);
  const made = await os.api(token, 'POST', `/v1/${p1.id}/workloads`, workloadBody([server]));
  assert.equal(made.status, 202, JSON.stringify(made.json));
  const wid = made.json.workload.id as string;
  await waitFor(async () => (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.status === 'available', 120_000, 'workload available');

  // Full: the root disk's allocated data (the 4 MiB image) and the raw volume in full.
  const full = await snapshotOf(os, token, p1.id, wid, 'full');
  assert.equal(full.snap.status, 'available', full.snap.error_msg);
  assert.equal(full.snap.host, KVM_HOST);
  assert.equal(platform().lastBackupStats(server)?.mode, 'full');
  assert.deepEqual(lifeboatCheckpoints(), [], 'no checkpoint metadata stays in libvirt');
  await assertRestoresExactly(full.snap.id, await sha256File(volumeFile(dataVol)));
  const vdisks = full.snap.instances[0].vdisks as { volume_id?: string; volume_mountpoint?: string }[];
  assert.ok(vdisks.some((v) => v.volume_id === dataVol), 'the volume is recorded with its id');

  // Guest writes on both disks; the incremental reads the root disk's 64 KiB and the volume in full.
  guestWrite(server, 0, 0x5a, '1M', '64k');
  rootHead.fill(0x5a, 1 * MiB, 1 * MiB + 64 * KiB);
  guestWrite(server, 1, 0xa5, '3M', '64k');
  const inc = await snapshotOf(os, token, p1.id, wid, 'incremental');
  assert.equal(inc.snap.status, 'available', inc.snap.error_msg);
  assert.equal(inc.snap.snapshot_type, 'incremental');
  assert.deepEqual(platform().lastBackupStats(server), { mode: 'incremental', bytesRead: 64 * KiB + GiB }, 'only the dirty 64 KiB of the root disk are read (the raw volume cannot track changes)');
  console.log(`host path: full ${full.ms} ms, incremental ${inc.ms} ms (1 GiB raw volume read in full)`);
  assert.deepEqual(lifeboatCheckpoints(), []);
  await assertRestoresExactly(inc.snap.id, await sha256File(volumeFile(dataVol)));

  // A backup whose worker died mid-way (begun, never ended): the reconciler's cleanup ends the
  // libvirt job and removes the checkpoint metadata and the scratch files.
  const [instance] = await platform().listInstances(p1.id);
  assert.ok(instance);
  await platform().beginBackup(instance, { baseCheckpoint: null });
  assert.match(kvmVirsh('domjobinfo', server), /Operation:\s+Backup/);
  // Under Nova's libvirtd (root, dynamic ownership) too, the job reuses the scratch images Lifeboat made.
  assert.deepEqual(readdirSync(join(scratchDir, server)).filter((n) => n.endsWith('.scratch')).map((n) => n.split('.')[0]).sort(), ['vda', 'vdb']);
  assert.doesNotMatch(log.tail(), /could not make the scratch images/);
  assert.equal(lifeboatCheckpoints().length, 1);
  await platform().cleanupBackup(p1.id, [server]);
  assert.doesNotMatch(kvmVirsh('domjobinfo', server), /Operation:\s+Backup/, 'the dead backup job is ended');
  assert.deepEqual(lifeboatCheckpoints(), [], 'its checkpoint metadata is gone');
  assert.equal(existsSync(join(scratchDir, server)), false, 'its NBD socket and scratch files are gone');

  // Nova's hard reboot works (no checkpoint metadata); the bitmaps survive it in the qcow2.
  await f.admin.call('compute', 'POST', `/servers/${server}/action`, { json: { reboot: { type: 'HARD' } } });
  await pollFor(async () => {
    const s = (await f.admin.call<{ server: { status: string; 'OS-EXT-STS:task_state': string | null } }>('compute', 'GET', `/servers/${server}`)).data.server;
    if (s.status === 'ERROR') throw new Error('the hard reboot put the server in ERROR');
    return s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state'];
  }, 300_000, 'server ACTIVE after the hard reboot');
  guestWrite(server, 0, 0x77, '5M', '64k');
  rootHead.fill(0x77, 5 * MiB, 5 * MiB + 64 * KiB);
  const after = await snapshotOf(os, token, p1.id, wid, 'incremental');
  assert.equal(after.snap.status, 'available', after.snap.error_msg);
  assert.deepEqual(platform().lastBackupStats(server), { mode: 'incremental', bytesRead: 64 * KiB + GiB }, 'the chain survives the hard reboot and the dropped backup');
  assert.equal(await restoredSha(after.snap.id, '/dev/vda', GiB), rootSha());

  // Nova deletes the server (a domain with checkpoint metadata could not be undefined), and
  // with it the volume's attachment (a guest without an OS never completes a live detach).
  await f.admin.call('compute', 'DELETE', `/servers/${server}`);
  await pollFor(async () => (await f.admin.call('compute', 'GET', `/servers/${server}`, { expect: [200, 404] })).status === 404, 120_000, 'server deleted');
  assert.throws(() => kvmVirsh('dominfo', server), /failed/, 'its libvirt domain is gone');
  await f.volumeStatus(f.admin, dataVol, 'available');
});
