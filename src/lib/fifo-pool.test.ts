import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FifoPool } from './fifo-pool.js';

test('a free item is taken at once; takers wait in arrival order; a given item goes to the longest waiter', async () => {
  const pool = new FifoPool(['a']);
  assert.equal(await pool.take(), 'a');
  const got: string[] = [];
  const first = pool.take().then((x) => got.push(`1:${x}`));
  const second = pool.take().then((x) => got.push(`2:${x}`));
  pool.give('b');
  pool.give('c');
  await Promise.all([first, second]);
  assert.deepEqual(got, ['1:b', '2:c']);
  pool.give('d'); // nobody waiting: kept
  assert.equal(await pool.take(), 'd');
});
