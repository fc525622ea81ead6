import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MachineLimits } from './machine.js';
import { restoreBoundLines, type ScenarioResult } from './sweep-report.js';

const GB = 1e9;
const machine = (over: Partial<MachineLimits>): MachineLimits => ({
  seqRead: 2 * GB,
  fdatasyncWrite: 1 * GB,
  sha256: 1,
  hmacSha256: 1,
  blake3Keyed: null,
  zstd1Text: 1,
  zstd1Random: 1,
  estimateRandom: 1,
  load: [0, 0, 0],
  ...over,
});
const scenario: ScenarioResult = {
  mix: 'db',
  gib: 1,
  size: 2 ** 30,
  dataBytes: GB,
  steps: [
    { tool: 'lifeboat', step: 'restore', seconds: 2.5, syncSeconds: 0, user: 1, sys: 1, peakRss: 1, dataBytes: GB, load: [0, 0, 0] },
    { tool: 'restic', step: 'restore', seconds: 4, syncSeconds: 0, user: 1, sys: 1, peakRss: 1, dataBytes: GB, load: [0, 0, 0] },
  ],
  repoAfterFull: { lifeboat: 0.5 * GB },
  restoredExact: { lifeboat: true },
};

test('the write-only restore floor: the data at the fdatasync bandwidth, and the best ratio to restic it allows', () => {
  const lines = restoreBoundLines(scenario, machine({}));
  assert.equal(lines.length, 1, 'no overlap measured: no floor with reads');
  assert.match(lines[0]!, /1\.00 s; lifeboat at 40 % of it; restic 4\.00 s, so no restore can be more than 4\.00× restic here/);
});

test('the floor with reads: repository at the read bandwidth plus the write, divided by the measured overlap', () => {
  // (0.5 GB / 2 GB/s + 1 GB / 1 GB/s) / 1 = 1.25 s; 1.25 / 2.5 = 50 %
  const serial = restoreBoundLines(scenario, machine({ readWriteOverlap: 1 }));
  assert.match(serial[1]!, /0\.50 GB repository .* overlapped 1\.00-fold .*: 1\.25 s; lifeboat at 50 % of it/);
  // A disk doing both at full speed at once (overlap 2) halves it.
  const parallel = restoreBoundLines(scenario, machine({ readWriteOverlap: 2 }));
  assert.match(parallel[1]!, /: 0\.63 s; lifeboat at 25 % of it/);
});

test('an overlap below 1 bounds nothing beyond reading, then writing: the floor is the plain sum', () => {
  // Two dd streams at once took longer than in turn (0.40-fold): still 1.25 s, not 1.25 / 0.4.
  const slower = restoreBoundLines(scenario, machine({ readWriteOverlap: 0.4 }));
  assert.match(slower[1]!, /one after the other \(this disk overlapped them 0\.40-fold, worse than in turn\)\): 1\.25 s; lifeboat at 50 % of it/);
});
