import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mapLimit } from './map-limit.js';

/** A call that ends when the test says so: the test decides the order calls finish in. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

describe('mapLimit', () => {
  it('keeps the items order whatever order the calls end in, with at most `limit` in flight', async () => {
    const gates = Array.from({ length: 7 }, gate);
    let inFlight = 0;
    let most = 0;
    const started: number[] = [];
    const run = mapLimit([10, 11, 12, 13, 14, 15, 16], 3, async (x, i) => {
      started.push(i);
      most = Math.max(most, ++inFlight);
      await gates[i]!.opened;
      inFlight--;
      return x * 2;
    });
    // End them last first, one by one, letting the lanes move on.
    for (const i of [2, 1, 0, 5, 6, 4, 3]) {
      while (!started.includes(i)) await new Promise((r) => setImmediate(r));
      gates[i]!.open();
    }
    assert.deepEqual(await run, [20, 22, 24, 26, 28, 30, 32]);
    assert.equal(most, 3);
  });

  it('after a failure starts nothing new, waits for the calls in flight, then throws that failure', async () => {
    const slow = gate();
    let ended = 0;
    const calls: number[] = [];
    const run = mapLimit([0, 1, 2, 3, 4, 5], 2, async (x) => {
      calls.push(x);
      if (x === 1) throw new Error('item 1 failed');
      if (x === 0) await slow.opened;
      ended++;
      return x;
    });
    let settled = false;
    void run.catch(() => {}).finally(() => (settled = true));
    for (let k = 0; k < 20; k++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, [0, 1], 'nothing started after the failure');
    assert.equal(settled, false, 'not thrown while item 0 still runs');
    slow.open();
    await assert.rejects(run, /item 1 failed/);
    assert.deepEqual([calls, ended], [[0, 1], 1]);
  });

  it('an empty list gives an empty result; a bad limit is refused', async () => {
    assert.deepEqual(await mapLimit([], 4, async () => 1), []);
    for (const bad of [0, -1, 1.5, NaN]) await assert.rejects(mapLimit([1], bad, async () => 1), RangeError);
  });
});
