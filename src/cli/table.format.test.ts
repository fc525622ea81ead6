import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatList, formatShow, humanBytes, humanDuration, renderTable } from './table.format.js';
import { CliError, EXIT_CODES, formatCliError, kindOfStatus } from './exit-codes.js';
import { progressOf } from './progress.view.js';

test('renderTable draws a left-aligned prettytable with multi-line cells', () => {
  assert.equal(
    renderTable(['Property', 'Value'], [['name', 'x'], ['multi', 'a\nbcd']]),
    ['+----------+-------+', '| Property | Value |', '+----------+-------+', '| name     | x     |', '| multi    | a     |', '|          | bcd   |', '+----------+-------+', ''].join('\n'),
  );
});

test('formatShow sorts keys, drops links, prints None/True and nested values as Python literals', () => {
  const out = formatShow({ name: 'w', links: [{}], enabled: true, err: null, instances: [{ id: 'i1' }] });
  const rows = out.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| Property'));
  assert.deepEqual(
    rows.map((r) => r.split('|').map((c) => c.trim())[1]),
    ['enabled', 'err', 'instances', 'name'],
  );
  assert.match(out, /\| instances \| \[\{'id': 'i1'\}\] \|/);
  assert.match(out, /\| err +\| None +\|/);
  assert.equal(formatShow({ b: 2, a: 'x' }, { format: 'value' }), 'x\n2\n');
  assert.deepEqual(JSON.parse(formatShow({ b: 2, a: null, links: [] }, { format: 'json' })), { a: null, b: 2 });
  assert.deepEqual(JSON.parse(formatShow({ b: 2, a: 1 }, { format: 'json', columns: ['b'] })), { b: 2 });
  assert.throws(() => formatShow({ a: 1 }, { columns: ['zz'] }), (e: unknown) => e instanceof CliError && e.kind === 'usage');
});

test('formatList: header-only table for an empty list; json keyed by header; value rows', () => {
  const cols = [
    { header: 'ID', get: (x: { id: string }) => x.id },
    { header: 'Status', get: () => 'available' },
  ];
  assert.equal(formatList([], cols), '+----+--------+\n| ID | Status |\n+----+--------+\n');
  assert.deepEqual(JSON.parse(formatList([{ id: 'a' }], cols, { format: 'json' })), [{ ID: 'a', Status: 'available' }]);
  assert.equal(formatList([{ id: 'a' }, { id: 'b' }], cols, { format: 'value', columns: ['id'] }), 'a\nb\n');
});

test('exit codes: one table, fault statuses map to kinds', () => {
  assert.equal(EXIT_CODES[kindOfStatus(401, 'x')], 3);
  assert.equal(EXIT_CODES[kindOfStatus(403, 'x')], 3);
  assert.equal(EXIT_CODES[kindOfStatus(404, 'x')], 4);
  assert.equal(kindOfStatus(400, "Invalid state: Workload must be in the 'available' state"), 'invalid-state');
  assert.equal(EXIT_CODES[kindOfStatus(400, 'x')], 5);
  assert.equal(EXIT_CODES[kindOfStatus(409, 'x')], 5);
  assert.equal(EXIT_CODES[kindOfStatus(500, 'x')], 6);
  assert.equal(EXIT_CODES[kindOfStatus(503, 'x')], 6);
  assert.equal(EXIT_CODES['operation-failed'], 7);
  assert.equal(EXIT_CODES.usage, 2);
  assert.equal(formatCliError(new CliError('not-found', 'Workload w could not be found.', { httpStatus: 404, requestId: 'req-1' })), 'ERROR: Workload w could not be found. (HTTP 404) (Request-ID: req-1)');
});

test('progressOf estimates bytes from the percent; humanBytes/humanDuration', () => {
  assert.deepEqual(progressOf({ status: 'uploading', progress_percent: 25, restore_size: 400, progress_msg: 'Uploading' }), { percent: 25, total: 400, done: 100, status: 'uploading', msg: 'Uploading' });
  assert.equal(progressOf({ status: 'available', progress_percent: 99, size: 10 }).done, 10);
  assert.equal(humanBytes(1536), '1.5 KiB');
  assert.equal(humanBytes(10), '10 B');
  assert.equal(humanDuration(75), '1m15s');
});

test('RateMeter: sliding window follows the current speed', async () => {
  const { RateMeter } = await import('./progress.view.js');
  const m = new RateMeter(10_000);
  m.sample(0, 0);
  m.sample(10_000, 1000 * 10); // 1000 B/s for 10 s
  m.sample(20_000, 10_000 + 100 * 10); // then 100 B/s
  assert.equal(m.rate(), 100);
  m.sample(21_000, 5); // went backwards: restart
  assert.equal(m.rate(), 0);
});
