import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ChunkCodec, ChunkHasher, chunkId, compressBound, isZeroId, ZERO_ID } from './chunk-codec.js';

test('ChunkHasher gives the same ids as HMAC-SHA256 (chunkId), for any key length', () => {
  for (const keyLen of [16, 32, 64, 65, 100]) {
    const key = randomBytes(keyLen);
    const h = new ChunkHasher(key);
    for (const n of [0, 1, 55, 64, 65_536]) {
      const data = randomBytes(n);
      assert.deepEqual(h.id(data), chunkId(key, data));
      const dst = Buffer.alloc(40);
      h.idInto(data, dst, 5);
      assert.deepEqual(dst.subarray(5, 37), chunkId(key, data));
    }
  }
});

test('encode/decodeVerify round trip at fast levels; isZeroId', () => {
  const codec = new ChunkCodec();
  const key = randomBytes(32);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(1500));
  for (const level of [1, -1, 3]) {
    for (const raw of [text, randomBytes(4096)]) {
      const dst = Buffer.alloc(compressBound(raw.length));
      const r = codec.encode(raw, dst, level);
      const out = Buffer.alloc(raw.length);
      assert.equal(codec.decodeVerify(dst.subarray(0, r.length), r.flags, out, new ChunkHasher(key), chunkId(key, raw)), null);
      assert.deepEqual(out, raw);
    }
  }
  assert.equal(isZeroId(ZERO_ID, 0), true);
  const ids = Buffer.alloc(64);
  ids[63] = 1;
  assert.equal(isZeroId(ids, 0), true);
  assert.equal(isZeroId(ids, 32), false);
});
