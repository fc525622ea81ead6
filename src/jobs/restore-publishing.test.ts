import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Publishing } from './restore.job.js';

/** A publish that ends when the test says so. */
function gate() {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => {
    open = res;
    fail = rej;
  });
  return { done, open, fail };
}

describe('Publishing (a restore publishing instances side by side)', () => {
  it('runs at most `limit` at once: start() waits for a free slot', async () => {
    const p = new Publishing(2);
    const a = gate();
    const b = gate();
    let running = 0;
    let most = 0;
    const publish = (g: ReturnType<typeof gate>) => async () => {
      running++;
      most = Math.max(most, running);
      await g.done;
      running--;
    };
    await p.start(publish(a));
    await p.start(publish(b));
    let thirdStarted = false;
    const third = p.start(async () => void (thirdStarted = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(thirdStarted, false, 'the third waits while two are in flight');
    a.open();
    await third;
    assert.equal(thirdStarted, true);
    b.open();
    await p.settle();
    assert.equal(most, 2);
    p.throwIfFailed();
  });

  it('keeps the first failure: throwIfFailed throws it, settle() still waits for the others in flight', async () => {
    const p = new Publishing(3);
    const slow = gate();
    let slowEnded = false;
    await p.start(async () => {
      await slow.done;
      slowEnded = true;
    });
    await p.start(async () => {
      throw new Error('first');
    });
    await p.start(async () => {
      throw new Error('second');
    });
    await new Promise((r) => setImmediate(r));
    assert.throws(() => p.throwIfFailed(), /first/);
    const settled = p.settle();
    slow.open();
    await settled;
    assert.equal(slowEnded, true);
  });

  it('limit 0 publishes inline: start() resolves after the publish and rejects with its error', async () => {
    const p = new Publishing(0);
    let ended = false;
    await p.start(async () => void (ended = true));
    assert.equal(ended, true);
    await assert.rejects(p.start(async () => Promise.reject(new Error('inline'))), /inline/);
  });
});
