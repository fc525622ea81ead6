import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { run, skipUnlessInstalled } from '../src/nbd/testing.js';
import { waitFor } from './harness.js';
import { LIBVIRT_TOOLS } from './libvirtd.js';
import { libvirtServiceFixture } from './libvirt-guest.js';

/**
 * Issue 11, incrementals of a shut-off domain through the real service: the base's persistent
 * bitmap (recorded while the domain ran, stored in the qcow2 at a clean stop) is exported by
 * `qemu-nbd --bitmap`, so only the blocks written since are read; writes made while the domain
 * is off by a tool that opens the image (qemu-io) are recorded too; the chain continues when
 * the domain runs again. A QEMU that died uncleanly leaves the bitmap in-use: full read, warning.
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const VDA = 64 * MiB;
const VDB = 8 * MiB;

describe('libvirt: incrementals of a shut-off domain', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS, 'qemu-nbd', 'qemu-io') }, () => {
  const f = libvirtServiceFixture('lb-offline', [
    { target: 'vda', format: 'qcow2', size: VDA, fill: (b) => randomBytes(8 * MiB).copy(b, 0) },
    { target: 'vdb', format: 'raw', size: VDB, fill: (b) => randomBytes(VDB).copy(b, 0) },
  ]);
  const snapshot = (full = false) => f.snapshot(full);
  const assertExact = (sid: string, what: string) => f.assertExact(sid, what);
  /** Lifeboat's bitmaps in the vda image (the domain must be off, or -U reads a stale header). */
  const imageBitmaps = () =>
    ((JSON.parse(run('qemu-img', ['info', '-U', '--output=json', f.g.disk('vda').file])) as { 'format-specific': { data: { bitmaps?: { name: string; flags: string[] }[] } } })['format-specific'].data.bitmaps ?? []).filter((b) => b.name.startsWith('lifeboat-'));
  /** A write while the domain is off, by a tool that opens the image (it records into the enabled bitmaps). */
  function offlineWrite(pattern: number, offset: number, length: number): void {
    run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x${pattern.toString(16)} ${offset} ${length}`, f.g.disk('vda').file]);
    f.g.disk('vda').expected.fill(pattern, offset, offset + length);
  }

  test('running full, then shut off: the offline incremental reads only the blocks written since (vdb raw: in full)', async () => {
    const full = await snapshot(true);
    assert.equal(full.stats?.mode, 'full');
    f.g.write('vda', 0x11, 1 * MiB, 64 * KiB);
    f.lv.virsh('destroy', f.dom); // SIGTERM: QEMU stores the bitmaps in the image
    const s = await snapshot();
    assert.match(s.warning_msg ?? '', /disk vdb \(raw\) cannot track changes/);
    assert.deepEqual(s.stats, { mode: 'incremental', bytesRead: 64 * KiB + VDB });
    await assertExact(s.id, 'offline incremental');
    assert.equal(imageBitmaps().length, 1, `one bitmap stays in the image: ${JSON.stringify(imageBitmaps())}`);
  });

  test('writes while shut off are tracked; the next offline incremental reads exactly them', async () => {
    offlineWrite(0x21, 3 * MiB, 64 * KiB);
    offlineWrite(0x22, 40 * MiB + 100, 1000); // in a hole, unaligned
    const s = await snapshot();
    assert.deepEqual(s.stats, { mode: 'incremental', bytesRead: 2 * 64 * KiB + VDB });
    await assertExact(s.id, 'offline writes');
    assert.deepEqual(imageBitmaps().map((b) => b.flags), [['auto']]);
  });

  test('running again: the checkpoint made offline is the base of the live incremental', async () => {
    f.lv.virsh('start', f.dom);
    f.g.write('vda', 0x31, 5 * MiB, 64 * KiB);
    const s = await snapshot();
    assert.deepEqual(s.stats, { mode: 'incremental', bytesRead: 64 * KiB + VDB });
    await assertExact(s.id, 'live after offline');
    assert.equal(f.g.lifeboatBitmaps().length, 1);
  });

  test('QEMU killed (kill -9) and left off: the bitmap is in-use → full read offline, warning; the next one is incremental again', async () => {
    f.g.write('vda', 0x41, 6 * MiB, 64 * KiB);
    process.kill(f.g.qemuPid(), 'SIGKILL');
    await waitFor(async () => f.g.state().startsWith('shut off'), 20_000, 'libvirt saw QEMU die');
    const s = await snapshot();
    assert.match(s.warning_msg ?? '', /dirty bitmap of the last checkpoint is missing or broken on disk vda/);
    assert.equal(s.stats?.mode, 'full');
    await assertExact(s.id, 'after kill -9, offline');
    assert.deepEqual(imageBitmaps().map((b) => b.flags), [['auto']], 'the broken bitmap was removed; the new one is enabled');

    offlineWrite(0x42, 7 * MiB, 64 * KiB);
    const next = await snapshot();
    assert.deepEqual(next.stats, { mode: 'incremental', bytesRead: 64 * KiB + VDB });
    await assertExact(next.id, 'offline chain after kill -9');
  });
});
