import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PartPool } from './s3.parts.js';

test('part pool: never more than `count` buffers out; a waiter gets the next one given back, in order', async () => {
  const pool = new PartPool(1024, 2);
  const a = pool.tryTake();
  const b = pool.tryTake();
  assert.ok(a && b && a !== b);
  assert.equal(a.length, 1024);
  assert.equal(pool.tryTake(), null);
  const order: string[] = [];
  const first = pool.take().then((x) => (order.push('first'), x));
  const second = pool.take().then((x) => (order.push('second'), x));
  pool.give(b);
  assert.equal(await first, b, 'the buffer given back is reused, not a new one');
  pool.give(a);
  assert.equal(await second, a);
  assert.deepEqual(order, ['first', 'second']);
  assert.equal(pool.tryTake(), null);
});

test('part pool: buffers given back are reused before new ones are made', () => {
  const pool = new PartPool(64, 3);
  const a = pool.tryTake()!;
  pool.give(a);
  assert.equal(pool.tryTake(), a);
});
