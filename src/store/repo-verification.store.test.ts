import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { StoreHandle } from './db.js';
import { storeKinds } from './testing.js';
import { getRepoVerification, insertRepoVerification, listRepoVerifications, runningVerificationsOf, setRepoVerificationProgress, transitionRepoVerification } from './repo-verification.store.js';
import { newRepoVerification, type RepoVerification } from '../domain/repo-verification.js';

const run = (id: string, target: string, created: number): RepoVerification =>
  newRepoVerification({ id, target, read_data_subset: 0.25, mark_bad: true, source: 'api', user_id: 'u1', created_at: created });

for (const kind of storeKinds()) {
  describe(`repo verifications store (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => (h = await kind.open()));
    after(async () => h?.close());

    test('runs round-trip (numbers, booleans, JSON lists, large byte counts), newest first, per target', async () => {
      await insertRepoVerification(h.db, run('a', 'default', 1_700_000_000_123));
      await insertRepoVerification(h.db, run('b', 'default', 1_700_000_000_456));
      await insertRepoVerification(h.db, run('c', 'offsite', 1_700_000_000_200));
      assert.deepEqual((await runningVerificationsOf(h.db, 'default')).sort(), ['a', 'b']);
      assert.equal(await transitionRepoVerification(h.db, 'a', ['queued'], 'running', { started_at: 1_700_000_001_000 }), true);
      await setRepoVerificationProgress(h.db, 'a', 42);
      assert.equal((await getRepoVerification(h.db, 'a'))?.progress_percent, 42);
      const done = { progress_percent: 100, snapshots: 3, disks: 4, packs_read: 5, chunks_checked: 6_000_000_000, bytes_read: 2 ** 40, problem_count: 1, problems: JSON.stringify(['CORRUPT chunk x']), failed_snapshots: JSON.stringify(['s1']), finished_at: 1_700_000_002_000 };
      assert.equal(await transitionRepoVerification(h.db, 'a', ['running'], 'damaged', done), true);
      assert.equal(await transitionRepoVerification(h.db, 'a', ['running'], 'error'), false, 'a finished run does not change');
      const a = await getRepoVerification(h.db, 'a');
      assert.deepEqual({ ...a }, { ...run('a', 'default', 1_700_000_000_123), status: 'damaged', started_at: 1_700_000_001_000, ...done, problems: ['CORRUPT chunk x'], failed_snapshots: ['s1'] });
      assert.deepEqual((await listRepoVerifications(h.db, { limit: 10 })).map((r) => r.id), ['b', 'c', 'a']);
      assert.deepEqual((await listRepoVerifications(h.db, { limit: 1, target: 'default' })).map((r) => r.id), ['b']);
      assert.deepEqual(await runningVerificationsOf(h.db, 'default'), ['b']);
      await insertRepoVerification(h.db, { ...run('d', 'default', 1_700_000_000_500), source: 'cli', status: 'running' });
      assert.deepEqual(await runningVerificationsOf(h.db, 'default'), ['b'], 'a CLI run (maybe killed) does not block the service');
      assert.equal((await getRepoVerification(h.db, 'd'))?.source, 'cli');
      assert.equal(await getRepoVerification(h.db, 'zzz'), null);
    });
  });
}
