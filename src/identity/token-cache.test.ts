import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../lib/clock.js';
import { TokenCache } from './token-cache.js';

describe('TokenCache', () => {
  it('serves an entry until its deadline, not at or after it', () => {
    const clock = new ManualClock();
    const c = new TokenCache<number>(clock, 10);
    c.set('a', 1, clock.now() + 1000);
    clock.advance(999);
    assert.equal(c.get('a'), 1);
    clock.advance(1);
    assert.equal(c.get('a'), undefined);
    assert.equal(c.size, 0, 'expired entry dropped on read');
  });

  it('ignores deadlines already past and a zero-size cache', () => {
    const clock = new ManualClock();
    const c = new TokenCache<number>(clock, 10);
    c.set('a', 1, clock.now());
    assert.equal(c.get('a'), undefined);
    const off = new TokenCache<number>(clock, 0);
    off.set('a', 1, clock.now() + 1000);
    assert.equal(off.get('a'), undefined);
  });

  it('is bounded and evicts the least recently used entry', () => {
    const clock = new ManualClock();
    const c = new TokenCache<string>(clock, 3);
    const until = clock.now() + 60_000;
    c.set('a', 'A', until);
    c.set('b', 'B', until);
    c.set('c', 'C', until);
    assert.equal(c.get('a'), 'A'); // a is now most recent; b is the oldest
    c.set('d', 'D', until);
    assert.equal(c.size, 3);
    assert.equal(c.get('b'), undefined);
    assert.deepEqual(['a', 'c', 'd'].map((k) => c.get(k)), ['A', 'C', 'D']);
    c.delete('a');
    assert.equal(c.get('a'), undefined);
  });
});
