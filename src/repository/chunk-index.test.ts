import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ChunkIndex } from './chunk-index.js';

test('ChunkIndex keeps every location across page boundaries and slot-table growth; first copy wins unless replaced', () => {
  const n = 20_000; // > 2 pages of 8,192 entries, several slot-table doublings from the default size
  const ids = randomBytes(n * 32);
  const idx = new ChunkIndex();
  for (let i = 0; i < n; i++) idx.set(ids, { pack: `p${i % 7}`, offset: i, storedLength: i + 1, rawLength: 65_536, flags: i & 1 }, i * 32);
  assert.equal(idx.size, n);
  for (let i = 0; i < n; i++) {
    assert.deepEqual(idx.get(ids, i * 32), { pack: `p${i % 7}`, offset: i, storedLength: i + 1, rawLength: 65_536, flags: i & 1 });
  }
  const unknown = randomBytes(32);
  assert.equal(idx.has(unknown), false);
  assert.equal(idx.get(unknown), undefined);
  // A second copy is ignored unless it replaces the first (a distrusted copy stored again).
  idx.set(ids, { pack: 'other', offset: 1, storedLength: 1, rawLength: 1, flags: 0 }, 0);
  assert.equal(idx.get(ids, 0)!.pack, 'p0');
  idx.markProven(ids, 32);
  assert.equal(idx.isProven(ids, 32), true);
  assert.equal(idx.get(ids, 32)!.flags, 1, 'the proven mark is not part of the flags');
  idx.set(ids, { pack: 'again', offset: 9, storedLength: 9, rawLength: 9, flags: 1 }, 32, true);
  assert.deepEqual(idx.get(ids, 32), { pack: 'again', offset: 9, storedLength: 9, rawLength: 9, flags: 1 });
  assert.equal(idx.isProven(ids, 32), false, 'replacing a copy clears its proven mark');
  assert.equal(idx.size, n);
});

test('ChunkIndex.reserve sizes the table once and lookups still work', () => {
  const idx = new ChunkIndex(16);
  const ids = randomBytes(5_000 * 32);
  idx.reserve(5_000);
  for (let i = 0; i < 5_000; i++) idx.setFields(ids, i * 32, 'p', i, 1, 1, 0);
  for (let i = 0; i < 5_000; i += 97) assert.equal(idx.get(ids, i * 32)!.offset, i);
  assert.equal(idx.has(Buffer.alloc(32)), false);
});
