import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../lib/errors.js';
import { parseAuditRange } from './audit.commands.js';

const NOW = Date.UTC(2026, 10, 30, 15, 0, 0);

test('audit log windows: time_in_minutes, start/end ranges (whole UTC days), the one-day default', () => {
  assert.deepEqual(parseAuditRange({ time_in_minutes: '1440' }, NOW), { from: NOW - 86_400_000, to: NOW + 1 });
  assert.deepEqual(parseAuditRange({ time_in_minutes: '5' }, NOW), { from: NOW - 300_000, to: NOW + 1 });
  assert.deepEqual(parseAuditRange({}, NOW), { from: NOW - 86_400_000, to: NOW + 1 });
  assert.deepEqual(parseAuditRange(undefined, NOW), { from: NOW - 86_400_000, to: NOW + 1 });
  assert.deepEqual(parseAuditRange({ start_range: '11-29-2026', end_range: '11-30-2026' }, NOW), { from: Date.UTC(2026, 10, 29), to: Date.UTC(2026, 11, 1) });
  assert.deepEqual(parseAuditRange({ start_range: '11-30-2026', end_range: '11-30-2026' }, NOW), { from: Date.UTC(2026, 10, 30), to: Date.UTC(2026, 11, 1) });
  assert.deepEqual(parseAuditRange({ start_range: '02-28-2024' }, NOW), { from: Date.UTC(2024, 1, 28), to: NOW + 1 });
  // A repeated parameter: the last one counts (as everywhere in the query helpers).
  assert.deepEqual(parseAuditRange({ time_in_minutes: ['5', '10'] }, NOW), { from: NOW - 600_000, to: NOW + 1 });
});

test('audit log windows: every malformed or contradictory query is a 400 naming the parameter', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ time_in_minutes: '0' }, /time_in_minutes/],
    [{ time_in_minutes: '-5' }, /time_in_minutes/],
    [{ time_in_minutes: '1.5' }, /time_in_minutes/],
    [{ time_in_minutes: 'day' }, /time_in_minutes/],
    [{ time_in_minutes: '' }, /time_in_minutes/],
    [{ time_in_minutes: '9999999999999' }, /time_in_minutes/],
    [{ start_range: '2026-11-30' }, /start_range/],
    [{ start_range: '02-30-2026' }, /start_range/],
    [{ start_range: '13-01-2026' }, /start_range/],
    [{ start_range: '11-29-2026', end_range: '11/30/2026' }, /end_range/],
    [{ end_range: '11-30-2026' }, /end_range needs start_range/],
    [{ start_range: '11-30-2026', end_range: '11-29-2026' }, /before start_range/],
    [{ time_in_minutes: '60', start_range: '11-30-2026' }, /either time_in_minutes or start_range/],
  ];
  for (const [q, msg] of bad) assert.throws(() => parseAuditRange(q, NOW), (e: unknown) => e instanceof ValidationError && msg.test(e.message), JSON.stringify(q));
});
