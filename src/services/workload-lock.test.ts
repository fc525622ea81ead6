import { after, before, beforeEach, describe, it } from 'node:test';
import { TargetCatalog } from '../lib/target.js';
import assert from 'node:assert/strict';
import { storeKinds } from '../store/testing.js';
import { inTransaction, type StoreHandle } from '../store/db.js';
import { getWorkload, insertWorkload } from '../store/workload.store.js';
import { getSnapshot, transitionSnapshot } from '../store/snapshot.store.js';
import { getRestore, insertRestore } from '../store/restore.store.js';
import { claimJob, getJob, renewLease } from '../store/job.store.js';
import type { RequestContext } from '../domain/context.js';
import type { Workload } from '../domain/workload.js';
import type { Restore } from '../domain/restore.js';
import type { Platform } from '../platform/platform.js';
import { ManualClock } from '../lib/clock.js';
import { InvalidStateError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { enqueue } from '../jobs/queue.js';
import { RESTORE_JOBS } from '../jobs/kinds.js';
import { startSnapshot } from './snapshot-start.service.js';
import { WorkloadService } from './workload.service.js';
import { testWorkload } from '../domain/testing.js';

const T0 = Date.UTC(2026, 0, 1);
const PROJECT = 'a'.repeat(32);
const LEASE = 60_000;

function ctx(isAdmin: boolean): RequestContext {
  return { requestId: 'req', userId: isAdmin ? 'admin-user' : 'member-user', userName: isAdmin ? 'admin' : 'member', projectId: PROJECT, projectName: 'p', roles: [isAdmin ? 'admin' : 'member'], isAdmin };
}
const member = ctx(false);
const admin = ctx(true);

function workload(): Workload {
  return testWorkload({ project_id: PROJECT, user_id: 'member-user', created_at: T0, instances: [{ id: newId(), name: 'vm', metadata: {} }] });
}

for (const kind of storeKinds()) {
  describe(`workload unlock and reset with a job in flight (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let clock: ManualClock;
    let svc: WorkloadService;
    before(async () => {
      h = await kind.open();
    });
    after(async () => h.close());
    beforeEach(async () => {
      // Each test claims "the oldest queued job": other tests' jobs must not be in the queue.
      await h.db.deleteFrom('jobs').execute();
      clock = new ManualClock(T0 + 60_000);
      svc = new WorkloadService({ db: h.db, clock, platform: {} as Platform });
    });

    /** A workload with a snapshot started the way the API starts one: locked, job queued. */
    async function snapshotting(): Promise<{ w: Workload; snapshotId: string; jobId: string }> {
      const w = workload();
      await insertWorkload(h.db, w);
      const s = await inTransaction(h.db, (tx) =>
        startSnapshot(tx, { workload: w, userId: w.user_id, name: 's', description: '-', type: 'full', isScheduled: false, createdAt: T0, targets: TargetCatalog.only('mem://') }),
      );
      assert.ok(s);
      const job = await h.db.selectFrom('jobs').select('id').where('resource_id', '=', s.id).executeTakeFirstOrThrow();
      return { w, snapshotId: s.id, jobId: job.id };
    }
    const status = async (w: Workload) => (await getWorkload(h.db, { admin: true }, w.id))?.status;

    it('a member cannot unlock a workload whose snapshot job is queued: 400 naming the job, nothing changes', async () => {
      const { w, snapshotId, jobId } = await snapshotting();
      await assert.rejects(svc.unlock(member, w.id), (e: unknown) => {
        assert.ok(e instanceof InvalidStateError, String(e));
        assert.equal(
          e.message,
          `Invalid state: Workload cannot be unlocked while job ${jobId} (snapshot.take of snapshot ${snapshotId}) is queued; an admin can unlock it, which cancels the job`,
        );
        return true;
      });
      assert.equal(await status(w), 'locked');
      assert.equal((await getJob(h.db, jobId))?.status, 'queued');
      assert.equal((await getSnapshot(h.db, { admin: true }, snapshotId))?.status, 'creating');
    });

    it('an admin unlock cancels the running snapshot job first: job failed, the worker loses its lease, snapshot cancelled, workload available', async () => {
      const { w, snapshotId, jobId } = await snapshotting();
      const claimed = await claimJob(h.db, h.dialect, 'worker-1', LEASE, clock.now());
      assert.equal(claimed?.id, jobId);
      assert.ok(await transitionSnapshot(h.db, snapshotId, ['creating'], 'uploading', T0));
      await svc.unlock(admin, w.id);
      assert.equal(await status(w), 'available');
      const job = await getJob(h.db, jobId);
      assert.equal(job?.status, 'failed');
      assert.equal(job?.error, 'Cancelled: workload unlocked by admin');
      assert.equal(await renewLease(h.db, jobId, 'worker-1', LEASE, clock.now()), false, 'the worker aborts at its next heartbeat');
      const s = await getSnapshot(h.db, { admin: true }, snapshotId);
      assert.equal(s?.status, 'cancelled');
      assert.equal(s?.progress_msg, 'Snapshot cancelled: workload unlocked by admin');
      // The workload is usable again: a new snapshot starts.
      assert.ok(await inTransaction(h.db, (tx) => startSnapshot(tx, { workload: w, userId: w.user_id, name: 's2', description: '-', type: 'full', isScheduled: false, createdAt: T0 + 1, targets: TargetCatalog.only('mem://') })));
    });

    it('a member reset of a workload with a job in flight is refused naming the job; an admin reset cancels it and resets', async () => {
      const { w, snapshotId, jobId } = await snapshotting();
      await assert.rejects(svc.reset(member, w.id), /Invalid state: Workload cannot be reset while job .* \(snapshot\.take of snapshot .*\) is queued; an admin can reset it, which cancels the job/);
      assert.equal(await status(w), 'locked');
      await svc.reset(admin, w.id);
      assert.equal((await getJob(h.db, jobId))?.error, 'Cancelled: workload reset by admin');
      assert.equal((await getSnapshot(h.db, { admin: true }, snapshotId))?.status, 'cancelled');
      const after = await getWorkload(h.db, { admin: true }, w.id);
      assert.deepEqual([after?.status, after?.force_full], ['resetting', true]);
      const reset = await h.db.selectFrom('jobs').select(['kind', 'status']).where('resource_id', '=', w.id).execute();
      assert.deepEqual(reset, [{ kind: 'workload.reset', status: 'queued' }]);
    });

    it('an admin unlock during a restore cancels the restore and gives the snapshot back', async () => {
      const { w, snapshotId, jobId } = await snapshotting();
      await svc.unlock(admin, w.id); // (cancels that snapshot; make it an available one to restore)
      assert.ok(await transitionSnapshot(h.db, snapshotId, ['cancelled'], 'restoring', T0));
      assert.equal((await getJob(h.db, jobId))?.status, 'failed');
      const w2 = await getWorkload(h.db, { admin: true }, w.id);
      assert.ok(w2);
      await h.db.updateTable('workloads').set({ status: 'locked' }).where('id', '=', w.id).execute();
      const r: Restore = {
        id: newId(), project_id: PROJECT, user_id: 'member-user', snapshot_id: snapshotId, workload_id: w.id, name: 'r', description: '', status: 'restoring', kind: 'oneclick',
        options: {}, host: '', size: 0, uploaded_size: 0, progress_percent: 0, progress_msg: null, warning_msg: null, error_msg: null, time_taken: 0, instances: [], metadata: [],
        created_at: T0, updated_at: null, finished_at: null,
      };
      await insertRestore(h.db, r);
      const restoreJob = await enqueue(h.db, RESTORE_JOBS.run, { restoreId: r.id, plan: { kind: 'oneclick', instances: [] } }, { resourceId: r.id, now: T0 });
      await assert.rejects(svc.unlock(member, w.id), new RegExp(`job ${restoreJob} \\(restore\\.run of restore ${r.id}\\) is queued`));
      await svc.unlock(admin, w.id);
      assert.equal((await getRestore(h.db, { admin: true }, r.id))?.status, 'cancelled');
      assert.equal((await getSnapshot(h.db, { admin: true }, snapshotId))?.status, 'available');
      assert.equal(await status(w), 'available');
    });

    it('unlocking an available workload is a no-op success even while a finished job\'s row is still running', async () => {
      const { w, snapshotId, jobId } = await snapshotting();
      assert.ok(await claimJob(h.db, h.dialect, 'worker-1', LEASE, clock.now()));
      // The handler has committed (snapshot available, workload unlocked); the runner has not yet marked its job done.
      assert.ok(await transitionSnapshot(h.db, snapshotId, ['creating'], 'available', T0));
      await h.db.updateTable('workloads').set({ status: 'available' }).where('id', '=', w.id).execute();
      await svc.unlock(member, w.id);
      assert.equal(await status(w), 'available');
      assert.equal((await getJob(h.db, jobId))?.status, 'running', 'the job is left alone');
    });

    it('with no job in flight a member may still unlock a stuck workload (the escape hatch)', async () => {
      const { w, jobId } = await snapshotting();
      await h.db.updateTable('jobs').set({ status: 'failed', error: 'worker lease expired' }).where('id', '=', jobId).execute();
      await svc.unlock(member, w.id);
      assert.equal(await status(w), 'available');
    });
  });
}
