import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { storeKinds } from '../store/testing.js';
import { inTransaction, type Db, type StoreHandle } from '../store/db.js';
import { getWorkload, insertWorkload } from '../store/workload.store.js';
import { getSnapshot, insertSnapshot, listSnapshots } from '../store/snapshot.store.js';
import { defaultJobSchedule, RETENTION_TYPES } from '../domain/jobschedule.js';
import type { JobSchedule, Workload } from '../domain/workload.js';
import type { Snapshot } from '../domain/snapshot.js';
import { ManualClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';
import { JobRunner } from './runner.js';
import { applyRetention, releaseWorkloadWithRetention, retentionJobHandlers, runRetentionDelete, type RetentionDeleteJobPayload } from './retention.js';
import { RETENTION_JOBS } from './kinds.js';
import { testSnapshot, testWorkload } from '../domain/testing.js';
import { waitFor } from '../lib/testing.js';

const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const HOUR = 3_600_000;
const DAY = 86_400_000;
const PROJECT = 'p'.repeat(32);

async function mkWorkload(db: Db, sched: Partial<JobSchedule>, status: Workload['status'] = 'locked'): Promise<Workload> {
  const w = testWorkload({ project_id: PROJECT, status, created_at: T0, jobschedule: { ...defaultJobSchedule(T0), ...sched } });
  await insertWorkload(db, w);
  return w;
}

async function mkSnap(db: Db, w: Workload, createdAt: number, over: Partial<Snapshot> = {}): Promise<Snapshot> {
  const s = testSnapshot(w, { host: 'n', progress_percent: 100, created_at: createdAt, finished_at: createdAt, ...over });
  await insertSnapshot(db, s);
  return s;
}

class FakeRepo {
  deleted: string[] = [];
  failFor = new Set<string>();
  async deleteSnapshot(id: string): Promise<boolean> {
    if (this.failFor.has(id)) throw new Error('backend unavailable');
    this.deleted.push(id);
    return true;
  }
}

const COUNT = (n: number) => ({ retention_policy_type: RETENTION_TYPES[0], retention_policy_value: String(n) });
const DAYS = (n: number) => ({ retention_policy_type: RETENTION_TYPES[1], retention_policy_value: String(n) });

async function pendingRetentionJobs(db: Db): Promise<RetentionDeleteJobPayload[]> {
  const rows = await db.selectFrom('jobs').select(['payload', 'status']).where('kind', '=', RETENTION_JOBS.delete).where('status', '=', 'queued').execute();
  return rows.map((r) => JSON.parse(r.payload) as RetentionDeleteJobPayload);
}

for (const kind of storeKinds()) {
  describe(`retention (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let clock: ManualClock;
    let repo: FakeRepo;
    let gcRequests = 0;
    const deps = () => ({ db: h.db, repo, clock, onSnapshotDeleted: () => gcRequests++ });

    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });
    beforeEach(async () => {
      clock = new ManualClock(T0);
      repo = new FakeRepo();
      gcRequests = 0;
      await h.db.updateTable('jobs').set({ status: 'done' }).where('status', '=', 'queued').execute();
    });

    /** The completing transaction of a snapshot, as snapshot.job.ts will do it. */
    const completeWith = (w: Workload, s: Snapshot) => inTransaction(h.db, (tx) => releaseWorkloadWithRetention(tx, w.id, s.id, clock.now()));

    it('F12: 4 full snapshots, keep 3 → the first goes through deleting + locked_for_delete + a job; then 3 remain', async () => {
      const w = await mkWorkload(h.db, COUNT(3));
      const s = [];
      for (let i = 0; i < 4; i++) s.push(await mkSnap(h.db, w, T0 + i * HOUR));
      clock.set(T0 + 4 * HOUR);
      const victims = await completeWith(w, s[3]!);
      assert.deepEqual(victims, [s[0]!.id]);
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'locked_for_delete');
      assert.equal((await getSnapshot(h.db, { admin: true }, s[0]!.id))?.status, 'deleting');
      const jobs = await pendingRetentionJobs(h.db);
      assert.deepEqual(jobs, [{ workloadId: w.id, snapshotIds: [s[0]!.id] }]);

      // The job runs on a real runner.
      const runner = new JobRunner({ db: h.db, dialect: h.dialect, clock, log: silentLogger, owner: 'test', leaseMs: 60_000, handlers: retentionJobHandlers(deps()), pollMs: 10 });
      runner.start();
      await waitFor(async () => (await getWorkload(h.db, { admin: true }, w.id))?.status === 'available', 10_000, 'the workload unlocked');
      await runner.stop();
      const left = await listSnapshots(h.db, { admin: true }, { workloadId: w.id });
      assert.deepEqual(left.map((x) => x.id), [s[1]!.id, s[2]!.id, s[3]!.id]);
      assert.deepEqual(repo.deleted, [s[0]!.id]);
      assert.equal(gcRequests, 1);
    });

    it('within the count: the workload is simply released', async () => {
      const w = await mkWorkload(h.db, COUNT(3));
      const a = await mkSnap(h.db, w, T0);
      await mkSnap(h.db, w, T0 + HOUR);
      const c = await mkSnap(h.db, w, T0 + 2 * HOUR);
      assert.deepEqual(await completeWith(w, c), []);
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
      assert.equal((await getSnapshot(h.db, { admin: true }, a.id))?.status, 'available');
      assert.deepEqual(await pendingRetentionJobs(h.db), []);
    });

    it('by days: snapshots older than N days go, oldest first', async () => {
      const w = await mkWorkload(h.db, DAYS(2));
      clock.set(T0 + 10 * DAY);
      const old1 = await mkSnap(h.db, w, T0 + 5 * DAY);
      const old2 = await mkSnap(h.db, w, T0 + 7 * DAY);
      const young = await mkSnap(h.db, w, T0 + 9 * DAY);
      const now = await mkSnap(h.db, w, T0 + 10 * DAY);
      assert.deepEqual(await completeWith(w, now), [old1.id, old2.id]);
      await runRetentionDelete(deps(), (await pendingRetentionJobs(h.db))[0]!, silentLogger);
      assert.deepEqual((await listSnapshots(h.db, { admin: true }, { workloadId: w.id })).map((x) => x.id), [young.id, now.id]);
      assert.deepEqual(repo.deleted, [old1.id, old2.id]);
    });

    it('never the one just taken, a pinned one or one being restored', async () => {
      const w = await mkWorkload(h.db, COUNT(1));
      const pinned = await mkSnap(h.db, w, T0, { pinned: true });
      const restoring = await mkSnap(h.db, w, T0 + HOUR, { status: 'restoring' });
      const plain = await mkSnap(h.db, w, T0 + 2 * HOUR);
      // created_at ties or clock skew must not make the new snapshot a victim
      const taken = await mkSnap(h.db, w, T0 + 2 * HOUR - 1);
      assert.deepEqual(await completeWith(w, taken), [plain.id]);
      await runRetentionDelete(deps(), (await pendingRetentionJobs(h.db))[0]!, silentLogger);
      const left = (await listSnapshots(h.db, { admin: true }, { workloadId: w.id })).map((x) => x.id).sort();
      assert.deepEqual(left, [pinned.id, restoring.id, taken.id].sort());
    });

    it('a repository failure turns that snapshot to error, deletes the rest and unlocks; the job is idempotent', async () => {
      const w = await mkWorkload(h.db, COUNT(1));
      const a = await mkSnap(h.db, w, T0);
      const b = await mkSnap(h.db, w, T0 + HOUR);
      const c = await mkSnap(h.db, w, T0 + 2 * HOUR);
      await completeWith(w, c);
      repo.failFor.add(a.id);
      const job = (await pendingRetentionJobs(h.db))[0]!;
      await runRetentionDelete(deps(), job, silentLogger);
      const sa = await getSnapshot(h.db, { admin: true }, a.id);
      assert.equal(sa?.status, 'error');
      assert.match(sa?.error_msg ?? '', /Retention delete failed: backend unavailable/);
      assert.equal(await getSnapshot(h.db, { admin: true }, b.id), null);
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
      // Run again (reconciler after a lost worker): nothing more happens.
      await runRetentionDelete(deps(), job, silentLogger);
      assert.deepEqual(repo.deleted, [b.id]);
      // The error snapshot goes with the next retention pass.
      repo.failFor.clear();
      assert.deepEqual(await applyRetention(h.db, w.id, clock.now()), [a.id]);
    });

    it('applyRetention: idle workload after its policy was lowered; busy workload untouched', async () => {
      const w = await mkWorkload(h.db, COUNT(1), 'available');
      const a = await mkSnap(h.db, w, T0);
      await mkSnap(h.db, w, T0 + HOUR);
      assert.deepEqual(await applyRetention(h.db, w.id, clock.now()), [a.id]);
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'locked_for_delete');
      assert.deepEqual(await applyRetention(h.db, w.id, clock.now()), [], 'busy (locked_for_delete)');
      await runRetentionDelete(deps(), (await pendingRetentionJobs(h.db))[0]!, silentLogger);
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
      assert.deepEqual(await applyRetention(h.db, w.id, clock.now()), [], 'nothing left to do');
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
    });
  });
}
