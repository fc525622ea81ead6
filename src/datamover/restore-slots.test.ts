import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RestoreSlots } from './restore-slots.js';

const MiB = 2 ** 20;

test('slot counts split the budget, fit a backup\'s idle 40 MiB buffer, and never exceed the groups', () => {
  const c = RestoreSlots.counts(2 * MiB, 40 * MiB, 1_000_000);
  assert.deepEqual(c, { stored: 10, raw: 10 });
  assert.ok((c.stored + c.raw) * 2 * MiB <= 40 * MiB);
  assert.deepEqual(RestoreSlots.counts(2 * MiB, 40 * MiB, 3), { stored: 3, raw: 3 });
  assert.deepEqual(RestoreSlots.counts(64 * MiB, 40 * MiB, 100), { stored: 1, raw: 1 }); // chunks larger than the budget: one of each
});

test('slots are page-aligned, disjoint, and handed to waiters in order as they come back', async () => {
  const slots = new RestoreSlots(64 * 1024, { stored: 1, raw: 2 });
  const offs = [0, 1, 2].map((n) => slots.offset(n));
  assert.ok(offs.every((o) => o % 4096 === 0));
  assert.ok(offs[1]! - offs[0]! >= 64 * 1024 && slots.mem.byteLength >= offs[2]! + 64 * 1024);
  const s = await slots.takeStored();
  const [r1, r2] = [await slots.takeRaw(), await slots.takeRaw()];
  assert.notEqual(r1, r2);
  assert.ok(![r1, r2].includes(s));
  const order: string[] = [];
  const w1 = slots.takeRaw().then((n) => order.push(`a${n}`));
  const w2 = slots.takeRaw().then((n) => order.push(`b${n}`));
  const ws = slots.takeStored().then((n) => order.push(`s${n}`));
  slots.releaseRaw(r2);
  slots.releaseRaw(r1);
  slots.releaseStored(s);
  await Promise.all([w1, w2, ws]);
  assert.deepEqual(order, [`a${r2}`, `b${r1}`, `s${s}`]);
  slots.close();
});
