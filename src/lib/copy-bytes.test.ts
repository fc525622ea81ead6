import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copyBytes } from './copy-bytes.js';

const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

test('copies exactly the source into the range, at every alignment, between shared and unshared memory', () => {
  for (const [srcShared, dstShared] of [[true, true], [true, false], [false, true], [false, false]] as const) {
    for (let srcOff = 0; srcOff < 9; srcOff++) {
      for (let dstOff = 0; dstOff < 9; dstOff++) {
        const srcMem = new Uint8Array(srcShared ? new SharedArrayBuffer(300) : new ArrayBuffer(300));
        srcMem.set(pattern(300, srcOff));
        const src = srcMem.subarray(srcOff, srcOff + 257);
        // dst is itself a view at an offset of its memory: the offset must be honoured.
        const dst = new Uint8Array(dstShared ? new SharedArrayBuffer(300) : new ArrayBuffer(300), 5, 290).fill(0xee);
        copyBytes(dst, dstOff, src);
        assert.deepEqual(dst.subarray(dstOff, dstOff + 257), src);
        assert.ok(dst.subarray(0, dstOff).every((b) => b === 0xee), 'bytes before the range untouched');
        assert.ok(dst.subarray(dstOff + 257).every((b) => b === 0xee), 'bytes after the range untouched');
      }
    }
  }
});

test('an empty source writes nothing, and a range that does not fit is refused before anything is written', () => {
  const dst = new Uint8Array(new SharedArrayBuffer(16)).fill(7);
  copyBytes(dst, 16, new Uint8Array(0));
  copyBytes(dst, 3, new Uint8Array(0));
  assert.ok(dst.every((b) => b === 7));
  assert.throws(() => copyBytes(dst, 10, new Uint8Array(7)), RangeError);
  assert.throws(() => copyBytes(dst, -1, new Uint8Array(1)), RangeError);
  assert.ok(dst.every((b) => b === 7));
});
