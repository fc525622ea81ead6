import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { convertStaged } from './direct-io.js';

describe('convertStaged', () => {
  it('reads the staged file uncached, and buffered when qemu-img refuses that', async () => {
    const calls: string[][] = [];
    const ok = await convertStaged(async (args) => (calls.push(args), 'done'), ['-f', 'raw', 'a', 'b']);
    assert.equal(ok, 'done');
    assert.deepEqual(calls, [['convert', '-T', 'none', '-f', 'raw', 'a', 'b']]);
    calls.length = 0;
    const again = await convertStaged(async (args) => {
      calls.push(args);
      if (args.includes('-T')) throw new Error('Could not open: Invalid argument');
      return 'buffered';
    }, ['-f', 'raw', 'a', 'b']);
    assert.equal(again, 'buffered');
    assert.deepEqual(calls, [['convert', '-T', 'none', '-f', 'raw', 'a', 'b'], ['convert', '-f', 'raw', 'a', 'b']]);
    await assert.rejects(convertStaged(async () => Promise.reject(new Error('no space')), ['x']), /no space/);
  });
});
