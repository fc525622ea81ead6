import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { test } from 'node:test';
import { EarlyWriteback } from './early-writeback.js';

/** A FileHandle whose fdatasync calls are counted and finished by the test. */
function fakeFile() {
  const pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const fh = { datasync: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })) } as unknown as FileHandle;
  return { fh, pending };
}

const tick = () => new Promise((r) => setImmediate(r));

test('early writeback: one fdatasync per threshold, never two at once', async () => {
  const { fh, pending } = fakeFile();
  const w = new EarlyWriteback(fh, 4);
  w.wrote(3);
  assert.equal(pending.length, 0);
  w.wrote(1);
  assert.equal(pending.length, 1);
  w.wrote(10); // one is running: no second one
  assert.equal(pending.length, 1);
  pending[0]!.resolve();
  await tick();
  w.wrote(4);
  assert.equal(pending.length, 2);
  const settled = w.settle();
  pending[1]!.resolve();
  await settled;
});

test('early writeback: a failed background fdatasync fails settle(), idle() only waits', async () => {
  const { fh, pending } = fakeFile();
  const w = new EarlyWriteback(fh, 1);
  w.wrote(1);
  pending[0]!.reject(Object.assign(new Error('EIO'), { code: 'EIO' }));
  await w.idle();
  await assert.rejects(w.settle(), /EIO/);
  await tick();
  w.wrote(1); // later writebacks still start; the first error stays
  pending[1]!.resolve();
  await assert.rejects(w.settle(), /EIO/);
});
