import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { alignExtents, dataExtents, dirtyExtents, mergeExtents, subtractExtents } from './extents.js';
import { STATE_DIRTY, STATE_HOLE, STATE_ZERO } from './protocol.js';

const K = 1024;

describe('block-status extents → datamover extents', () => {
  test('dataExtents skips what reads as zero and keeps holes not flagged zero', () => {
    const map = [
      { offset: 0, length: 4 * K, flags: 0 },
      { offset: 4 * K, length: 4 * K, flags: STATE_ZERO }, // allocated zeroes
      { offset: 8 * K, length: 8 * K, flags: STATE_HOLE | STATE_ZERO },
      { offset: 16 * K, length: 4 * K, flags: STATE_HOLE }, // unallocated, contents unknown
      { offset: 20 * K, length: 4 * K, flags: 0 },
    ];
    assert.deepEqual(dataExtents(map), [
      { offset: 0, length: 4 * K },
      { offset: 16 * K, length: 8 * K },
    ]);
  });

  test('dirtyExtents keeps dirty ranges, aligned out to the granularity and clipped to the size', () => {
    const map = [
      { offset: 0, length: 1000, flags: 0 },
      { offset: 1000, length: 100, flags: STATE_DIRTY },
      { offset: 1100, length: 200_000, flags: 0 },
      { offset: 201_100, length: 50, flags: STATE_DIRTY },
      { offset: 201_150, length: 10, flags: 0 },
    ];
    assert.deepEqual(dirtyExtents(map, { alignment: 64 * K, size: 201_160 }), [
      { offset: 0, length: 64 * K },
      { offset: 192 * K, length: 201_160 - 192 * K },
    ]);
  });

  test('alignment merges extents that end up touching or overlapping', () => {
    assert.deepEqual(alignExtents([{ offset: 10, length: 10 }, { offset: 4096 + 5, length: 1 }, { offset: 3 * 4096, length: 1 }], { alignment: 4096 }), [
      { offset: 0, length: 8192 },
      { offset: 12288, length: 4096 },
    ]);
    assert.throws(() => alignExtents([], { alignment: 0 }), RangeError);
  });

  test('mergeExtents sorts and joins; subtractExtents cuts ranges out', () => {
    assert.deepEqual(mergeExtents([{ offset: 50, length: 10 }, { offset: 0, length: 20 }, { offset: 20, length: 5 }, { offset: 10, length: 0 }]), [
      { offset: 0, length: 25 },
      { offset: 50, length: 10 },
    ]);
    assert.deepEqual(subtractExtents([{ offset: 0, length: 100 }, { offset: 200, length: 50 }], [{ offset: 10, length: 10 }, { offset: 90, length: 120 }, { offset: 240, length: 100 }]), [
      { offset: 0, length: 10 },
      { offset: 20, length: 70 },
      { offset: 210, length: 30 },
    ]);
  });
});
