import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NbdClient } from '../src/nbd/client.js';
import { dataExtents, dirtyExtents } from '../src/nbd/extents.js';
import { BASE_ALLOCATION, dirtyBitmapContext } from '../src/nbd/protocol.js';
import { accepts, run, skipUnlessInstalled } from '../src/nbd/testing.js';
import { LIBVIRT_TOOLS, startLibvirtd, testDomainXml, type Libvirtd } from './libvirtd.js';

/**
 * The data path of the libvirt platform (issue 11), end to end: a running QEMU domain, a
 * pull-mode `virsh backup-begin` with a checkpoint, the export read through our NBD client,
 * guest writes through the QEMU monitor, then an incremental whose dirty bitmap must be exactly
 * those writes rounded out to the 64 KiB granularity.
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const SIZE = 64 * MiB;
const DOM = 'lifeboat-nbd-test';
const BACKEND = '/machine/peripheral/virtio-disk0/virtio-backend'; // HMP qemu-io needs the QOM path

describe('libvirt pull-mode backup read through the NBD client', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let expected: Buffer; // what the guest disk holds, kept in step with every write

  before(async () => {
    lv = await startLibvirtd();
    const data = lv.dataDir;
    expected = Buffer.alloc(SIZE);
    randomBytes(8 * MiB).copy(expected, 0);
    randomBytes(4 * MiB).copy(expected, 32 * MiB);
    writeFileSync(join(data, 'seed.raw'), expected);
    run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', join(data, 'seed.raw'), join(data, 'disk0.qcow2')]);
    lv.own(join(data, 'disk0.qcow2'));
    writeFileSync(join(data, 'dom.xml'), testDomainXml(DOM, lv.domainType, join(data, 'disk0.qcow2')));
    lv.virsh('define', join(data, 'dom.xml'));
    lv.virsh('start', DOM);
  });

  after(async () => {
    if (!lv) return;
    try {
      lv.virsh('destroy', DOM);
      lv.virsh('undefine', DOM, '--checkpoints-metadata');
    } finally {
      await lv.stop();
    }
  });

  /** Starts a pull backup (incremental from `since` when given) with a new checkpoint `cp`; returns its socket. */
  async function beginBackup(cp: string, since?: string): Promise<string> {
    const socket = join(lv.dataDir, `nbd-${cp}.sock`);
    const backup = `<domainbackup mode='pull'>${since ? `<incremental>${since}</incremental>` : ''}
  <server transport='unix' socket='${socket}'/>
  <disks><disk name='vda' backup='yes' type='file'><scratch file='${join(lv.dataDir, `scratch-${cp}.qcow2`)}'/></disk></disks>
</domainbackup>`;
    const checkpoint = `<domaincheckpoint><name>${cp}</name><disks><disk name='vda' checkpoint='bitmap'/></disks></domaincheckpoint>`;
    writeFileSync(join(lv.dataDir, `backup-${cp}.xml`), backup);
    writeFileSync(join(lv.dataDir, `checkpoint-${cp}.xml`), checkpoint);
    lv.virsh('backup-begin', DOM, join(lv.dataDir, `backup-${cp}.xml`), join(lv.dataDir, `checkpoint-${cp}.xml`));
    assert.ok(await accepts(socket), 'the NBD export answers once backup-begin returns');
    return socket;
  }

  function guestWrite(pattern: number, offset: number, length: number): void {
    lv.virsh('qemu-monitor-command', DOM, '--hmp', `qemu-io -d ${BACKEND} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
    expected.fill(pattern, offset, offset + length);
  }

  test('full backup with checkpoint cp1: the export reads byte-exact and base:allocation shows the holes', async () => {
    const socketPath = await beginBackup('cp1');
    const c = await NbdClient.connect({ socketPath, exportName: 'vda', metaContexts: [BASE_ALLOCATION] });
    try {
      assert.equal(c.size, SIZE);
      const got = Buffer.alloc(SIZE, 0xee);
      await c.readInto(got, 0, SIZE, 0);
      assert.ok(got.equals(expected), 'the exported disk differs from what was written');
      const map = await c.mapExtents();
      assert.deepEqual(dataExtents(map.get(BASE_ALLOCATION)!), [
        { offset: 0, length: 8 * MiB },
        { offset: 32 * MiB, length: 4 * MiB },
      ]);
    } finally {
      await c.close();
      await lv.endBackupJob(DOM);
    }
  });

  test('guest writes after cp1 are exactly the dirty extents of the incremental, rounded to 64 KiB', async () => {
    guestWrite(0x5a, 1 * MiB, 64 * KiB); // aligned, inside data
    guestWrite(0x5b, 10 * MiB + 1000, 100 * KiB); // unaligned, in a hole, crosses a granule edge
    guestWrite(0x5c, 40 * MiB - 512, 1024); // 512 bytes on each side of the 40 MiB edge
    const socketPath = await beginBackup('cp2', 'cp1');
    const context = dirtyBitmapContext('backup-vda');
    const c = await NbdClient.connect({ socketPath, exportName: 'vda', metaContexts: [BASE_ALLOCATION, context] });
    try {
      assert.ok(c.info.metaContexts.has(context), 'the incremental export offers the backup bitmap');
      const map = await c.mapExtents();
      assert.deepEqual(dirtyExtents(map.get(context)!), [
        { offset: 1 * MiB, length: 64 * KiB },
        { offset: 10 * MiB, length: 128 * KiB },
        { offset: 40 * MiB - 64 * KiB, length: 128 * KiB },
      ]);
      const got = Buffer.alloc(SIZE, 0xee);
      await c.readInto(got, 0, SIZE, 0);
      assert.ok(got.equals(expected), 'the incremental export differs from the disk content');
    } finally {
      await c.close();
      await lv.endBackupJob(DOM);
    }
  });
});

