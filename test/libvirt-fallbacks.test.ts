import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { waitFor } from './harness.js';
import { LIBVIRT_TOOLS } from './libvirtd.js';
import { libvirtServiceFixture } from './libvirt-guest.js';

/**
 * Issue 11, "a broken chain never yields a wrong incremental": every case in which the
 * checkpoint chain of a running domain cannot be trusted, through the real service on a real
 * libvirtd (TCG). Each ends in a full read with a new chain and a warning saying why, restores
 * byte-exact, and leaves exactly one Lifeboat bitmap in QEMU (stale ones are removed, so
 * bitmaps never accumulate in the qcow2). The domain has a qcow2 disk (vda, tracked) and a raw
 * file disk (vdb) in the same job: vdb is read in full every time, deduplication keeps what is
 * stored small.
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const VDA = 64 * MiB;
const VDB = 16 * MiB;

describe('libvirt: every broken checkpoint chain falls back to a full read', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  const f = libvirtServiceFixture('lb-fallback', [
    { target: 'vda', format: 'qcow2', size: VDA, fill: (b) => randomBytes(8 * MiB).copy(b, 0) },
    { target: 'vdb', format: 'raw', size: VDB, fill: (b) => randomBytes(VDB).copy(b, 0) },
  ]);

  /** A snapshot through the API with the mode and bytes read of its backup. */
  async function snapshot(full = false) {
    const s = await f.snapshot(full);
    return { ...s, mode: s.stats?.mode, bytesRead: s.stats?.bytesRead };
  }

  /** Both disks of the snapshot equal the model, and QEMU holds exactly one Lifeboat bitmap (the new base) on vda. */
  async function assertExact(sid: string, what: string): Promise<void> {
    await f.assertExact(sid, what);
    const bitmaps = f.g.lifeboatBitmaps();
    assert.equal(bitmaps.length, 1, `${what}: one Lifeboat bitmap in QEMU, got ${JSON.stringify(bitmaps)}`);
    assert.equal(f.lv.virsh('checkpoint-list', f.dom, '--name').trim(), '', `${what}: no checkpoint metadata in libvirt`);
  }

  test('raw file disk in the same job: vda incremental, vdb read in full every time (warning), stored size small through dedup', async () => {
    const full = await snapshot(true);
    assert.equal(full.warning_msg, null);
    assert.deepEqual([full.mode, full.bytesRead], ['full', 8 * MiB + VDB]);
    await assertExact(full.id, 'full');

    f.g.write('vda', 0x11, 1 * MiB, 64 * KiB);
    f.g.write('vdb', 0x12, 3 * MiB, 64 * KiB);
    const inc = await snapshot();
    assert.match(inc.warning_msg ?? '', /disk vdb \(raw\) cannot track changes and was read in full/);
    assert.deepEqual([inc.mode, inc.bytesRead], ['incremental', 64 * KiB + VDB], 'vda: the dirty block only; vdb: all of it');
    assert.ok(inc.size < 2 * MiB, `dedup keeps the incremental small: ${inc.size} bytes stored`);
    await assertExact(inc.id, 'incremental with a raw disk');
  });

  test('checkpoint missing (its bitmap removed from the running domain) → full, new chain, warning', async () => {
    for (const b of f.g.lifeboatBitmaps()) f.g.qmp('block-dirty-bitmap-remove', { node: b.node, name: b.name });
    f.g.write('vda', 0x21, 2 * MiB, 64 * KiB);
    const s = await snapshot();
    assert.match(s.warning_msg ?? '', /dirty bitmap of the last checkpoint is missing or broken.*read in full and a new checkpoint chain started/);
    assert.equal(s.mode, 'full');
    await assertExact(s.id, 'after a missing bitmap');

    f.g.write('vda', 0x22, 4 * MiB, 64 * KiB);
    const next = await snapshot();
    assert.deepEqual([next.mode, next.bytesRead], ['incremental', 64 * KiB + VDB], 'the new chain continues exactly');
    await assertExact(next.id, 'the new chain');
  });

  test('a recorded checkpoint that is not this domain\'s is not trusted (full, warning, the chain restarts)', async () => {
    const inst = (await f.platform().getInstance(f.h.alice.projectId, f.g.uuid))!;
    const first = await f.platform().beginBackup(inst, { baseCheckpoint: null });
    await first.end('committed');
    const other = first.checkpoint!;
    const forged = { name: other.name, state: other.state!.replaceAll(f.g.uuid, '00000000-0000-4000-8000-000000000000') };
    const s = await f.platform().beginBackup(inst, { baseCheckpoint: forged });
    try {
      assert.match(s.warnings.join(), /recorded checkpoint belongs to another domain; the disks were read in full/);
      assert.equal(s.disks[0]!.source.changedExtentsSince, undefined, 'no dirty bitmap is offered');
    } finally {
      await s.end('committed');
    }
    assert.equal(f.g.lifeboatBitmaps().length, 1, 'the untrusted base bitmap was removed');
    // The service's chain was broken by this out-of-band backup: its next snapshot restarts too.
    f.g.write('vda', 0x31, 5 * MiB, 64 * KiB);
    const next = await snapshot();
    assert.match(next.warning_msg ?? '', /missing or broken/);
    assert.equal(next.mode, 'full');
    await assertExact(next.id, 'after the forged base');
  });

  test('QEMU killed (kill -9) and started again: every bitmap is inconsistent → full, warning, the broken bitmap removed', async () => {
    f.g.write('vda', 0x41, 6 * MiB, 64 * KiB);
    process.kill(f.g.qemuPid(), 'SIGKILL');
    await waitFor(async () => f.g.state().startsWith('shut off'), 20_000, 'libvirt saw QEMU die');
    f.lv.virsh('start', f.dom);
    f.g.write('vda', 0x42, 7 * MiB, 64 * KiB);
    const s = await snapshot();
    assert.match(s.warning_msg ?? '', /missing or broken \(e\.g\. after an unclean QEMU exit\)/);
    assert.equal(s.mode, 'full');
    await assertExact(s.id, 'after kill -9');
    assert.ok(f.g.lifeboatBitmaps()[0]!.recording, 'the new base records');

    f.g.write('vda', 0x43, 9 * MiB, 64 * KiB);
    const next = await snapshot();
    assert.deepEqual([next.mode, next.bytesRead], ['incremental', 64 * KiB + VDB]);
    await assertExact(next.id, 'the chain after kill -9');
  });

  test('a clean QEMU stop (virsh destroy = SIGTERM) and start keeps the chain: the next incremental is exact', async () => {
    f.lv.virsh('destroy', f.dom);
    f.lv.virsh('start', f.dom);
    f.g.write('vda', 0x51, 10 * MiB, 64 * KiB);
    const s = await snapshot();
    assert.equal(s.warning_msg?.includes('checkpoint') ?? false, false, `no chain warning: ${s.warning_msg}`);
    assert.deepEqual([s.mode, s.bytesRead], ['incremental', 64 * KiB + VDB]);
    await assertExact(s.id, 'after destroy + start');
  });

  test('disk resized → full, warning naming the disk, restore has the new size', async () => {
    f.lv.virsh('blockresize', f.dom, 'vda', `${(VDA + 16 * MiB) / KiB}KiB`);
    const vda = f.g.disk('vda');
    vda.expected = Buffer.concat([vda.expected, Buffer.alloc(16 * MiB)]);
    f.g.write('vda', 0x61, VDA + 1 * MiB, 64 * KiB); // into the new space
    const s = await snapshot();
    assert.match(s.warning_msg ?? '', /disk vda was resized since the last checkpoint; the disks were read in full/);
    assert.equal(s.mode, 'full');
    await assertExact(s.id, 'after a resize');
    f.g.write('vda', 0x62, 11 * MiB, 64 * KiB);
    const next = await snapshot();
    assert.deepEqual([next.mode, next.bytesRead], ['incremental', 64 * KiB + VDB]);
    await assertExact(next.id, 'the chain after a resize');
  });

  test('previous snapshot deleted → its base bitmap is gone: full, warning; its own bitmap does not linger', async () => {
    f.g.write('vda', 0x71, 12 * MiB, 64 * KiB);
    const victim = await snapshot();
    assert.equal(victim.mode, 'incremental');
    const del = await f.h.api(f.h.alice, 'DELETE', `/snapshots/${victim.id}`);
    assert.equal(del.status, 200, del.text);
    await waitFor(async () => (await f.h.api(f.h.alice, 'GET', `/snapshots/${victim.id}`)).status === 404, 30_000, 'snapshot deleted');
    await waitFor(async () => (await f.h.api(f.h.alice, 'GET', `/workloads/${f.wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
    f.g.write('vda', 0x72, 13 * MiB, 64 * KiB);
    const s = await snapshot();
    assert.match(s.warning_msg ?? '', /missing or broken/);
    assert.equal(s.mode, 'full');
    await assertExact(s.id, 'after the previous snapshot was deleted');
  });

  test('previous snapshot failed (domain paused: the snapshot errors naming it) → the next continues from the last good checkpoint, exactly', async () => {
    f.g.write('vda', 0x81, 14 * MiB, 64 * KiB);
    f.lv.virsh('suspend', f.dom);
    const r = await f.h.api(f.h.alice, 'POST', `/workloads/${f.wid}`, { snapshot: { name: 'fails', snapshot_type: 'incremental' } });
    assert.equal(r.status, 200, r.text);
    const failed = await waitFor(async () => {
      const x = (await f.h.api(f.h.alice, 'GET', `/snapshots/${r.json.snapshot.id}`)).json.snapshot;
      return ['available', 'error'].includes(x.status) ? x : null;
    }, 30_000, 'snapshot ended');
    assert.equal(failed.status, 'error');
    assert.match(failed.error_msg, new RegExp(`${f.dom}.*paused`));
    await waitFor(async () => (await f.h.api(f.h.alice, 'GET', `/workloads/${f.wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
    f.lv.virsh('resume', f.dom);
    f.g.write('vda', 0x82, 15 * MiB, 64 * KiB);
    const s = await snapshot();
    assert.equal(s.warning_msg?.includes('checkpoint') ?? false, false, `no chain warning: ${s.warning_msg}`);
    assert.deepEqual([s.mode, s.bytesRead], ['incremental', 2 * 64 * KiB + VDB], 'both writes since the last good snapshot');
    await assertExact(s.id, 'after a failed snapshot');
  });
});
