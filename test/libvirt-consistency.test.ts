import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { LIBVIRT_TOOLS, type Libvirtd } from './libvirtd.js';
import { snapshotDisk, startLibvirtService, type TestGuest } from './libvirt-guest.js';

/**
 * Issue 11 target "crash-consistency": a guest writes a sequence-numbered pattern continuously
 * while snapshots run (write k = 64 KiB of byte k at block k mod 64, one after the other,
 * through the QEMU monitor). Each snapshot must restore to exactly the state after some
 * prefix 0..K-1 of the writes — one state that existed at backup-begin, never a mix of
 * before and after — and writes must have completed while the snapshot ran (else the test
 * proves nothing).
 */
const MiB = 1024 * 1024;
const KiB = 1024;
const SIZE = 96 * MiB;
const BLOCK = 64 * KiB;
const BLOCKS = 64;
const REGION = 80 * MiB; // the written blocks live here, after the random data the full must read
const MAX_WRITES = 255; // byte k identifies write k

const exec = promisify(execFile);

describe('libvirt: a guest writing during the snapshot restores to one point in time', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let h: Harness;
  let g: TestGuest;
  let wid: string;
  const dom = `lb-consistent-${randomBytes(3).toString('hex')}`;
  let close: () => Promise<void>;

  before(async () => {
    ({ lv, h, g, wid, close } = await startLibvirtService(dom, [{ target: 'vda', format: 'qcow2', size: SIZE, fill: (b) => randomBytes(64 * MiB).copy(b, 0) }]));
  });

  after(async () => {
    await close?.();
  });

  /**
   * Writes 0, 1, 2, … one after the other (asynchronously: the service runs in this process)
   * until stop() or MAX_WRITES; `done` counts the writes that completed.
   */
  function startWriter(start: number) {
    const w = { done: start, stopped: false, finished: Promise.resolve() };
    const backend = g.disk('vda').backend;
    w.finished = (async () => {
      while (!w.stopped && w.done < MAX_WRITES) {
        const k = w.done;
        await exec('virsh', ['-q', '-c', lv.uri, 'qemu-monitor-command', dom, '--hmp', `qemu-io -d ${backend} "write -P ${k} ${REGION + (k % BLOCKS) * BLOCK} ${BLOCK}"`]);
        w.done = k + 1;
      }
    })();
    return w;
  }

  /** The disk after writes 0..n-1 (on top of the initial content). */
  function stateAfter(initial: Buffer, n: number): Buffer {
    const b = Buffer.from(initial);
    for (let k = 0; k < n; k++) b.fill(k, REGION + (k % BLOCKS) * BLOCK, REGION + ((k % BLOCKS) + 1) * BLOCK);
    return b;
  }

  /**
   * The K such that `got` is the disk after writes 0..K-1, or null when it is no such state (a
   * mix). Byte k is written only by write k (fewer than 256 writes), so the newest write seen
   * in any block gives the only candidate K.
   */
  function prefixOf(got: Buffer, initial: Buffer): number | null {
    let newest = -1;
    for (let b = 0; b < BLOCKS; b++) {
      const at = REGION + b * BLOCK;
      if (got.subarray(at, at + BLOCK).equals(initial.subarray(at, at + BLOCK))) continue;
      const v = got[at]!;
      if (v % BLOCKS === b) newest = Math.max(newest, v);
    }
    return stateAfter(initial, newest + 1).equals(got) ? newest + 1 : null;
  }

  test('a full and an incremental taken while the guest writes are each one prefix of the write sequence', async () => {
    const initial = Buffer.from(g.disk('vda').expected);
    let writes = 0;
    for (const full of [true, false]) {
      const writer = startWriter(writes);
      await waitFor(async () => writer.done >= writes + 3, 30_000, 'the guest is writing');
      const before = writer.done;
      const s = await takeSnapshotAndWait(h, h.alice, wid, full);
      const atAvailable = writer.done;
      writer.stopped = true;
      await writer.finished;
      writes = writer.done;
      assert.ok(writes < MAX_WRITES, 'the sequence did not run out (bytes would repeat)');

      const got = await snapshotDisk(h, s.id, g.uuid, 'vda', SIZE);
      const k = prefixOf(got, initial);
      assert.notEqual(k, null, `${full ? 'full' : 'incremental'}: the snapshot is the disk after a prefix of the writes, not a mix`);
      assert.ok(k! >= before, `${full ? 'full' : 'incremental'}: writes made before the snapshot started are in it (${k} ≥ ${before})`);
      assert.ok(k! < atAvailable, `${full ? 'full' : 'incremental'}: writes completed while it ran (${atAvailable - k!} after its point in time) and are not in it`);
    }
    // The model is the disk: a last snapshot, after the writes stopped, holds all of them.
    const last = await takeSnapshotAndWait(h, h.alice, wid, false);
    assert.equal(prefixOf(await snapshotDisk(h, last.id, g.uuid, 'vda', SIZE), initial), writes);
  });
});
