import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { IntegrityError, NotFoundError } from '../lib/errors.js';
import { listAll, TransientError, type Backend } from './backend.js';
import { backendConformance } from './backend.conformance.js';
import { FsBackend } from './fs/fs.backend.js';
import { withConcurrencyLimit } from './limit.backend.js';
import { MemBackend } from './mem/mem.backend.js';
import { withMetrics } from './metrics.backend.js';
import { withRetry } from './retry.backend.js';
import { S3Backend } from './s3/s3.backend.js';
import { faultyBackend, transient } from './testing.js';

const noSleep = async () => {};

// The wrapped stacks the service uses (openBackend), on both real backends.
backendConformance('mem via limit(2)+retry', async () => ({ backend: withRetry(withConcurrencyLimit(new MemBackend(), 2), { sleep: noSleep }) }));
backendConformance('fs via limit(2)+retry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lb-wrap-'));
  return { backend: withRetry(withConcurrencyLimit(new FsBackend(dir), 2), { sleep: noSleep }), cleanup: () => rm(dir, { recursive: true, force: true }) };
});
// Every other try of every request (op and key) fails transiently, lists after yielding one
// key: the retry wrapper must make the whole contract hold anyway.
backendConformance('mem via retry over a backend failing every other request', async () => {
  const tries = new Map<string, number>();
  const decide = (op: string, key: string) => {
    const n = (tries.get(`${op} ${key}`) ?? 0) + 1;
    tries.set(`${op} ${key}`, n);
    if (n % 2 === 0) return null;
    return op === 'list' ? { error: transient(), afterItems: 1 } : transient();
  };
  return { backend: withRetry(faultyBackend(new MemBackend(), decide), { sleep: noSleep, attempts: 2 }) };
});

describe('retry wrapper', () => {
  test('retries only transient errors, with a jittered backoff that doubles up to its cap, then gives up', async () => {
    const mem = new MemBackend();
    await mem.put('k/1', Buffer.from('v'));
    const waits: number[] = [];
    const always = faultyBackend(mem, () => transient('503 SlowDown'));
    const b = withRetry(always, { attempts: 5, baseDelayMs: 100, maxDelayMs: 300, random: () => 0.5, sleep: async (ms) => void waits.push(ms) });
    await assert.rejects(b.get('k/1'), (e: unknown) => e instanceof TransientError && /SlowDown/.test(e.message));
    assert.equal(always.calls.get, 5); // bounded: exactly `attempts` tries
    assert.deepEqual(waits, [50, 100, 150, 150]); // half of 100, 200, 300 (capped), 300

    // Full jitter: the random draw scales the cap, so two workers do not retry in lockstep.
    const waits2: number[] = [];
    const draws = [0.1, 0.9];
    const flaky = faultyBackend(mem, (_op, _k, call) => (call <= 2 ? transient() : null));
    const b2 = withRetry(flaky, { baseDelayMs: 1000, random: () => draws.shift()!, sleep: async (ms) => void waits2.push(ms) });
    assert.equal((await b2.get('k/1')).toString(), 'v');
    assert.deepEqual(waits2, [100, 1800]);
    assert.equal(flaky.calls.get, 3);
  });

  test('permanent errors pass through at once, unchanged', async () => {
    const mem = new MemBackend();
    await mem.put('k/1', Buffer.from('0123'));
    for (const [err, expect] of [
      [new NotFoundError('object x not found'), NotFoundError],
      [new IntegrityError('object x is shorter'), IntegrityError],
      [new Error('EACCES: permission denied'), Error],
    ] as const) {
      const f = faultyBackend(mem, () => err);
      const b = withRetry(f, { sleep: async () => assert.fail('no wait for a permanent error') });
      await assert.rejects(b.getRange('k/1', 0, 2), (e: unknown) => e === err && e instanceof expect);
      assert.equal(f.calls.getRange, 1);
    }
    // The inner backend's own permanent errors too (a missing key is not retried).
    const f = faultyBackend(mem, () => null);
    await assert.rejects(withRetry(f, { sleep: noSleep }).get('k/none'), NotFoundError);
    assert.equal(f.calls.get, 1);
  });

  test('a listing cut off by a transient error restarts and yields every key exactly once', async () => {
    const mem = new MemBackend();
    for (let i = 0; i < 50; i++) await mem.put(`p/${i}`, Buffer.from('x'));
    // Three resets at different depths, then a clean listing.
    const f = faultyBackend(mem, (op, _k, call) => (op === 'list' && call <= 3 ? { error: transient('ECONNRESET'), afterItems: call * 10 } : null));
    const got = await listAll(withRetry(f, { sleep: noSleep }), 'p/');
    assert.equal(f.calls.list, 4);
    assert.equal(got.length, 50);
    assert.equal(new Set(got).size, 50);
    // And a listing that keeps failing throws: it never ends early looking complete.
    const dead = faultyBackend(mem, () => ({ error: transient('ECONNRESET'), afterItems: 5 }));
    await assert.rejects(listAll(withRetry(dead, { sleep: noSleep, attempts: 3 }), 'p/'), /ECONNRESET/);
    assert.equal(dead.calls.list, 3);
  });

  test('a listing with sizes cut off by a transient error restarts too, each object once with its size', async () => {
    const mem = new MemBackend();
    for (let i = 0; i < 30; i++) await mem.put(`p/${i}`, Buffer.alloc(i));
    const f = faultyBackend(mem, (op, _k, call) => (op === 'list' && call <= 2 ? { error: transient('ECONNRESET'), afterItems: call * 10 } : null));
    const stack = withRetry(withMetrics(withConcurrencyLimit(f, 1), { observeBackend: () => {} }), { sleep: noSleep });
    const got = new Map<string, number>();
    for await (const o of stack.listSizes!('p/')) {
      assert.ok(!got.has(o.key), `${o.key} listed twice`);
      got.set(o.key, o.size);
    }
    assert.equal(f.calls.list, 3);
    assert.equal(got.size, 30);
    for (const [k, size] of got) assert.equal(size, Number(k.split('/')[1]));
  });

  test('a streamed writer is retried while opening, not part by part', async () => {
    const mem = new MemBackend();
    const f = faultyBackend(mem, (op, _k, call) => (op === 'openWriter' && call === 1 ? transient() : null));
    const b = withRetry(f, { sleep: noSleep });
    const w = await b.openWriter!('s/x');
    assert.equal(f.calls.openWriter, 2);
    await w.write([Buffer.from('ab')]);
    await w.commit();
    assert.equal((await mem.get('s/x')).toString(), 'ab');
    // Optional methods exist on the wrapper exactly when the inner backend has them.
    const bare: Backend = { put: mem.put.bind(mem), get: mem.get.bind(mem), getRange: mem.getRange.bind(mem), stat: mem.stat.bind(mem), list: mem.list.bind(mem), delete: mem.delete.bind(mem) };
    const wrapped = withRetry(withConcurrencyLimit(bare, 1));
    assert.equal(wrapped.openWriter, undefined);
    assert.equal(wrapped.getRangeInto, undefined);
    assert.equal(wrapped.sweepLeftovers, undefined);
  });
});

describe('concurrency limit wrapper', () => {
  /** A backend whose gets finish only when the test says so; counts requests in flight. */
  function gatedBackend() {
    const mem = new MemBackend();
    const pending: (() => void)[] = [];
    const state = { inFlight: 0, maxInFlight: 0 };
    const b: Backend = {
      ...bind(mem),
      get: async (key) => {
        state.inFlight++;
        state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
        await new Promise<void>((r) => pending.push(r));
        state.inFlight--;
        return mem.get(key);
      },
    };
    return { mem, b, pending, state };
  }
  const bind = (m: MemBackend): Backend => ({
    put: m.put.bind(m),
    get: m.get.bind(m),
    getRange: m.getRange.bind(m),
    stat: m.stat.bind(m),
    list: m.list.bind(m),
    delete: m.delete.bind(m),
  });
  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise((r) => setImmediate(r));
  };

  test('never runs more than N requests at once, and serves waiters in order', async () => {
    const { mem, b, pending, state } = gatedBackend();
    for (let i = 0; i < 10; i++) await mem.put(`k/${i}`, Buffer.from(String(i)));
    const limited = withConcurrencyLimit(b, 3);
    const done: number[] = [];
    const all = [...Array(10).keys()].map((i) => limited.get(`k/${i}`).then(() => void done.push(i)));
    for (let released = 0; released < 10; released++) {
      await until(() => pending.length > 0 && (state.inFlight === Math.min(3, 10 - released)));
      pending.shift()!();
    }
    await Promise.all(all);
    assert.equal(state.maxInFlight, 3);
    assert.deepEqual(done, [...Array(10).keys()]);
  });

  test('reading objects while iterating a listing does not deadlock with one connection', { timeout: 10_000 }, async () => {
    const mem = new MemBackend();
    for (let i = 0; i < 5; i++) await mem.put(`d/${i}`, Buffer.from(String(i)));
    const one = withConcurrencyLimit(mem, 1);
    const seen: string[] = [];
    for await (const k of one.list('d/')) seen.push((await one.get(k)).toString());
    assert.deepEqual(seen.sort(), ['0', '1', '2', '3', '4']);
    // Two writers open at once with one connection: each step takes the slot only briefly.
    const w1 = await one.openWriter!('s/1');
    const w2 = await one.openWriter!('s/2');
    await w1.write([Buffer.from('a')]);
    await w2.write([Buffer.from('b')]);
    await Promise.all([w1.commit(), w2.commit()]);
    assert.equal((await one.get('s/2')).toString(), 'b');
  });

  test('refuses a nonsensical limit', () => {
    for (const n of [0, -1, 1.5, NaN]) assert.throws(() => withConcurrencyLimit(new MemBackend(), n), RangeError);
  });
});

describe('buffered writes', () => {
  test('the service stack (limit, metrics, retry) says what its backend says: S3 buffers its streamed writes, fs does not', () => {
    const stack = (b: Backend) => withRetry(withMetrics(withConcurrencyLimit(b, 2), { observeBackend: () => {} }), { sleep: noSleep });
    const s3 = new S3Backend({ bucket: 'b', prefix: '', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 's' } });
    try {
      assert.equal(stack(s3).buffersWrites, true);
    } finally {
      s3.destroy();
    }
    assert.equal(stack(new FsBackend(tmpdir())).buffersWrites, undefined);
    assert.equal(stack(new MemBackend()).buffersWrites, undefined);
  });
});
