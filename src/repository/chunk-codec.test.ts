import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ChunkCodec, chunkId, compressBound, deriveProjectKey, HmacChunkHasher, isZeroId, newChunkHasher, ZERO_ID, type ChunkIdKey } from './chunk-codec.js';

test('HmacChunkHasher gives the same ids as HMAC-SHA256 (chunkId), for any key length', () => {
  for (const keyLen of [16, 32, 64, 65, 100]) {
    const key = randomBytes(keyLen);
    const h = new HmacChunkHasher(key);
    for (const n of [0, 1, 55, 64, 65_536]) {
      const data = randomBytes(n);
      const want = createHmac('sha256', key).update(data).digest();
      assert.deepEqual(h.id(data), want);
      assert.deepEqual(chunkId({ hash: 'hmac-sha256', key }, data), want);
      const dst = Buffer.alloc(40);
      h.idInto(data, dst, 5);
      assert.deepEqual(dst.subarray(5, 37), want);
    }
  }
});

test('keyed BLAKE3 chunk ids match the BLAKE3 reference vectors and do not carry state between chunks', () => {
  // From the BLAKE3 reference test_vectors.json (keyed_hash, first 32 bytes): input = bytes i % 251.
  const key: ChunkIdKey = { hash: 'blake3-keyed', key: Buffer.from('whats the Elvish word for friend') };
  const input = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));
  const h = newChunkHasher(key);
  assert.equal(h.id(input(0)).toString('hex'), '92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26');
  assert.equal(h.id(input(1)).toString('hex'), '6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b');
  assert.equal(h.id(input(0)).toString('hex'), '92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26');
  const data = randomBytes(65_536);
  assert.deepEqual(h.id(data), chunkId(key, data));
  assert.notDeepEqual(h.id(data), newChunkHasher({ hash: 'blake3-keyed', key: randomBytes(32) }).id(data));
});

test('project keys: one per project and hash function; HMAC repositories keep their v1 keys', () => {
  const secret = randomBytes(32);
  const b3 = deriveProjectKey(secret, 'p1', 'blake3-keyed');
  const hm = deriveProjectKey(secret, 'p1', 'hmac-sha256');
  assert.deepEqual(hm.key, createHmac('sha256', secret).update('lifeboat/chunk-id/v1/p1').digest());
  assert.notDeepEqual(b3.key, hm.key);
  assert.notDeepEqual(deriveProjectKey(secret, 'p2', 'blake3-keyed').key, b3.key);
});

test('encode/decodeVerify round trip at fast levels; isZeroId', () => {
  const codec = new ChunkCodec();
  const text = Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(1500));
  for (const hash of ['hmac-sha256', 'blake3-keyed'] as const) {
    const key: ChunkIdKey = { hash, key: randomBytes(32) };
    for (const level of [1, -1, 3]) {
      for (const raw of [text, randomBytes(4096)]) {
        const dst = Buffer.alloc(compressBound(raw.length));
        const r = codec.encode(raw, dst, level);
        const out = Buffer.alloc(raw.length);
        assert.equal(codec.decodeVerify(dst.subarray(0, r.length), r.flags, out, newChunkHasher(key), chunkId(key, raw)), null);
        assert.deepEqual(out, raw);
        out[0]! ^= 1;
        assert.equal(codec.decodeVerify(dst.subarray(0, r.length), r.flags, out, newChunkHasher(key), chunkId({ hash, key: randomBytes(32) }, raw)), 'content does not match its chunk id');
      }
    }
  }
  assert.equal(isZeroId(ZERO_ID, 0), true);
  const ids = Buffer.alloc(64);
  ids[63] = 1;
  assert.equal(isZeroId(ids, 0), true);
  assert.equal(isZeroId(ids, 32), false);
});
