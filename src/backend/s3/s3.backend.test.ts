import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { after, test } from 'node:test';
import { listAll, TransientError } from '../backend.js';
import { backendConformance } from '../backend.conformance.js';
import { withConcurrencyLimit } from '../limit.backend.js';
import { BackendConfigError, openBackend } from '../open.js';
import { withRetry } from '../retry.backend.js';
import { S3Backend } from './s3.backend.js';
import { startTestS3, testBackend, type TestS3 } from './s3.testing.js';

// One server for the whole file (s3rver by default, LIFEBOAT_TEST_S3 when set); each test has
// its own prefix. Started lazily because the conformance suite registers tests at load time.
let server: Promise<TestS3> | null = null;
const s3 = () => (server ??= startTestS3());
after(async () => {
  if (server) await (await server).close();
});

const noSleep = async () => {};
backendConformance('s3', async () => testBackend(await s3()));
backendConformance('s3 via limit(2)+retry', async () => {
  const { backend, cleanup } = testBackend(await s3());
  return { backend: withRetry(withConcurrencyLimit(backend, 2), { sleep: noSleep }), cleanup };
});

/**
 * Counts the commands a backend's client sends and lets a test fail chosen ones before they
 * leave (`fail(name, n)` → an Error for the n-th command of that name, or null).
 */
function observe(b: S3Backend, fail: (command: string, n: number) => Error | null = () => null): Map<string, number> {
  const sent = new Map<string, number>();
  b.client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName ?? '?');
      const n = (sent.get(name) ?? 0) + 1;
      sent.set(name, n);
      const err = fail(name, n);
      if (err) throw err;
      return next(args);
    },
    { step: 'initialize', name: 'lifeboatTestObserver' },
  );
  return sent;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const MiB = 1024 * 1024;

/** Writes `data` through a writer in 1 MiB parts (as the snapshot writer streams a pack). */
async function streamed(b: S3Backend, key: string, data: Buffer): Promise<void> {
  const w = await b.openWriter(key);
  for (let off = 0; off < data.length; off += MiB) await w.write([data.subarray(off, off + MiB)]);
  assert.equal(await b.stat(key), null, 'nothing visible before commit');
  await w.commit();
}

test('s3: a default 32 MiB pack goes up as ONE PutObject with an unsigned payload, and reads back byte-exact (own hash, not the ETag)', async (t) => {
  const { backend, cleanup } = testBackend(await s3());
  try {
    const sent = observe(backend);
    const payloadHashes: string[] = [];
    // After signing: the header the server sees.
    backend.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'PutObjectCommand') payloadHashes.push((args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256']!);
        return next(args);
      },
      { step: 'deserialize', name: 'lifeboatTestHeaders' },
    );
    const data = randomBytes(32 * MiB + 12345);
    let t0 = performance.now();
    await streamed(backend, 'packs/big', data);
    const putMs = performance.now() - t0;
    assert.equal(sent.get('PutObjectCommand'), 1);
    assert.equal(sent.get('CreateMultipartUploadCommand'), undefined);
    assert.deepEqual(payloadHashes, ['UNSIGNED-PAYLOAD']);
    t0 = performance.now();
    const back = await backend.get('packs/big');
    const getMs = performance.now() - t0;
    assert.equal(sha(back), sha(data));
    assert.deepEqual(await backend.getRange('packs/big', data.length - 100, 100), data.subarray(data.length - 100));
    // Information only (never asserted): throughput on this machine's loopback server.
    const mb = data.length / MiB;
    t.diagnostic(`32 MiB pack: put ${(mb / (putMs / 1000)).toFixed(0)} MiB/s, get ${(mb / (getMs / 1000)).toFixed(0)} MiB/s`);
    // put() of several parts: one PutObject of the parts as they are.
    await backend.put('packs/big2', [data.subarray(0, 20 * MiB), data.subarray(20 * MiB)]);
    assert.equal(sent.get('PutObjectCommand'), 2);
    assert.equal(sha(await backend.get('packs/big2')), sha(data));
  } finally {
    await cleanup();
  }
});

test('s3: an object above the single-PUT size goes up as a multipart upload of part-size parts', async () => {
  const { backend, cleanup } = testBackend(await s3(), { singlePutMax: 16 * MiB });
  try {
    const sent = observe(backend);
    const data = randomBytes(32 * MiB + 12345);
    await streamed(backend, 'packs/big', data);
    assert.equal(sent.get('CreateMultipartUploadCommand'), 1);
    assert.equal(sent.get('UploadPartCommand'), 7); // 6 × 5 MiB + the rest
    assert.equal(sent.get('CompleteMultipartUploadCommand'), 1);
    assert.equal(sent.get('PutObjectCommand'), undefined);
    assert.equal(sha(await backend.get('packs/big')), sha(data));
    // put() of a large payload takes the same path.
    await backend.put('packs/big2', [data.subarray(0, 20 * MiB), data.subarray(20 * MiB)]);
    assert.equal(sent.get('CreateMultipartUploadCommand'), 2);
    assert.equal(sha(await backend.get('packs/big2')), sha(data));
  } finally {
    await cleanup();
  }
});

test('s3: writers sharing a pool of two part buffers all finish byte-exact (a writer waits only once its own parts are in flight)', async () => {
  const { backend, cleanup } = testBackend(await s3(), { partSize: 5 * MiB, bufferParts: 2, singlePutMax: 15 * MiB });
  try {
    const sent = observe(backend);
    const data = [0, 1, 2].map(() => randomBytes(12 * MiB + 7));
    // Three writers at once, 1 MiB writes each: each needs 3 buffers, the pool has 2 for all.
    await Promise.all(data.map((d, i) => streamed(backend, `packs/w${i}`, d)));
    for (const [i, d] of data.entries()) assert.equal(sha(await backend.get(`packs/w${i}`)), sha(d));
    // Short of buffers, they went multipart rather than wait holding unsent bytes.
    assert.ok((sent.get('CreateMultipartUploadCommand') ?? 0) >= 2, JSON.stringify([...sent]));
  } finally {
    await cleanup();
  }
});

test('s3: short of buffers while another upload is under way, a writer keeps its single PUT and waits for that upload', async () => {
  const { backend, cleanup } = testBackend(await s3(), { partSize: 5 * MiB, bufferParts: 3, singlePutMax: 15 * MiB });
  try {
    const sent = observe(backend);
    const a = await backend.openWriter('packs/a');
    const dataA = randomBytes(10 * MiB);
    await a.write([dataA]); // two buffers
    const aDone = a.commit(); // its PutObject is under way with both
    const dataB = randomBytes(7 * MiB); // two buffers: the third, then one of a's when its PUT ends
    await streamed(backend, 'packs/b', dataB);
    await aDone;
    assert.equal(sent.get('PutObjectCommand'), 2);
    assert.equal(sent.get('CreateMultipartUploadCommand'), undefined, 'neither had to go multipart');
    assert.equal(sha(await backend.get('packs/a')), sha(dataA));
    assert.equal(sha(await backend.get('packs/b')), sha(dataB));
  } finally {
    await cleanup();
  }
});

test('s3: a multipart upload that fails midway is aborted and leaves no object', async () => {
  const small = { partSize: 5 * MiB, singlePutMax: 5 * MiB };
  const { backend, cleanup } = testBackend(await s3(), { ...small, partAttempts: 2 });
  try {
    // The second part fails permanently (as a broken body stream would); the first went up.
    const sent = observe(backend, (name, n) => (name === 'UploadPartCommand' && n === 2 ? new Error('injected body stream failure') : null));
    const w = await backend.openWriter('packs/doomed');
    await w.write([randomBytes(6 * MiB)]);
    // Parts go up in the background: the failure fails a later write or the commit.
    await assert.rejects(
      (async () => {
        await w.write([randomBytes(6 * MiB)]);
        await w.commit();
      })(),
      /put part of packs\/doomed failed/,
    );
    assert.equal(sent.get('UploadPartCommand'), 2);
    assert.equal(sent.get('AbortMultipartUploadCommand'), 1, 'the upload is aborted on failure');
    await assert.rejects(w.commit(), /aborted object writer/);
    assert.equal(sent.get('CompleteMultipartUploadCommand'), undefined);
    assert.equal(await backend.stat('packs/doomed'), null);
    assert.deepEqual(await listAll(backend, 'packs/'), []);

    // A transient part failure is retried in place (the stream cannot be replayed by the wrapper).
    const flaky = testBackend(await s3(), { ...small, partAttempts: 3 });
    const sent2 = observe(flaky.backend, (name, n) => (name === 'UploadPartCommand' && n === 1 ? Object.assign(new Error('reset'), { code: 'ECONNRESET' }) : null));
    const data = randomBytes(7 * MiB);
    await flaky.backend.put('packs/ok', data);
    assert.equal(sent2.get('UploadPartCommand'), 3); // part 1 twice, part 2 once
    assert.equal(sha(await flaky.backend.get('packs/ok')), sha(data));
    await flaky.cleanup();
  } finally {
    await cleanup();
  }
});

test('s3: listing pages with the continuation token; a failed page throws, never ends short', async () => {
  const { backend, cleanup } = testBackend(await s3(), { listPageSize: 3 });
  try {
    const keys = [...Array(11).keys()].map((i) => `idx/k${String(i).padStart(2, '0')}`);
    await Promise.all(keys.map((k) => backend.put(k, Buffer.from(k))));
    await backend.put('other/x', Buffer.from('x'));
    const sent = observe(backend, (name, n) => (name === 'ListObjectsV2Command' && n === 3 ? Object.assign(new Error('boom'), { $metadata: { httpStatusCode: 503 }, name: 'SlowDown' }) : null));
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const k of backend.list('idx/')) seen.push(k);
      })(),
      (e: unknown) => e instanceof TransientError && /list idx\/ failed \(SlowDown, HTTP 503\)/.test(e.message),
    );
    assert.equal(seen.length, 6, 'two pages were yielded before the third failed');
    // The retry wrapper restarts the listing and completes it without duplicates.
    const all = await listAll(withRetry(backend, { sleep: noSleep }), 'idx/');
    assert.deepEqual(all.sort(), keys);
    assert.ok(sent.get('ListObjectsV2Command')! >= 3 + 4, 'every listing went over several pages');
  } finally {
    await cleanup();
  }
});

test('s3: openBackend checks the bucket — a missing one is a clear config error; credentials come from the AWS variables', async () => {
  const srv = await s3();
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, file: process.env.AWS_SHARED_CREDENTIALS_FILE };
  process.env.AWS_ACCESS_KEY_ID = srv.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = srv.credentials.secretAccessKey;
  try {
    const missing = { kind: 's3' as const, bucket: 'lifeboat-no-such-bucket', prefix: 'p', endpoint: srv.endpoint, region: srv.region };
    await assert.rejects(openBackend(missing, { create: true }), (e: unknown) => {
      assert.ok(e instanceof BackendConfigError);
      assert.match(e.message, /bucket lifeboat-no-such-bucket does not exist or is not accessible/);
      assert.doesNotMatch(e.message, new RegExp(`${srv.credentials.secretAccessKey}|${srv.endpoint}`));
      return true;
    });
    const prefix = `open-${randomBytes(4).toString('hex')}`;
    const b = await openBackend({ kind: 's3', bucket: srv.bucket, prefix, endpoint: srv.endpoint, region: srv.region }, { create: true });
    await b.put('a/b', Buffer.from('via the wrappers'));
    assert.equal((await b.get('a/b')).toString(), 'via the wrappers');
    assert.equal(typeof b.openWriter, 'function');
    assert.equal(await b.sweepLeftovers!(0), 0);
    await b.delete('a/b');

    // No credentials at all: a clear error naming the variables, not an SDK stack.
    delete process.env.AWS_ACCESS_KEY_ID;
    delete process.env.AWS_SECRET_ACCESS_KEY;
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/lifeboat-test-credentials';
    await assert.rejects(
      openBackend({ kind: 's3', bucket: srv.bucket, prefix, endpoint: srv.endpoint, region: srv.region }, { create: true }),
      (e: unknown) => e instanceof BackendConfigError && /S3 credentials not found.*AWS_ACCESS_KEY_ID/.test(e.message),
    );
  } finally {
    restore('AWS_ACCESS_KEY_ID', saved.id);
    restore('AWS_SECRET_ACCESS_KEY', saved.secret);
    restore('AWS_SHARED_CREDENTIALS_FILE', saved.file);
  }
});

test('s3: an unreachable endpoint is a transient error naming the key, not the URL', async () => {
  const { backend } = testBackend(await s3(), { endpoint: 'http://127.0.0.1:1', requestTimeoutMs: 5000 });
  try {
    await assert.rejects(backend.get('x/y'), (e: unknown) => e instanceof TransientError && /get x\/y failed \(ECONNREFUSED\)/.test(e.message) && !/127\.0\.0\.1/.test(e.message));
  } finally {
    backend.destroy();
  }
});

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

test('s3: pack-sized bodies reuse the pooled connection and ask for no 100-continue (the SDK default opened a new one per pack)', async () => {
  // A minimal S3 endpoint that answers every PutObject, recording each request's headers and socket.
  const sockets = new Set<Socket>();
  const headers: IncomingHttpHeaders[] = [];
  const srv = createServer((req, res) => {
    sockets.add(req.socket);
    headers.push(req.headers);
    req.resume();
    req.on('end', () => res.writeHead(200, { etag: '"e"' }).end());
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  const b = new S3Backend({ bucket: 'b', prefix: 'p', endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 's' } });
  try {
    for (let i = 0; i < 3; i++) await b.put(`packs/${i}`, Buffer.alloc(3 * MiB, i));
    assert.equal(headers.length, 3);
    assert.deepEqual(headers.map((h) => h.expect), [undefined, undefined, undefined]);
    assert.deepEqual(headers.map((h) => h['content-length']), Array(3).fill(String(3 * MiB)));
    assert.equal(sockets.size, 1);
  } finally {
    b.destroy();
    srv.close();
  }
});
