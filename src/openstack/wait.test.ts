import { test } from 'node:test';
import assert from 'node:assert/strict';
import { POLL_MAX_MS, POLL_MIN_MS, retryPause, retryPauseMs, waitUntil, type WaitClock } from './wait.js';

/** A clock that only moves when the code under test sleeps or a fake read takes time. */
class FakeClock implements WaitClock {
  t = 1_000_000;
  readonly sleeps: number[] = [];
  now(): number {
    return this.t;
  }
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.sleeps.push(ms);
    this.t += ms;
  }
}

/** A resource read that takes `readMs[i]` (on the fake clock) and is ready on read `readyAt`; records when each read started. */
function resource(clock: FakeClock, readMs: number[], readyAt: number) {
  const starts: number[] = [];
  return {
    starts,
    read: async () => {
      const i = starts.length;
      starts.push(clock.now());
      clock.t += readMs[i % readMs.length]!;
      return { status: i >= readyAt ? 'available' : 'creating' };
    },
  };
}

const gaps = (xs: number[]) => xs.slice(1).map((x, i) => x - xs[i]!);

test('reads start 1 s apart whatever a fast read takes: never faster than 1 s, never slower than 2 s', async () => {
  const clock = new FakeClock();
  const r = resource(clock, [0, 30, 250, 999, 400, 1], 6);
  const v = await waitUntil('volume', r.read, (x) => x.status === 'available', { timeoutMs: 60_000, clock });
  assert.deepEqual(v, { status: 'available' });
  assert.equal(r.starts.length, 7);
  assert.deepEqual(gaps(r.starts), [1000, 1000, 1000, 1000, 1000, 1000]);
  for (const g of gaps(r.starts)) assert.ok(g >= POLL_MIN_MS && g <= POLL_MAX_MS);
  assert.deepEqual(clock.sleeps, [1000, 970, 750, 1, 600, 999]);
});

test('a read slower than 1 s is followed by the next at once (the gap is the read itself, not read + 1 s)', async () => {
  const clock = new FakeClock();
  const r = resource(clock, [1500, 1000, 1999], 3);
  await waitUntil('server', r.read, (x) => x.status === 'available', { timeoutMs: 60_000, clock });
  assert.deepEqual(gaps(r.starts), [1500, 1000, 1999]);
  assert.deepEqual(clock.sleeps, [0, 0, 0]);
});

test('a resource already there is returned without any sleep; a failure state ends the wait naming it', async () => {
  const clock = new FakeClock();
  assert.deepEqual(await waitUntil('x', resource(clock, [5], 0).read, (x) => x.status === 'available', { timeoutMs: 1, clock }), { status: 'available' });
  assert.deepEqual(clock.sleeps, []);
  let n = 0;
  const read = async () => ({ status: ++n >= 3 ? 'error' : 'creating' });
  await assert.rejects(waitUntil('Cinder volume v1', read, () => false, { timeoutMs: 60_000, clock, failed: (x) => (x.status === 'error' ? x.status : null) }), /^Error: Cinder volume v1 failed: error$/);
  assert.equal(n, 3);
});

test('the timeout ends the wait after the read that passed it; gone is null with goneIsDone, an error without', async () => {
  const clock = new FakeClock();
  const r = resource(clock, [100], 1_000);
  await assert.rejects(waitUntil('snapshot s1', r.read, (x) => x.status === 'available', { timeoutMs: 10_000, clock }), /snapshot s1: not ready after 10 s/);
  assert.equal(r.starts.length, 11, 'reads at 0, 1, … 10 s');
  assert.deepEqual(gaps(r.starts), Array(10).fill(1000));
  assert.equal(await waitUntil('deletion', async () => null, () => false, { timeoutMs: 1, goneIsDone: true, clock }), null);
  await assert.rejects(waitUntil('image i1', async () => null, () => false, { timeoutMs: 1, clock }), /image i1 disappeared/);
});

test('an abort (cancel) stops the wait before the next read', async () => {
  const clock = new FakeClock();
  const ac = new AbortController();
  let reads = 0;
  const read = async () => {
    if (++reads === 2) ac.abort(new Error('cancelled'));
    return { status: 'creating' };
  };
  await assert.rejects(waitUntil('x', read, () => false, { timeoutMs: 60_000, clock, signal: ac.signal }), /cancelled/);
  assert.equal(reads, 2);
});

test('retry pauses of transiently failed calls: 1 s, then 2 s, never longer', async () => {
  assert.deepEqual([0, 1, 2, 3, 10].map(retryPauseMs), [1000, 1000, 2000, 2000, 2000]);
  const clock = new FakeClock();
  await retryPause(1, undefined, clock);
  await retryPause(2, undefined, clock);
  assert.deepEqual(clock.sleeps, [1000, 2000]);
});
