import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import type { LibvirtPlatform } from '../src/platform/libvirt/libvirt.platform.js';
import { assignDomain } from '../src/platform/libvirt/assign.js';
import { run, skipUnlessInstalled } from '../src/nbd/testing.js';
import { startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { LIBVIRT_TOOLS, startLibvirtd, type Libvirtd } from './libvirtd.js';

/**
 * Restores on the libvirt platform through the real service (issue 11, restore side): real
 * domains of a private libvirtd (TCG), disks compared byte for byte through `qemu-img convert
 * -O raw`. In place (qcow2 rewritten flat, the next snapshot a full), new domains as qcow2 or
 * raw (sparse, started when the source ran), network mapping, a loop block device, one-click.
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const RUN = randomBytes(3).toString('hex'); // unique names: other helpers use this machine's libvirt too
const qomPath = (i: number) => `/machine/peripheral/virtio-disk${i}/virtio-backend`;

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface TestDisk {
  target: string;
  /** Image file or block device. */
  source: string;
  format: 'qcow2' | 'raw';
  type: 'file' | 'block';
  /** The guest's view, kept in step with every write. */
  expected: Buffer;
}

function domainXml(name: string, type: string, disks: TestDisk[], networks: string[] = []): string {
  const d = disks
    .map((x) => `<disk type='${x.type}' device='disk'><driver name='qemu' type='${x.format}'/><source ${x.type === 'block' ? 'dev' : 'file'}='${x.source}'/><target dev='${x.target}' bus='virtio'/></disk>`)
    .join('');
  const n = networks.map((net) => `<interface type='network'><source network='${net}'/><model type='virtio'/></interface>`).join('');
  return `<domain type='${type}'><name>${name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>${d}${n}<video><model type='none'/></video><memballoon model='none'/></devices></domain>`;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('libvirt restores through the service', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let h: Harness;
  let restoreDir: string;
  let scratch: string;
  const defined: string[] = []; // every domain a test defined or restored (undefined in after())
  const loops: string[] = [];

  before(async () => {
    lv = await startLibvirtd();
    restoreDir = join(lv.dataDir, 'restored');
    mkdirSync(restoreDir, { mode: 0o750 });
    lv.own(restoreDir);
    scratch = join(lv.dataDir, 'scratch');
    mkdirSync(scratch, { mode: 0o750 });
    lv.own(scratch);
    h = await startHarness({ env: { LIFEBOAT_PLATFORM: 'libvirt', LIFEBOAT_LIBVIRT_URI: lv.uri, LIFEBOAT_LIBVIRT_SCRATCH_DIR: scratch, LIFEBOAT_RESTORE_DIR: restoreDir } });
  });

  after(async () => {
    try {
      await h?.close();
    } finally {
      if (lv) {
        for (const d of defined) {
          try {
            lv.virsh('destroy', d);
          } catch {
            // not running
          }
          try {
            lv.virsh('undefine', d, '--checkpoints-metadata');
          } catch {
            // already gone
          }
        }
        for (const l of loops) spawnSync('losetup', ['-d', l]);
        await lv.stop();
      }
    }
  });

  const platform = () => h.lb.platform as LibvirtPlatform;
  const state = (dom: string) => lv.virsh('domstate', dom).trim();

  /** A file disk: `size` bytes with random data in `data` ranges (holes elsewhere), as qcow2 or raw. */
  function fileDisk(name: string, target: string, format: 'qcow2' | 'raw', size: number, data: [number, number][]): TestDisk {
    const expected = Buffer.alloc(size);
    for (const [off, len] of data) randomBytes(len).copy(expected, off);
    const raw = join(lv.dataDir, `${name}.seed`);
    writeFileSync(raw, expected);
    const source = join(lv.dataDir, `${name}.${format}`);
    run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', format, raw, source]); // sparse either way
    rmSync(raw);
    lv.own(source);
    return { target, source, format, type: 'file', expected };
  }

  /** Defines (and starts) a domain assigned to alice's project; returns its UUID. */
  async function makeDomain(name: string, disks: TestDisk[], o: { start: boolean; networks?: string[] }): Promise<string> {
    const xml = join(lv.dataDir, `${name}.xml`);
    writeFileSync(xml, domainXml(name, lv.domainType, disks, o.networks));
    lv.virsh('define', xml);
    defined.push(name);
    if (o.start) lv.virsh('start', name);
    return (await assignDomain(lv.uri, name, h.alice.projectId)).uuid;
  }

  async function makeWorkload(uuid: string): Promise<string> {
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: `w-${uuid.slice(0, 8)}`, instances: [{ 'instance-id': uuid }] } });
    assert.equal(r.status, 202, r.text);
    const wid = r.json.workload.id as string;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
    return wid;
  }

  function guestWrite(dom: string, diskIndex: number, disk: TestDisk, pattern: number, offset: number, length: number): void {
    lv.virsh('qemu-monitor-command', dom, '--hmp', `qemu-io -d ${qomPath(diskIndex)} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
    disk.expected.fill(pattern, offset, offset + length);
  }

  /** A snapshot through the API, returned once the platform's backup session has ended too. */
  async function snapshot(wid: string, uuid: string, full: boolean): Promise<Json> {
    const before = platform().lastBackupStats(uuid);
    const s = await takeSnapshotAndWait(h, h.alice, wid, full);
    await waitFor(async () => platform().lastBackupStats(uuid) !== before, 20_000, 'libvirt backup ended');
    return s;
  }

  async function snapshotDisk(sid: string, uuid: string, device: string, size: number): Promise<Buffer> {
    const sink = new MemDiskSink(size);
    await restoreDisk({ repo: h.lb.repo, snapshotId: sid, diskKey: diskKey(uuid, device), sink });
    return sink.data;
  }

  /** Posts a restore; returns the response (not asserted). */
  function postRestore(wid: string, sid: string, options: Json) {
    return h.api(h.alice, 'POST', `/workloads/${wid}/snapshots/${sid}/restores`, { restore: { options: { type: 'openstack', ...options } } });
  }

  async function restoreAndWait(wid: string, sid: string, options: Json): Promise<Json> {
    const r = await postRestore(wid, sid, options);
    assert.equal(r.status, 202, r.text);
    const rid = r.json.restore.id as string;
    const done = await waitFor(async () => {
      const x = (await h.api(h.alice, 'GET', `/restores/${rid}`)).json.restore;
      return ['available', 'error'].includes(x.status) ? x : null;
    }, 120_000, 'restore done');
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
    return done;
  }

  const selective = (instances: Json[], networks: Json[] = []) => ({ restore_type: 'selective', oneclickrestore: false, openstack: { instances, restore_topology: false, networks_mapping: { networks } } });

  /** The guest-visible bytes of an image (qcow2 through its format, a raw file or device as is). */
  function imageBytes(source: string, format: string): Buffer {
    const out = join(lv.dir, `read-${randomBytes(4).toString('hex')}.raw`);
    try {
      run('qemu-img', ['convert', '-U', '-q', '-f', format, '-O', 'raw', source, out]);
      return readFileSync(out);
    } finally {
      rmSync(out, { force: true });
    }
  }

  /** The domain's disks as libvirt defines them: target → source and driver format. */
  function domainDisks(dom: string): Map<string, { source: string; format: string }> {
    const xml = lv.virsh('dumpxml', dom);
    const out = new Map<string, { source: string; format: string }>();
    for (const m of xml.matchAll(/<disk [^>]*device='disk'[^>]*>([\s\S]*?)<\/disk>/g)) {
      const body = m[1]!;
      const target = /<target dev='([^']+)'/.exec(body)![1]!;
      out.set(target, { source: /<source (?:file|dev)='([^']+)'/.exec(body)![1]!, format: /<driver name='qemu' type='([^']+)'/.exec(body)![1]! });
    }
    return out;
  }

  const allocated = (file: string) => statSync(file).blocks * 512;

  describe('a running domain with a qcow2 and a raw file disk', () => {
    const name = `lbr-${RUN}-a`;
    let uuid: string;
    let wid: string;
    let vda: TestDisk;
    let vdb: TestDisk;
    let s1: { id: string; vda: Buffer; vdb: Buffer };
    let incremental: { id: string; vda: Buffer } | null = null; // taken after the in-place restore

    before(async () => {
      vda = fileDisk(`${name}-vda`, 'vda', 'qcow2', 64 * MiB, [[0, 8 * MiB], [32 * MiB, 4 * MiB]]);
      vdb = fileDisk(`${name}-vdb`, 'vdb', 'raw', 16 * MiB, [[0, 2 * MiB]]);
      uuid = await makeDomain(name, [vda, vdb], { start: true });
      wid = await makeWorkload(uuid);
      const s = await snapshot(wid, uuid, true);
      s1 = { id: s.id, vda: Buffer.from(vda.expected), vdb: Buffer.from(vdb.expected) };
    });

    test('in-place restore: the domain is stopped, both disks get their snapshot-time bytes (the qcow2 flat, without bitmaps, sparse), it runs again; the next snapshot is a full', async () => {
      guestWrite(name, 0, vda, 0x5a, 1 * MiB, 64 * KiB);
      guestWrite(name, 0, vda, 0x5b, 20 * MiB, 1 * MiB); // into a hole
      guestWrite(name, 1, vdb, 0x5c, 4 * MiB, 64 * KiB);
      // A snapshot in between, so the workload's chain has a checkpoint the in-place restore invalidates.
      await snapshot(wid, uuid, false);
      assert.notEqual(sha256(imageBytes(vda.source, 'qcow2')), sha256(s1.vda), 'the guest changed vda since the snapshot');
      assert.notEqual(sha256(imageBytes(vdb.source, 'raw')), sha256(s1.vdb), 'and vdb');

      const done = await restoreAndWait(wid, s1.id, {
        restore_type: 'inplace',
        oneclickrestore: false,
        openstack: { instances: [{ id: uuid, availability_zone: 'nova', include: true, restore_boot_disk: true, vdisks: [] }], networks_mapping: { networks: [] } },
      });
      assert.equal(done.status, 'available', done.error_msg);
      assert.deepEqual(done.instances.map((i: Json) => i.id), [uuid], 'in place: the original id');
      assert.match(done.warning_msg ?? '', /restored in place.*next snapshot of the workload is a full/);
      assert.equal(state(name), 'running', 'running again, as before');

      const disks = domainDisks(name);
      assert.equal(disks.get('vda')?.source, vda.source, 'same image path');
      assert.equal(sha256(imageBytes(vda.source, 'qcow2')), sha256(s1.vda), 'vda = snapshot-time bytes');
      assert.equal(sha256(imageBytes(vdb.source, 'raw')), sha256(s1.vdb), 'vdb = snapshot-time bytes');
      const info = JSON.parse(run('qemu-img', ['info', '-U', '--output=json', vda.source])) as Json;
      assert.equal(info.format, 'qcow2');
      assert.equal(info['backing-filename'], undefined, 'flat: no backing file');
      assert.deepEqual(info['format-specific']?.data?.bitmaps ?? [], [], 'no dirty bitmaps');
      assert.ok(allocated(vda.source) < 16 * MiB, `qcow2 sparse: ${allocated(vda.source)} bytes for 12 MiB of data`);
      assert.ok(allocated(vdb.source) <= 3 * MiB, `raw sparse: ${allocated(vdb.source)} bytes for 2 MiB of data`);
      assert.equal(statSync(vda.source).uid, statSync(lv.dataDir).uid, 'the image keeps its owner');
      assert.deepEqual(readdirSync(lv.dataDir).filter((n) => n.startsWith('.')), [], 'no staged file stays beside the disks');
      assert.equal(lv.virsh('checkpoint-list', name, '--name').trim(), '');
      const ledger = JSON.parse(readFileSync(join(scratch, `${uuid}.bitmaps.json`), 'utf8')) as { bitmaps: string[] };
      assert.deepEqual(ledger.bitmaps, [], "the backup side's bitmap ledger names none of the bitmaps that went with the old image");
      vda.expected = Buffer.from(s1.vda);
      vdb.expected = Buffer.from(s1.vdb);

      const next = await snapshot(wid, uuid, false); // asked incremental
      assert.equal(next.snapshot_type, 'full', 'the workload was forced to a full');
      assert.equal(platform().lastBackupStats(uuid)?.mode, 'full');
      assert.ok((await snapshotDisk(next.id, uuid, '/dev/vda', 64 * MiB)).equals(vda.expected));
      assert.ok((await snapshotDisk(next.id, uuid, '/dev/vdb', 16 * MiB)).equals(vdb.expected));

      guestWrite(name, 0, vda, 0x6a, 3 * MiB, 64 * KiB);
      const inc = await snapshot(wid, uuid, false);
      assert.equal(inc.snapshot_type, 'incremental');
      assert.equal(platform().lastBackupStats(uuid)?.mode, 'incremental', 'a new chain started from the full');
      assert.ok((await snapshotDisk(inc.id, uuid, '/dev/vda', 64 * MiB)).equals(vda.expected));
      incremental = { id: inc.id, vda: Buffer.from(vda.expected) };
    });

    test('selective restore to a new domain: qcow2 stays qcow2 and raw stays raw (sparse), new UUID and name, started because the source ran', async () => {
      const copy = `lbr-${RUN}-copy`;
      const done = await restoreAndWait(wid, s1.id, selective([{ id: uuid, include: true, name: copy, vdisks: [] }]));
      assert.equal(done.status, 'available', done.error_msg);
      const newId = done.instances[0].id as string;
      defined.push(newId);
      assert.notEqual(newId, uuid);
      assert.equal(done.instances[0].name, copy);
      assert.equal(state(copy), 'running', 'the source was running at snapshot time');
      const disks = domainDisks(copy);
      assert.equal(disks.get('vda')?.format, 'qcow2');
      assert.equal(disks.get('vdb')?.format, 'raw');
      for (const d of disks.values()) assert.ok(d.source.startsWith(join(restoreDir, newId) + '/'), 'under LIFEBOAT_RESTORE_DIR/<uuid>/');
      assert.equal(sha256(imageBytes(disks.get('vda')!.source, 'qcow2')), sha256(s1.vda));
      assert.equal(sha256(imageBytes(disks.get('vdb')!.source, 'raw')), sha256(s1.vdb));
      assert.equal(JSON.parse(run('qemu-img', ['info', '-U', '--output=json', disks.get('vda')!.source])).format, 'qcow2');
      assert.ok(allocated(disks.get('vda')!.source) < 16 * MiB, 'qcow2 sparse');
      assert.ok(allocated(disks.get('vdb')!.source) <= 3 * MiB, 'raw sparse');
      assert.deepEqual(readdirSync(join(restoreDir, newId)).sort(), ['vda.qcow2', 'vdb.raw'], 'no staging file left');
    });

    test('an incremental restored with new_volume_type raw: the copy is the source at the incremental, byte for byte; power_on: false leaves it shut off; an unknown volume type is a 400 that creates nothing', async () => {
      assert.ok(incremental, 'the incremental of the in-place test exists');
      const bad = await postRestore(wid, s1.id, selective([{ id: uuid, include: true, name: `lbr-${RUN}-bad`, vdisks: [{ id: '/dev/vda', new_volume_type: 'lvm' }] }]));
      assert.equal(bad.status, 400, bad.text);
      assert.match(bad.json.badRequest.message, /new_volume_type "lvm".*raw or qcow2/);
      assert.equal((await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status, 'available', 'nothing locked');

      const copy = `lbr-${RUN}-raw`;
      const done = await restoreAndWait(wid, incremental.id, selective([{ id: uuid, include: true, name: copy, power_on: false, vdisks: [{ id: '/dev/vda', new_volume_type: 'raw' }] }]));
      assert.equal(done.status, 'available', done.error_msg);
      defined.push(done.instances[0].id);
      assert.equal(state(copy), 'shut off');
      const disks = domainDisks(copy);
      assert.deepEqual([...disks.keys()], ['vda'], 'only the disk asked for');
      assert.equal(disks.get('vda')?.format, 'raw');
      assert.equal(sha256(readFileSync(disks.get('vda')!.source)), sha256(incremental.vda));
      assert.ok(allocated(disks.get('vda')!.source) <= 13 * MiB, 'holes stay holes');
    });

    test('one-click: refused while the original exists (it restores in place of the originals); once it is gone, recreated under its name, running, and the workload protects it', async () => {
      const refused = await postRestore(wid, s1.id, { restore_type: 'oneclick', oneclickrestore: 'True', openstack: { instances: [], zone: '' } });
      assert.equal(refused.status, 400, refused.text);
      assert.match(refused.json.badRequest.message, new RegExp(`instance ${name} .* still exists`));

      lv.virsh('destroy', name);
      lv.virsh('undefine', name, '--checkpoints-metadata');
      const done = await restoreAndWait(wid, s1.id, { restore_type: 'oneclick', oneclickrestore: 'True', openstack: { instances: [], zone: '' } });
      assert.equal(done.status, 'available', done.error_msg);
      const newId = done.instances[0].id as string;
      defined.push(newId);
      assert.notEqual(newId, uuid);
      assert.equal(lv.virsh('domname', newId).trim(), name, 'the original name is free again');
      assert.equal(state(name), 'running');
      assert.equal(sha256(imageBytes(domainDisks(name).get('vda')!.source, 'qcow2')), sha256(s1.vda));
      assert.deepEqual((await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.instances.map((i: Json) => i.id), [newId]);
    });
  });

  describe('a shut-off domain on a libvirt network', () => {
    const name = `lbr-${RUN}-n`;
    const netSrc = `lbr${RUN}s`;
    const netDst = `lbr${RUN}d`;
    let uuid: string;
    let wid: string;
    let sid: string;
    let vda: TestDisk;
    let sourceMac: string;
    const mapping = (target: string) => [{ snapshot_network: { id: `network:${netSrc}`, name: netSrc }, target_network: { id: target, name: 'target' } }];
    const macOf = (dom: string) => /<mac address='([^']+)'/.exec(lv.virsh('dumpxml', dom))?.[1];
    const networkOf = (dom: string) => /<source network='([^']+)'/.exec(lv.virsh('dumpxml', dom))?.[1];

    before(async () => {
      for (const net of [netSrc, netDst]) {
        writeFileSync(join(lv.dataDir, `${net}.xml`), `<network><name>${net}</name><bridge name='${net}0'/></network>`);
        lv.virsh('net-define', join(lv.dataDir, `${net}.xml`)); // defined, never started (a session libvirt cannot make bridges)
      }
      vda = fileDisk(`${name}-vda`, 'vda', 'raw', 8 * MiB, [[0, 1 * MiB]]);
      uuid = await makeDomain(name, [vda], { start: false, networks: [netSrc] });
      sourceMac = macOf(name)!;
      wid = await makeWorkload(uuid);
      sid = (await snapshot(wid, uuid, true)).id;
    });

    test('selective restore with networks_mapping: the copy is on the target network (by name or by UUID) with a new MAC, and stays shut off like its source', async () => {
      for (const [i, target] of [`network:${netDst}`, lv.virsh('net-uuid', netDst).trim()].entries()) {
        const copy = `lbr-${RUN}-n${i}`;
        const done = await restoreAndWait(wid, sid, selective([{ id: uuid, include: true, name: copy }], mapping(target)));
        assert.equal(done.status, 'available', done.error_msg);
        defined.push(copy);
        assert.equal(networkOf(copy), netDst, `mapped through ${target}`);
        const mac = macOf(copy)!;
        assert.match(mac, /^52:54:00:/);
        assert.notEqual(mac, sourceMac, 'a new MAC');
        assert.equal(state(copy), 'shut off', 'the source was shut off at snapshot time');
        assert.equal(sha256(readFileSync(domainDisks(copy).get('vda')!.source)), sha256(vda.expected));
      }
    });

    test('an unknown target network, or a snapshot network gone from the host, is a 400 before any work; a copy that cannot start is undefined with its disks and the error names the step; in place onto a vanished domain is a 404', async () => {
      const entries = () => readdirSync(restoreDir).sort();
      const before = entries();
      for (const target of [`network:nope${RUN}`, '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c4d', `bridge:nope${RUN}`]) {
        const r = await postRestore(wid, sid, selective([{ id: uuid, include: true, name: `lbr-${RUN}-x` }], mapping(target)));
        assert.equal(r.status, 400, r.text);
        assert.match(r.json.badRequest.message, /target network .* does not exist on this libvirt host/);
      }
      assert.equal((await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status, 'available', 'nothing locked');

      // The target network exists but is not active: libvirt defines the copy, then cannot start it.
      const copy = `lbr-${RUN}-nostart`;
      const failed = await restoreAndWait(wid, sid, selective([{ id: uuid, include: true, name: copy, power_on: true }], mapping(`network:${netDst}`)));
      assert.equal(failed.status, 'error');
      assert.match(failed.error_msg, new RegExp(`Restore failed while starting domain ${copy}: libvirt start failed: .*network`));
      assert.doesNotMatch(failed.error_msg, /\/tmp|socket=/, 'no path in the message');
      assert.throws(() => lv.virsh('domuuid', copy), /failed to get domain|not found/, 'the copy was undefined');
      assert.deepEqual(entries(), before, 'and its disks removed');

      lv.virsh('net-undefine', netSrc);
      const gone = await postRestore(wid, sid, selective([{ id: uuid, include: true, name: `lbr-${RUN}-y` }]));
      assert.equal(gone.status, 400, gone.text);
      assert.match(gone.json.badRequest.message, new RegExp(`network "${netSrc}" of instance ${name} does not exist on this libvirt host; map it`));

      lv.virsh('undefine', name);
      const inplace = await postRestore(wid, sid, { restore_type: 'inplace', oneclickrestore: false, openstack: { instances: [{ id: uuid, include: true, vdisks: [] }] } });
      assert.equal(inplace.status, 404, `in place onto a domain that is gone: ${inplace.text}`);
      assert.equal(inplace.json.itemNotFound.message, `Instance ${uuid} could not be found.`);
    });
  });

  // losetup needs root; with CI=true a non-root run fails here instead of skipping.
  const loopSkip = process.getuid?.() !== 0 && process.env.CI !== 'true' ? 'needs root (losetup) for a loop block device' : false;
  describe('a running domain with a disk on a loop block device', { skip: loopSkip }, () => {
    const name = `lbr-${RUN}-l`;
    let uuid: string;
    let wid: string;
    let vdb: TestDisk;
    let s1: { id: string; vdb: Buffer };

    before(async () => {
      const vda = fileDisk(`${name}-vda`, 'vda', 'qcow2', 4 * MiB, [[0, 1 * MiB]]);
      const backing = fileDisk(`${name}-vdb`, 'vdb', 'raw', 16 * MiB, [[0, 2 * MiB], [12 * MiB, 1 * MiB]]);
      const loop = run('losetup', ['-f', '--show', backing.source]).trim();
      loops.push(loop);
      lv.own(loop);
      vdb = { ...backing, source: loop, type: 'block' };
      uuid = await makeDomain(name, [vda, vdb], { start: true });
      wid = await makeWorkload(uuid);
      const s = await snapshot(wid, uuid, true);
      s1 = { id: s.id, vdb: Buffer.from(vdb.expected) };
      assert.ok((await snapshotDisk(s.id, uuid, '/dev/vdb', 16 * MiB)).equals(s1.vdb), 'the block device was backed up as it was');
    });

    test('in-place restore writes the snapshot onto the block device (holes as zeros); the domain runs again', async () => {
      guestWrite(name, 1, vdb, 0x7a, 1 * MiB, 64 * KiB);
      guestWrite(name, 1, vdb, 0x7b, 6 * MiB, 1 * MiB); // into a hole: must become zeros again
      assert.notEqual(sha256(imageBytes(vdb.source, 'raw')), sha256(s1.vdb));
      const done = await restoreAndWait(wid, s1.id, {
        restore_type: 'inplace',
        oneclickrestore: false,
        openstack: { instances: [{ id: uuid, include: true, vdisks: [{ id: '/dev/vdb' }] }] },
      });
      assert.equal(done.status, 'available', done.error_msg);
      assert.equal(state(name), 'running');
      assert.equal(sha256(imageBytes(vdb.source, 'raw')), sha256(s1.vdb), 'the device holds the snapshot-time bytes');
      assert.deepEqual(readdirSync(restoreDir).filter((n) => n.startsWith('.inplace.')), [], 'no staged file stays');
      vdb.expected = Buffer.from(s1.vdb);
    });

    test('selective restore of the block-device disk gives the copy a sparse raw file with the same bytes', async () => {
      const copy = `lbr-${RUN}-lcopy`;
      const done = await restoreAndWait(wid, s1.id, selective([{ id: uuid, include: true, name: copy, power_on: false, vdisks: [{ id: '/dev/vdb' }] }]));
      assert.equal(done.status, 'available', done.error_msg);
      defined.push(copy);
      const d = domainDisks(copy).get('vdb')!;
      assert.equal(d.format, 'raw');
      assert.equal(sha256(readFileSync(d.source)), sha256(s1.vdb));
      assert.ok(allocated(d.source) <= 4 * MiB, `sparse: ${allocated(d.source)} bytes for 3 MiB of data`);
    });

    test('cleanupRestore removes what a dead in-place restore staged (beside a file disk, in the restore dir for a device) and never the disks', async () => {
      const restoreId = '6f1c1f5e-8a39-4c52-9d43-1f0a4e2b7c10';
      const vdaPath = domainDisks(name).get('vda')!.source;
      const vdaBefore = sha256(imageBytes(vdaPath, 'qcow2'));
      // The worker "dies" holding the sinks: neither commit, publish nor discard runs.
      const prepared = await platform().openInPlaceSinks(h.alice.projectId, uuid, [{ device: '/dev/vda', size: 4 * MiB }, { device: '/dev/vdb', size: 16 * MiB }], { restoreId });
      for (const sink of prepared.sinks.values()) await sink.write(randomBytes(4096), 0);
      const staged = () => [...readdirSync(lv.dataDir).filter((n) => n.includes(restoreId)), ...readdirSync(restoreDir).filter((n) => n.includes(restoreId))];
      assert.equal(staged().length, 2, `staged files: ${staged().join(', ')}`);
      await platform().cleanupRestore(h.bob.projectId, { restoreId }, [uuid]); // another project: finds nothing of alice's domain
      assert.equal(staged().length, 2);
      await platform().cleanupRestore(h.alice.projectId, { restoreId }, [uuid]);
      assert.deepEqual(staged(), []);
      assert.equal(sha256(imageBytes(vdaPath, 'qcow2')), vdaBefore, 'the disk is untouched');
      assert.equal(sha256(imageBytes(vdb.source, 'raw')), sha256(vdb.expected));
      assert.equal(state(name), 'running', 'and the domain was never stopped');
      await prepared.discard(); // closes the dead worker's descriptors in this test process
    });

    test('an in-place restore abandoned after its disks were staged (a failed sibling disk, a cancel) leaves the domain running and untouched', async () => {
      const vdaPath = domainDisks(name).get('vda')!.source;
      const vdaBefore = sha256(imageBytes(vdaPath, 'qcow2'));
      const prepared = await platform().openInPlaceSinks(h.alice.projectId, uuid, [{ device: '/dev/vda', size: 4 * MiB }, { device: '/dev/vdb', size: 16 * MiB }], { restoreId: 'e2a1b7c4-5d6f-4a8b-9c0d-1e2f3a4b5c6d' });
      for (const sink of prepared.sinks.values()) {
        await sink.write(Buffer.alloc(64 * KiB, 0xee), 0);
        await sink.commit(); // staged complete: the qcow2 written beside the image, the device's raw in the restore dir
      }
      assert.equal(state(name), 'running', 'staging does not stop the domain');
      await prepared.discard();
      assert.deepEqual(readdirSync(lv.dataDir).filter((n) => n.startsWith('.')), []);
      assert.deepEqual(readdirSync(restoreDir).filter((n) => n.startsWith('.')), []);
      assert.equal(sha256(imageBytes(vdaPath, 'qcow2')), vdaBefore);
      assert.equal(sha256(imageBytes(vdb.source, 'raw')), sha256(vdb.expected));
      assert.deepEqual(prepared.notes?.(), { warnings: [], changeTrackingReset: false }, 'nothing to force');
    });
  });
});
