import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, skipUnlessInstalled } from '../src/nbd/testing.js';
import { waitFor } from './harness.js';
import { LIBVIRT_TOOLS, startLibvirtd, type Libvirtd } from './libvirtd.js';
import { libvirtOwnedDir, startLibvirtServe, type LibvirtServe } from './libvirt-process.js';
import { snapshotDiskOf, type ProcessApi } from './process.js';

/**
 * Issue 11, in-place restores through real `lifeboat serve` processes on a real libvirtd (TCG):
 * a qcow2 disk whose definition names its backing chain (`<backingStore>`) is restored flat and
 * the definition no longer names the old backing image (else QEMU would read it through every
 * hole of the flat image); and a worker killed with -9 in the middle of the swap (one disk
 * replaced, the domain stopped) leaves a swap the reconciler finishes: the domain runs again
 * with the snapshot's disks and the next snapshot is a full. The kill point is held by the
 * test hook LIFEBOAT_TEST_INPLACE_HOLD (the swap is a rename: there is no window otherwise).
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const VDA = 32 * MiB;
const VDB = 8 * MiB;
const qom = (i: number) => `/machine/peripheral/virtio-disk${i}/virtio-backend`;

describe('libvirt: in-place restores of a qcow2 with a backing chain, and a worker killed during the swap', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS, 'qemu-io') }, () => {
  let lv: Libvirtd;
  let hold: string;
  let lb: LibvirtServe;
  let uuid: string;
  let wid: string;
  const dom = `lb-inplace-${randomBytes(3).toString('hex')}`;
  const expected = { vda: Buffer.alloc(VDA), vdb: Buffer.alloc(VDB) };
  let files: { base: string; vda: string; vdb: string };

  before(async () => {
    lv = await startLibvirtd();
    const scratchDir = libvirtOwnedDir(lv, 'scratch');
    const restoreDir = libvirtOwnedDir(lv, 'restored');
    files = makeDisks(lv, dom);
    writeFileSync(join(lv.dataDir, `${dom}.xml`), domainXml(dom, lv.domainType, files));
    lv.virsh('define', join(lv.dataDir, `${dom}.xml`));
    lv.virsh('start', dom);
    uuid = lv.virsh('domuuid', dom).trim();
    lb = await startLibvirtServe(lv, { nodeName: 'lv-inplace', homePrefix: 'lifeboat-lvinplace-', scratchDir, env: { LIFEBOAT_RESTORE_DIR: restoreDir } });
    hold = join(lb.home, 'hold');
    mkdirSync(hold);
    wid = await lb.protect(uuid);
  });

  after(async () => {
    try {
      await lb?.close();
    } finally {
      try {
        lv?.virsh('destroy', dom);
      } catch {
        // not running
      }
      await lv?.stop();
    }
  });

  /** base (random data in 0..8 MiB) ← vda overlay; vdb raw (random 0..2 MiB). The model is the guest's view. */
  function makeDisks(l: Libvirtd, name: string) {
    const f = { base: join(l.dataDir, `${name}-base.qcow2`), vda: join(l.dataDir, `${name}-vda.qcow2`), vdb: join(l.dataDir, `${name}-vdb.raw`) };
    randomBytes(8 * MiB).copy(expected.vda, 0);
    randomBytes(2 * MiB).copy(expected.vdb, 0);
    const seed = join(l.dataDir, `${name}.seed`);
    writeFileSync(seed, expected.vda);
    run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', seed, f.base]);
    writeFileSync(seed, expected.vdb);
    run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'raw', seed, f.vdb]);
    rmSync(seed);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', f.base, '-F', 'qcow2', f.vda]);
    for (const x of Object.values(f)) l.own(x);
    return f;
  }

  const api: ProcessApi = (method, path, body) => lb.api(method, path, body);
  const restart = (extra: Record<string, string>) => lb.restart(extra);
  const workloadAvailable = () => lb.workloadAvailable(wid, 30_000);
  const snapshot = () => lb.snapshot(wid);
  const state = () => lv.virsh('domstate', dom).trim();

  function guestWrite(disk: 'vda' | 'vdb', pattern: number, offset: number, length: number): void {
    lv.virsh('qemu-monitor-command', dom, '--hmp', `qemu-io -d ${qom(disk === 'vda' ? 0 : 1)} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
    expected[disk].fill(pattern, offset, offset + length);
  }

  /** Every disk of a snapshot, read back from the repository, equals `want`. */
  async function assertSnapshot(sid: string, want: { vda: Buffer; vdb: Buffer }, what: string): Promise<void> {
    for (const t of ['vda', 'vdb'] as const) assert.ok((await snapshotDiskOf(lb.env, sid, uuid, `/dev/${t}`, want[t].length)).equals(want[t]), `${what}: ${t} byte-exact`);
  }

  function postInPlace(sid: string) {
    return api('POST', `/workloads/${wid}/snapshots/${sid}/restores`, {
      restore: { options: { type: 'openstack', restore_type: 'inplace', oneclickrestore: false, openstack: { instances: [{ id: uuid, include: true, vdisks: [] }] } } },
    });
  }

  const restoreOf = async (rid: string) => (await api('GET', `/restores/${rid}`)).json.restore;
  const imageBytes = (file: string, format: string) => {
    const out = join(lb.home, `read-${randomBytes(4).toString('hex')}.raw`);
    try {
      run('qemu-img', ['convert', '-U', '-q', '-f', format, '-O', 'raw', file, out]);
      return readFileSync(out);
    } finally {
      rmSync(out, { force: true });
    }
  };
  const inactiveXml = () => lv.virsh('dumpxml', dom, '--inactive');
  const noLeftovers = (what: string) => {
    assert.deepEqual(readdirSync(lv.dataDir).filter((n) => n.startsWith('.')), [], `${what}: no staged file beside the disks`);
    assert.deepEqual(readdirSync(lb.env.LIFEBOAT_RESTORE_DIR!).filter((n) => n.startsWith('.inplace.')), [], `${what}: no journal or staging in the restore dir`);
  };

  test('a qcow2 disk defined with its backing chain is restored flat, and the definition no longer names the old backing image', async () => {
    assert.match(inactiveXml(), /<backingStore type='file'>[\s\S]*base\.qcow2/, 'the definition names the backing image');
    // Zeros over the base's data: the flat image has a hole there, which a stale backing store would fill with the base's bytes.
    guestWrite('vda', 0, 1 * MiB, 256 * KiB);
    guestWrite('vda', 0x31, 20 * MiB, 64 * KiB);
    const s1 = await snapshot();
    const at1 = { vda: Buffer.from(expected.vda), vdb: Buffer.from(expected.vdb) };
    guestWrite('vda', 0x32, 1 * MiB, 64 * KiB);
    guestWrite('vdb', 0x33, 1 * MiB, 64 * KiB);

    const r = await postInPlace(s1.id);
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const done = await waitFor(async () => {
      const x = await restoreOf(r.json.restore.id);
      return ['available', 'error'].includes(x.status) ? x : null;
    }, 120_000, 'restore done');
    assert.equal(done.status, 'available', done.error_msg);
    await workloadAvailable();
    assert.equal(state(), 'running');
    expected.vda = Buffer.from(at1.vda);
    expected.vdb = Buffer.from(at1.vdb);

    const xml = inactiveXml();
    assert.doesNotMatch(xml, /base\.qcow2/, 'the old backing image is not named any more');
    assert.match(xml, /<source file='[^']*-vda\.qcow2'[^>]*\/>\s*<backingStore\/>/, 'vda is declared standalone');
    const info = JSON.parse(run('qemu-img', ['info', '-U', '--output=json', files.vda])) as { 'backing-filename'?: string };
    assert.equal(info['backing-filename'], undefined, 'the image is flat');
    assert.ok(imageBytes(files.vda, 'qcow2').equals(at1.vda), 'the image holds the snapshot-time bytes');
    // What QEMU reads now (a full backup through its NBD export): the snapshot-time bytes, holes included.
    const next = await snapshot();
    assert.equal(next.snapshot_type, 'full', 'the restore forced a full');
    await assertSnapshot(next.id, at1, 'QEMU after the restore');
    noLeftovers('after the restore');
  });

  test('kill -9 of the worker in the middle of the swap: the reconciler finishes it, starts the domain, and the next snapshot is a full', async () => {
    const s2 = await snapshot();
    const at2 = { vda: Buffer.from(expected.vda), vdb: Buffer.from(expected.vdb) };
    guestWrite('vda', 0x41, 2 * MiB, 64 * KiB);
    guestWrite('vdb', 0x42, 3 * MiB, 64 * KiB);
    const inc = await snapshot();
    assert.equal(inc.snapshot_type, 'incremental', 'the chain runs again before the kill');

    await restart({ LIFEBOAT_TEST_INPLACE_HOLD: hold });
    const r = await postInPlace(s2.id);
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const rid = r.json.restore.id as string;
    await waitFor(async () => existsSync(join(hold, 'held')), 120_000, 'the worker swapped one disk in');
    assert.equal(state(), 'shut off', 'the domain is stopped during the swap');
    await lb.proc!.kill9();
    assert.ok(readdirSync(lb.env.LIFEBOAT_RESTORE_DIR!).some((n) => n.endsWith('.swap.json')), 'the dead worker left its swap journal');
    rmSync(join(hold, 'held'));

    await restart({});
    const dead = await waitFor(async () => {
      const x = await restoreOf(rid);
      return x.status === 'error' ? x : null;
    }, 60_000, 'the reconciler ended the restore');
    assert.equal(dead.error_msg, 'Restore did not finish successfully');
    await workloadAvailable();
    assert.equal(state(), 'running', 'started again, as it ran before the restore');
    assert.ok(imageBytes(files.vda, 'qcow2').equals(at2.vda), 'vda: the snapshot-time bytes');
    assert.ok(imageBytes(files.vdb, 'raw').equals(at2.vdb), 'vdb (swapped by the reconciler): the snapshot-time bytes');
    noLeftovers('after the reconciler');
    expected.vda = Buffer.from(at2.vda);
    expected.vdb = Buffer.from(at2.vdb);

    const next = await snapshot();
    assert.equal(next.snapshot_type, 'full', 'the finished swap forced a full');
    await assertSnapshot(next.id, at2, 'after the recovered swap');
  });
});

function domainXml(name: string, type: string, f: { base: string; vda: string; vdb: string }): string {
  return `<domain type='${type}'><name>${name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${f.vda}'/>
<backingStore type='file'><format type='qcow2'/><source file='${f.base}'/><backingStore/></backingStore>
<target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${f.vdb}'/><target dev='vdb' bus='virtio'/></disk>
<video><model type='none'/></video><memballoon model='none'/></devices></domain>`;
}
