import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { diskKey } from '../src/jobs/snapshot.job.js';
import { waitFor } from '../src/lib/testing.js';
import { silentLogger } from '../src/lib/logger.js';
import { loadConfig } from '../src/config/config.js';
import { startLifeboat, type Lifeboat } from '../src/app/app.js';
import type { OpenStackPlatform } from '../src/platform/openstack/openstack.platform.js';
import { freePort } from './harness.js';
import {
  guestWrite,
  KVM_HOST,
  kvmHostSkip,
  kvmWorkerEnv,
  OsFixture,
  osLifeboatEnv,
  paddedSha256,
  restoredDiskSha,
  sha256File,
  snapshotOf,
  startOsLifeboat,
  tokenOf,
  volumeFile,
  workloadBody,
  writeVolume,
  type OsLifeboat,
  type OsProject,
  type OsUser,
} from './openstack.js';

/**
 * Per-host parts of a snapshot against the loopback stack (issue 12, "per-host job routing"):
 * a workload of two servers on two compute hosts — one booted from an image on the libvirt host
 * oib-kvm, one booted from a volume on oib-compute — protected by two Lifeboats on one store and
 * one target: the all-in-one on oib-kvm (libvirt, dirty bitmaps) and a worker whose node name is
 * oib-compute (no hypervisor access: it reads its server through Cinder and Glance). Each
 * snapshot is split: whichever worker claims it reads its own host's server and queues a part
 * for the other host's worker; one manifest holds both, and both restore byte for byte.
 */
const skip = await kvmHostSkip();
const GiB = 1 << 30;
const MiB = 1 << 20;
const KiB = 1024;
const OTHER_HOST = 'oib-compute';
/** The boot volume's device as Nova's fake driver on oib-compute names it. */
const BFV_DEVICE = '/dev/sda';

let f: OsFixture;
let os: OsLifeboat;
let second: Lifeboat;
let p1: OsProject;
let member: OsUser;
let kvm: string;
let bfv: string;
let bootVol: string;
let scratchDir: string;
/** The kvm server's root disk's first 8 MiB as the guest sees them; zeros beyond. */
const rootHead = Buffer.alloc(8 * MiB);

before(async () => {
  if (skip) return;
  f = new OsFixture();
  const svc = await f.serviceUser();
  p1 = await f.project('split');
  member = await f.user('member', p1, ['member']);
  const ops = f.sessionOf(await f.user('ops', p1, ['admin', 'member']), p1);
  const image = randomBytes(4 * MiB);
  image.copy(rootHead);
  const imageId = await f.image(image);
  const flavor = await f.flavor({ ram: 128, disk: 1 });
  kvm = (await f.activeServer(ops, { name: 'kvm', imageRef: imageId, flavorRef: flavor.id, networks: 'none', availability_zone: `nova:${KVM_HOST}` })).id;
  const bootVolume = [{ boot_index: 0, uuid: imageId, source_type: 'image', destination_type: 'volume', volume_size: 1, delete_on_termination: true }];
  bfv = (await f.activeServer(ops, { name: 'bfv', flavorRef: flavor.id, networks: 'none', availability_zone: `nova:${OTHER_HOST}`, block_device_mapping_v2: bootVolume })).id;
  const [v] = (await f.serverOf(bfv))['os-extended-volumes:volumes_attached'] as { id: string }[];
  assert.ok(v, 'the boot volume is attached');
  bootVol = v.id;
  const worker = kvmWorkerEnv(f.run);
  scratchDir = worker.scratchDir;
  os = await startOsLifeboat(svc, worker.env);
  // The second worker: same home (store, target, keys), its own port, the other host's name, no libvirt.
  const env = { ...(await osLifeboatEnv(svc, os.home)), LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`, LIFEBOAT_NODE_NAME: OTHER_HOST };
  second = await startLifeboat(loadConfig(env, os.home), { role: 'worker', demo: false, log: silentLogger });
  // Routing splits only across hosts with a live worker: wait until the second one is registered.
  await waitFor(async () => ((await os.lb.store.db.selectFrom('nodes').select('node_name').where('node_name', '=', OTHER_HOST).executeTakeFirst()) ? true : null), 30_000, `the ${OTHER_HOST} worker to register`);
});

after(async () => {
  if (skip) return;
  await second?.close();
  await os?.close();
  if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
  assert.deepEqual(await f.cleanup(), []);
});

const restoredSha = (snapshotId: string, instanceId: string, device: string, size: number) => restoredDiskSha(os.lb.repo, scratchDir, snapshotId, diskKey(instanceId, device), size);

const partsOf = (snapshotId: string) => os.lb.store.db.selectFrom('snapshot_parts').select(['node', 'status', 'error_msg']).where('snapshot_id', '=', snapshotId).execute();

/** The snapshot was split: the host that did not run the parent read its server as a done part; both servers restore exactly. */
async function assertSplitAndExact(snap: { id: string; host: string; instances: unknown[] }): Promise<void> {
  assert.ok([KVM_HOST, OTHER_HOST].includes(snap.host), `the parent ran on one of the two hosts (${snap.host})`);
  const other = snap.host === KVM_HOST ? OTHER_HOST : KVM_HOST;
  assert.deepEqual(await partsOf(snap.id), [{ node: other, status: 'done', error_msg: null }]);
  assert.equal(snap.instances.length, 2);
  const keys = (await os.lb.repo.readManifest(snap.id)).disks.map((d) => d.diskKey).sort();
  assert.deepEqual(keys, [diskKey(kvm, '/dev/vda'), diskKey(bfv, BFV_DEVICE)].sort(), `kvm ${kvm}, bfv ${bfv}`);
  assert.equal(await restoredSha(snap.id, kvm, '/dev/vda', GiB), paddedSha256(rootHead, GiB), 'the libvirt server restores byte for byte');
  assert.equal(await restoredSha(snap.id, bfv, BFV_DEVICE, GiB), await sha256File(volumeFile(bootVol)), 'the volume-booted server restores byte for byte');
}

test('servers on two compute hosts, each with its own worker: the snapshot is split into a part per host, full and incremental, one manifest', { skip }, async () => {
  const token = await tokenOf(member, p1);
  const made = await os.api(token, 'POST', `/v1/${p1.id}/workloads`, workloadBody([kvm, bfv]));
  assert.equal(made.status, 202, JSON.stringify(made.json));
  const wid = made.json.workload.id as string;
  await waitFor(async () => (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.status === 'available', 120_000, 'workload available');

  const full = await snapshotOf(os, token, p1.id, wid, 'full');
  assert.equal(full.snap.status, 'available', full.snap.error_msg);
  await assertSplitAndExact(full.snap);

  // Writes on both servers; the libvirt server's incremental reads only its dirty 64 KiB.
  guestWrite(kvm, 0, 0x5a, '1M', '64k');
  rootHead.fill(0x5a, 1 * MiB, 1 * MiB + 64 * KiB);
  writeVolume(bootVol, 2 * MiB, 64 * KiB, 0xc3);
  // This time the oib-compute worker runs the parent: the all-in-one stops claiming until it has
  // (its API still answers, its node row still heartbeats), then claims its part.
  const runner = os.lb.runner!;
  await runner.stop();
  const incDone = snapshotOf(os, token, p1.id, wid, 'incremental');
  await waitFor(
    async () => ((await os.lb.store.db.selectFrom('snapshots').select('id').where('workload_id', '=', wid).where('host', '=', OTHER_HOST).executeTakeFirst()) ? true : null),
    60_000,
    `the ${OTHER_HOST} worker to claim the incremental`,
  );
  runner.start();
  const inc = await incDone;
  assert.equal(inc.snap.status, 'available', inc.snap.error_msg);
  assert.equal(inc.snap.snapshot_type, 'incremental');
  assert.equal(inc.snap.host, OTHER_HOST);
  assert.deepEqual((os.lb.platform as OpenStackPlatform).lastBackupStats(kvm), { mode: 'incremental', bytesRead: 64 * KiB }, 'the oib-kvm worker read the libvirt server, as a part, through its dirty bitmap');
  await assertSplitAndExact(inc.snap);
  console.log(`split snapshot: full ${full.ms} ms, incremental ${inc.ms} ms (parents on ${full.snap.host}, ${inc.snap.host})`);
});
