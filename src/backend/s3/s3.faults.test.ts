import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { TransientError } from '../backend.js';
import { backendConformance } from '../backend.conformance.js';
import { withConcurrencyLimit } from '../limit.backend.js';
import { withRetry } from '../retry.backend.js';
import { startFaultProxy, type Fault, type FaultProxy } from './s3.faultproxy.js';
import { startTestS3, testBackend, type TestS3 } from './s3.testing.js';

/**
 * The S3 backend behind a proxy that breaks requests on the wire (503 SlowDown, resets, bodies
 * cut short, stalls): through the wrappers every operation ends with the right bytes or a clear
 * error — a read never returns wrong or short data.
 */
let server: Promise<TestS3> | null = null;
const s3 = () => (server ??= startTestS3());
const proxies: FaultProxy[] = [];
after(async () => {
  for (const p of proxies) await p.close();
  if (server) await (await server).close();
});

async function behind(decide: (method: string, path: string, n: number) => Fault, slowMs = 0): Promise<FaultProxy> {
  const p = await startFaultProxy((await s3()).endpoint, decide, slowMs);
  proxies.push(p);
  return p;
}

const noSleep = async () => {};
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

// Every third request on the wire fails, cycling 503 → reset → truncated answer.
const CYCLE: Fault[] = ['503', 'reset', 'truncate'];
let cycling: Promise<FaultProxy> | null = null;
backendConformance('s3 via limit(2)+retry over a proxy breaking every third request', async () => {
  const proxy = await (cycling ??= behind((_m, _p, n) => (n % 3 === 0 ? CYCLE[(n / 3) % 3]! : 'pass')));
  const { backend, cleanup } = testBackend(await s3(), { endpoint: proxy.endpoint });
  return { backend: withRetry(withConcurrencyLimit(backend, 2), { sleep: noSleep, attempts: 6 }), cleanup };
});

test('s3 faults: a 503 storm, resets and cut bodies are retried; the bytes read back are right', async () => {
  const proxy = await behind((_m, _p, n) => (n <= 3 ? '503' : n % 4 === 0 ? 'truncate' : n % 5 === 0 ? 'reset' : 'pass'));
  const { backend, cleanup } = testBackend(await s3(), { endpoint: proxy.endpoint, partSize: 5 * 1024 * 1024, singlePutMax: 5 * 1024 * 1024 });
  const b = withRetry(backend, { sleep: noSleep, attempts: 6 });
  try {
    const data = randomBytes(11 * 1024 * 1024); // a multipart put: its steps are retried in place
    await b.put('packs/p1', data);
    assert.equal(sha(await b.get('packs/p1')), sha(data));
    assert.deepEqual(await b.getRange('packs/p1', 4096, 100_000), data.subarray(4096, 104_096));
    assert.ok(proxy.counts['503'] >= 3 && proxy.counts.truncate > 0 && proxy.counts.reset > 0, JSON.stringify(proxy.counts));
  } finally {
    await cleanup();
  }
});

test('s3 faults: a streamed single PutObject of several part buffers is sent again whole after a 503 or a reset', async () => {
  const proxy = await behind((m, _p, n) => (m === 'PUT' && n <= 2 ? (n === 1 ? '503' : 'reset') : 'pass'));
  const { backend, cleanup } = testBackend(await s3(), { endpoint: proxy.endpoint, partSize: 5 * 1024 * 1024, singlePutMax: 20 * 1024 * 1024 });
  try {
    const data = randomBytes(17 * 1024 * 1024 + 3); // four buffers, one PutObject
    const w = await backend.openWriter('packs/single');
    for (let off = 0; off < data.length; off += 1 << 20) await w.write([data.subarray(off, off + (1 << 20))]);
    await w.commit();
    assert.deepEqual([proxy.counts['503'], proxy.counts.reset], [1, 1]);
    assert.equal(sha(await backend.get('packs/single')), sha(data));
  } finally {
    await cleanup();
  }
});

test('s3 faults: an answer always cut short is an error after the tries, never short data', async () => {
  const seed = testBackend(await s3());
  const data = randomBytes(300_000);
  await seed.backend.put('x/obj', data);
  const proxy = await behind((m) => (m === 'GET' ? 'truncate' : 'pass'));
  const { backend } = testBackend(await s3(), { endpoint: proxy.endpoint, prefix: seed.prefix });
  try {
    const b = withRetry(backend, { sleep: noSleep, attempts: 3 });
    await assert.rejects(b.get('x/obj'), (e: unknown) => e instanceof TransientError && /get x\/obj failed/.test(e.message));
    await assert.rejects(b.getRange('x/obj', 10, 200_000), (e: unknown) => e instanceof TransientError && /get x\/obj failed/.test(e.message));
    assert.equal(proxy.counts.truncate, 6);
  } finally {
    backend.destroy();
    await seed.cleanup();
  }
});

test('s3 faults: a stalled server hits the per-request timeout (transient), then a retry gets through', async () => {
  const seed = testBackend(await s3());
  await seed.backend.put('x/slow', Buffer.from('patience'));
  const proxy = await behind((_m, _p, n) => (n === 1 ? 'slow' : 'pass'), 3_000);
  const { backend } = testBackend(await s3(), { endpoint: proxy.endpoint, prefix: seed.prefix, requestTimeoutMs: 300 });
  try {
    const t0 = performance.now();
    await assert.rejects(backend.get('x/slow'), (e: unknown) => e instanceof TransientError && /get x\/slow failed/.test(e.message));
    assert.ok(performance.now() - t0 < 2_500, 'the request gave up at its deadline, not when the server answered');
    assert.equal((await withRetry(backend, { sleep: noSleep }).get('x/slow')).toString(), 'patience');
  } finally {
    backend.destroy();
    await seed.cleanup();
  }
});
