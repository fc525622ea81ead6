import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectSnapshots, type FileSearchRequest } from './file-search.service.js';
import type { Snapshot } from '../domain/snapshot.js';

// F11's four snapshots: snap0 oldest … snap3 newest.
const snaps = [0, 1, 2, 3].map((i) => ({ id: `0000000${i}-0000-4000-8000-000000000000`, created_at: 1_000_000 + i * 1000 }) as Snapshot);
const req = (r: Partial<FileSearchRequest>): FileSearchRequest => ({ vmId: 'v', filepath: '/x', snapshotIds: [], start: 0, end: 0, ...r });
const ids = (xs: Snapshot[]) => xs.map((s) => snaps.indexOf(s));

test('F11 selection: all, snapshot_ids, start/end (newest first), date range', () => {
  assert.deepEqual(ids(selectSnapshots(req({}), snaps)), [3, 2, 1, 0]);
  assert.deepEqual(ids(selectSnapshots(req({ snapshotIds: [snaps[2]!.id.toUpperCase()] }), snaps)), [2]);
  assert.deepEqual(ids(selectSnapshots(req({ start: 2, end: 0 }), snaps)), [1, 0], 'start=2,end=0: all but the two newest');
  assert.deepEqual(ids(selectSnapshots(req({ start: 0, end: 2 }), snaps)), [3, 2], 'start=0,end=2: the two newest');
  assert.deepEqual(ids(selectSnapshots(req({ dateFrom: 1_000_500, dateTo: 1_003_000 }), snaps)), [3, 2, 1]);
  assert.deepEqual(ids(selectSnapshots(req({ snapshotIds: [snaps[0]!.id], start: 3 }), snaps)), [0], 'snapshot_ids win over start/end');
  assert.throws(() => selectSnapshots(req({ snapshotIds: ['11111111-0000-4000-8000-000000000000'] }), snaps), /not an available snapshot/);
});
