import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { storeKinds } from '../store/testing.js';
import { inTransaction, type StoreHandle } from '../store/db.js';
import { insertWorkload } from '../store/workload.store.js';
import { ManualClock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import type { Workload } from '../domain/workload.js';
import { QUOTA_TYPE_IDS, QuotaExceededError, QuotaService, enforceWorkloadQuotas } from './quota.service.js';
import { testWorkload } from '../domain/testing.js';

const PROJECT = 'c'.repeat(32);

function workload(instanceId: string): Workload {
  return testWorkload({ project_id: PROJECT, user_id: 'u', force_full: true, instances: [{ id: instanceId, name: 'vm', metadata: {} }] });
}

for (const kind of storeKinds()) {
  describe(`quota enforcement under concurrency (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => h.close());

    test('concurrent creates against a Workloads quota of 2: exactly 2 commit', async () => {
      await new QuotaService({ db: h.db, clock: new ManualClock() }).create(PROJECT, [{ typeId: QUOTA_TYPE_IDS.workloads, allowed: 2, high: 2 }]);
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, () =>
          inTransaction(h.db, async (tx) => {
            const w = workload(newId());
            await enforceWorkloadQuotas(tx, { projectId: PROJECT, workloadId: null, instanceIds: w.instances.map((i) => i.id) });
            // Widen the window between check and insert so an unlocked check would race.
            await new Promise((r) => setTimeout(r, 20));
            await insertWorkload(tx, w);
          }),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 2);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof QuotaExceededError, String(r.reason));
      const n = await h.db.selectFrom('workloads').select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', PROJECT).executeTakeFirstOrThrow();
      assert.equal(Number(n.n), 2);
    });
  });
}
