import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restoreDisk } from '../src/datamover/restore.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import { waitFor } from '../src/lib/testing.js';
import { FileDiskSink } from '../src/platform/disk-io/file-disk.js';
import { KVM_HOST, kvmHostSkip, OsFixture, paddedSha256, sha256File, snapshotOf, startOsLifeboat, tokenOf, workloadBody, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * The API-only path for image-booted root disks (Nova createImage): a Lifeboat with no worker
 * on the servers' hosts snapshots a server on the libvirt host oib-kvm through createImage →
 * Glance → local raw file (the qcow2 converted), restores it byte for byte, and leaves no
 * temporary image; a server on the fake-driver host, whose images hold no data, fails clearly
 * naming the host and the worker it needs.
 */
const skip = await kvmHostSkip();
const GiB = 1 << 30;
const MiB = 1 << 20;

let f: OsFixture;
let os: OsLifeboat;
let p1: OsProject;
let member: OsUser;
let kvmServer: string;
let fakeServer: string;
let image: Buffer;
let work: string;

before(async () => {
  if (skip) return;
  f = new OsFixture();
  const svc = await f.serviceUser();
  p1 = await f.project('rootimg');
  member = await f.user('member', p1, ['member']);
  const ops = f.sessionOf(await f.user('ops', p1, ['admin', 'member']), p1);
  image = randomBytes(2 * MiB);
  const imageId = await f.image(image);
  const flavor = await f.flavor({ ram: 128, disk: 1 });
  kvmServer = (await f.activeServer(ops, { name: 'kvm', imageRef: imageId, flavorRef: flavor.id, networks: 'none', availability_zone: `nova:${KVM_HOST}` })).id;
  fakeServer = (await f.activeServer(ops, { name: 'fake', imageRef: imageId, flavorRef: flavor.id, networks: 'none', availability_zone: 'nova:oib-compute' })).id;
  work = mkdtempSync(join(tmpdir(), `${f.run}-rootimg-`));
  // The default node name (this machine's hostname) serves neither compute host.
  os = await startOsLifeboat(svc);
});

after(async () => {
  if (skip) return;
  await os?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  assert.deepEqual(await f.cleanup(), []);
});

/** The temporary images of createImage exports of `server` (named lifeboat-tmp-<server id prefix>-…). */
async function temporaryImages(server: string): Promise<string[]> {
  const imgs = (await f.admin.call<{ images: { name: string }[] }>('image', 'GET', '/images?limit=1000')).data.images;
  return imgs.map((i) => i.name ?? '').filter((n) => n.startsWith(`lifeboat-tmp-${server.slice(0, 8)}-`));
}

async function workload(token: string, server: string): Promise<string> {
  const made = await os.api(token, 'POST', `/v1/${p1.id}/workloads`, workloadBody([server]));
  assert.equal(made.status, 202, JSON.stringify(made.json));
  const wid = made.json.workload.id as string;
  await waitFor(async () => (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.status === 'available', 120_000, 'workload available');
  return wid;
}

test('an image-booted root disk on a libvirt host is read through Nova createImage, byte for byte, no temporary image left', { skip }, async () => {
  const token = await tokenOf(member, p1);
  const wid = await workload(token, kvmServer);
  const { snap, ms } = await snapshotOf(os, token, p1.id, wid, 'full');
  assert.equal(snap.status, 'available', snap.error_msg);
  console.log(`createImage path: full snapshot of a 1 GiB root disk in ${ms} ms`);
  const out = join(work, 'vda.raw');
  const sink = await FileDiskSink.create(out, GiB);
  await restoreDisk({ repo: os.lb.repo, snapshotId: snap.id, diskKey: diskKey(kvmServer, '/dev/vda'), sink });
  assert.equal(await sha256File(out), paddedSha256(image, GiB), 'the root disk restores byte for byte (the image, then zeros to the flavor size)');
  assert.deepEqual(await temporaryImages(kvmServer), [], 'the createImage image is deleted');
});

test('an image-booted root disk on the fake-driver host fails naming the host and the worker it needs', { skip }, async () => {
  const token = await tokenOf(member, p1);
  const wid = await workload(token, fakeServer);
  const { snap } = await snapshotOf(os, token, p1.id, wid, 'full');
  assert.equal(snap.status, 'error');
  assert.match(snap.error_msg, /sits on compute host oib-compute, which no live Lifeboat worker serves \(run a worker there with LIFEBOAT_NODE_NAME=oib-compute\): Disk \/dev\/[sv]da of server \S+ \([0-9a-f-]{36}\) is a local image-backed disk on compute host oib-compute, whose hypervisor \(fake\) cannot copy it through Nova createImage; only a Lifeboat worker on that host \(LIFEBOAT_NODE_NAME=oib-compute\) can read it/);
  assert.deepEqual(await temporaryImages(fakeServer), [], 'nothing was made');
});
