import { after, before, describe, it } from 'node:test';
import { TargetCatalog } from '../lib/target.js';
import assert from 'node:assert/strict';
import { storeKinds } from '../store/testing.js';
import { inTransaction, type StoreHandle } from '../store/db.js';
import { getWorkload, insertWorkload, transitionWorkload, updateWorkloadFields } from '../store/workload.store.js';
import { listSnapshots, transitionSnapshot } from '../store/snapshot.store.js';
import { deleteQuota, insertQuota } from '../store/quota.store.js';
import { QUOTA_TYPE_IDS } from '../domain/quota.js';
import type { Workload } from '../domain/workload.js';
import { QuotaExceededError } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { SNAPSHOT_JOBS } from '../jobs/kinds.js';
import { startSnapshot, type SnapshotStartRequest } from './snapshot-start.service.js';
import { testWorkload } from '../domain/testing.js';

const T0 = Date.UTC(2026, 0, 1);

function workload(): Workload {
  return testWorkload({ project_id: newId().replace(/-/g, ''), metadata: { policy_id: 'pol' }, instances: [{ id: newId(), name: 'vm1', metadata: {} }] });
}

function request(w: Workload, over: Partial<SnapshotStartRequest> = {}): SnapshotStartRequest {
  return { workload: w, userId: 'u'.repeat(32), name: 'snap', description: '-', type: 'incremental', isScheduled: false, createdAt: T0 + 1234, targets: TargetCatalog.only('file:///t'), ...over };
}

for (const kind of storeKinds()) {
  describe(`startSnapshot (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => h.close());

    const jobsOf = (resourceId: string) => h.db.selectFrom('jobs').selectAll().where('resource_id', '=', resourceId).execute();
    const finish = async (w: Workload, id: string) => {
      assert.ok(await transitionSnapshot(h.db, id, ['creating'], 'available', T0));
      assert.ok(await transitionWorkload(h.db, w.id, { admin: true }, ['locked'], 'available', T0));
    };

    it('locks, forces full on the first snapshot, writes row + metadata + job; busy → null and nothing written', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      const s = await inTransaction(h.db, (tx) => startSnapshot(tx, request(w)));
      assert.ok(s);
      assert.equal(s.snapshot_type, 'full');
      assert.equal(s.status, 'creating');
      assert.equal(s.created_at, T0 + 1234, 'created_at keeps its milliseconds');
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'locked');
      const md = await h.db.selectFrom('snapshot_metadata').select(['key', 'value']).where('snapshot_id', '=', s.id).execute();
      assert.equal(md.find((m) => m.key === 'backup_media_target')?.value, 'file:///t');
      assert.equal(md.find((m) => m.key === 'policy_id')?.value, 'pol');
      assert.equal(md.find((m) => m.key === 'hostnames')?.value, '["vm1"]');
      const jobs = await jobsOf(s.id);
      assert.equal(jobs.length, 1);
      assert.equal(jobs[0]!.kind, SNAPSHOT_JOBS.take);
      assert.deepEqual(JSON.parse(jobs[0]!.payload), { snapshotId: s.id });

      const countJobs = async () => (await h.db.selectFrom('jobs').select('id').execute()).length;
      const jobsBefore = await countJobs();
      assert.equal(await inTransaction(h.db, (tx) => startSnapshot(tx, request(w))), null);
      assert.equal((await listSnapshots(h.db, { admin: true }, { workloadId: w.id })).length, 1);
      assert.equal(await countJobs(), jobsBefore, 'no job for a refused start');
    });

    it('incremental when a base exists; full again after a reset (force_full)', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      const first = await inTransaction(h.db, (tx) => startSnapshot(tx, request(w)));
      await finish(w, first!.id);
      const second = await inTransaction(h.db, (tx) => startSnapshot(tx, request(w)));
      assert.equal(second?.snapshot_type, 'incremental');
      await finish(w, second!.id);
      await updateWorkloadFields(h.db, w.id, { force_full: true }, T0);
      const third = await inTransaction(h.db, (tx) => startSnapshot(tx, request(w)));
      assert.equal(third?.snapshot_type, 'full');
    });

    it('over the Snapshots quota: refused before the lock, the workload stays available and nothing is written', async () => {
      const w = workload();
      await insertWorkload(h.db, w);
      const quotaId = newId();
      await insertQuota(h.db, { id: quotaId, project_id: w.project_id, quota_type_id: QUOTA_TYPE_IDS.snapshots, allowed_value: 1, high_watermark: 1, created_at: T0, updated_at: T0 });
      const first = await inTransaction(h.db, (tx) => startSnapshot(tx, request(w)));
      await finish(w, first!.id);
      await assert.rejects(
        inTransaction(h.db, (tx) => startSnapshot(tx, request(w))),
        (e: unknown) => e instanceof QuotaExceededError && e.message === 'Quota exceeded for Snapshots: allowed 1, in use 1, requested 1 more.',
      );
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
      assert.equal((await listSnapshots(h.db, { admin: true }, { workloadId: w.id })).length, 1);
      await deleteQuota(h.db, quotaId);
    });
  });
}
