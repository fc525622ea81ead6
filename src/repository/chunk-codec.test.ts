import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { ChunkCodec, chunkId, compressBound, deriveProjectKey, FLAG_COMPRESSED, HmacChunkHasher, isZeroId, looksIncompressible, newChunkHasher, ZERO_ID, type ChunkIdKey } from './chunk-codec.js';

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

test('compressibility estimate: random chunks are stored raw without zstd, anything zstd can shrink is compressed', () => {
  const hist = new Uint32Array(256);
  const text = Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(1500)).subarray(0, 65_536);
  const random = randomBytes(65_536);
  const half = Buffer.concat([random.subarray(0, 32_768), text.subarray(0, 32_768)]);
  // A database-like page: random fields between zeroed free space.
  const page = Buffer.alloc(65_536);
  for (let off = 0; off < page.length; off += 8192) randomBytes(2048).copy(page, off);
  assert.equal(looksIncompressible(random, hist), true);
  for (const compressible of [text, half, page, Buffer.alloc(65_536, 7)]) assert.equal(looksIncompressible(compressible, hist), false);
  assert.equal(looksIncompressible(randomBytes(4095), hist), false, 'small chunks are left to zstd');

  const codec = new ChunkCodec();
  const key: ChunkIdKey = { hash: 'blake3-keyed', key: randomBytes(32) };
  for (const raw of [random, text, half, page]) {
    const dst = Buffer.alloc(compressBound(raw.length));
    const r = codec.encode(raw, dst, 1);
    assert.equal(r.flags, raw === random ? 0 : FLAG_COMPRESSED);
    assert.ok(raw === random || r.length < raw.length * 0.8);
    const out = Buffer.alloc(raw.length);
    assert.equal(codec.decodeVerify(dst.subarray(0, r.length), r.flags, out, newChunkHasher(key), chunkId(key, raw)), null);
    assert.deepEqual(out, raw);
  }
});

test('decodeVerify of a raw chunk in place (dst is the stored bytes): verified, unchanged; a wrong id still fails', () => {
  const codec = new ChunkCodec();
  const key: ChunkIdKey = { hash: 'blake3-keyed', key: randomBytes(32) };
  const raw = randomBytes(65_536);
  const slot = new Uint8Array(new SharedArrayBuffer(3 * 65_536), 65_536, 65_536);
  slot.set(raw);
  assert.equal(codec.decodeVerify(slot, 0, slot, newChunkHasher(key), chunkId(key, raw)), null);
  assert.deepEqual(Buffer.from(slot), raw);
  slot[100] = slot[100]! ^ 1;
  assert.equal(codec.decodeVerify(slot, 0, slot, newChunkHasher(key), chunkId(key, raw)), 'content does not match its chunk id');
});
