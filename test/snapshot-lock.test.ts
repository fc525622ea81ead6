import { after, before, describe, it } from 'node:test';
import { TargetCatalog } from '../src/lib/target.js';
import assert from 'node:assert/strict';
import { storeKinds } from '../src/store/testing.js';
import { inTransaction, type StoreHandle } from '../src/store/db.js';
import { getWorkload, insertWorkload } from '../src/store/workload.store.js';
import { getSnapshot } from '../src/store/snapshot.store.js';
import { getJob } from '../src/store/job.store.js';
import type { RequestContext } from '../src/domain/context.js';
import type { Workload } from '../src/domain/workload.js';
import type { Instance } from '../src/domain/instance.js';
import type { Platform } from '../src/platform/platform.js';
import type { Repository } from '../src/repository/repository.js';
import { ManualClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { newId } from '../src/lib/ids.js';
import { startSnapshot } from '../src/services/snapshot-start.service.js';
import { WorkloadService } from '../src/services/workload.service.js';
import { snapshotJobHandlers } from '../src/jobs/snapshot.job.js';
import type { KindJob } from '../src/jobs/runner.js';
import { testWorkload } from '../src/domain/testing.js';
import { waitFor } from '../src/lib/testing.js';

const T0 = Date.UTC(2026, 0, 1);
const PROJECT = 'b'.repeat(32);
const admin: RequestContext = { requestId: 'r', userId: 'admin-user', userName: 'admin', projectId: PROJECT, projectName: 'p', roles: ['admin'], isAdmin: true };

function workload(): Workload {
  return testWorkload({ project_id: PROJECT, user_id: 'u', created_at: T0, instances: [{ id: newId(), name: 'vm', metadata: {} }] });
}

for (const kind of storeKinds()) {
  describe(`a snapshot job cancelled by an admin unlock (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => h.close());

    it('never releases the lock a newer snapshot took after the unlock', async () => {
      const clock = new ManualClock(T0 + 60_000);
      const w = workload();
      await insertWorkload(h.db, w);
      const start = (name: string) =>
        inTransaction(h.db, (tx) => startSnapshot(tx, { workload: w, userId: 'u', name, description: '-', type: 'full', isScheduled: false, createdAt: clock.now(), targets: TargetCatalog.only('mem://') }));
      const old = await start('old');
      assert.ok(old);
      const row = await h.db.selectFrom('jobs').selectAll().where('resource_id', '=', old.id).executeTakeFirstOrThrow();
      const job = await getJob(h.db, row.id);
      assert.ok(job);

      // The handler stops at its first platform call until the test lets it fail there.
      let reached = false;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const platform = {
        getInstance: async (): Promise<Instance | null> => {
          reached = true;
          await gate;
          return null; // the VM is gone: the handler fails and runs its error path
        },
      } as unknown as Platform;
      const repo = { startSnapshot: async () => ({ abort: async () => undefined }) } as unknown as Repository;
      const handler = snapshotJobHandlers({ db: h.db, platform, repo, clock, nodeName: 'n' }).find((x) => x.kind === 'snapshot.take');
      assert.ok(handler && handler.kind === 'snapshot.take');
      const run = handler.run({ ...job, kind: 'snapshot.take', payload: { snapshotId: old.id } } satisfies KindJob<'snapshot.take'>, { signal: new AbortController().signal, log: silentLogger });
      await waitFor(() => reached, 5000, 'the handler at the platform');

      await new WorkloadService({ db: h.db, clock, platform }).unlock(admin, w.id);
      const newer = await start('newer');
      assert.ok(newer, 'the unlocked workload takes a new snapshot');
      release();
      await assert.rejects(run, /could not be found on the platform/);

      assert.equal((await getSnapshot(h.db, { admin: true }, old.id))?.status, 'cancelled');
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'locked', "the newer snapshot's lock holds");
    });
  });
}
