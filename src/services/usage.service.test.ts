import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Platform } from '../platform/platform.js';
import type { SnapshotInstance } from '../domain/snapshot.js';
import { testSnapshot, testWorkload, TEST_T0 } from '../domain/testing.js';
import type { StoreHandle } from '../store/db.js';
import { insertSnapshot, markSnapshotDeleted } from '../store/snapshot.store.js';
import { storeKinds } from '../store/testing.js';
import { insertWorkload, markWorkloadDeleted } from '../store/workload.store.js';
import { UsageService, type TargetUsage } from './usage.service.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const vm = (id: string) => ({ id, name: `name-${id}`, metadata: {} });
const captured = (...ids: string[]) => ids.map((id) => ({ id, name: id }) as SnapshotInstance);

/** Only what the service asks of the platform: how many VMs a project has. */
const platform = { listInstances: async (p: string) => Array.from({ length: p === A ? 5 : p === B ? 2 : 0 }, (_, i) => ({ id: `${p}-${i}` })) } as unknown as Platform;
const target: TargetUsage = { name: 'default', kind: 'file', description: 'file:///t', online: true, capacity: { totalBytes: 1000, usedBytes: 400 } };

for (const kind of storeKinds()) {
  describe(`usage service (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let svc: UsageService;
    const w1 = testWorkload({ project_id: A, name: 'w1', instances: [vm('vm1'), vm('vm2')] });
    const gone = testWorkload({ project_id: A, name: 'gone', instances: [vm('vm4')] });
    const full = testSnapshot(w1, { size: 100, instances: captured('vm1', 'vm2', 'vm3') });
    const inc = testSnapshot(w1, { size: 20, snapshot_type: 'incremental', created_at: TEST_T0 + 1000, instances: captured('vm1') });
    before(async () => {
      h = await kind.open();
      for (const w of [w1, gone]) await insertWorkload(h.db, w);
      await markWorkloadDeleted(h.db, gone.id, TEST_T0);
      for (const s of [full, inc]) await insertSnapshot(h.db, s);
      const deletedSnap = testSnapshot(w1, { size: 999, instances: captured('vm9') });
      await insertSnapshot(h.db, deletedSnap);
      await markSnapshotDeleted(h.db, deletedSnap.id, TEST_T0);
      const projects = { listProjects: async () => [{ id: B, name: 'beta' }], projectName: async (id: string) => (id === A ? 'alpha' : null) };
      svc = new UsageService({ db: h.db, platform, projects, targets: async () => [target, { ...target, name: 'second', capacity: null }] });
    });
    after(async () => h.close());

    test('per project: VMs on the platform, in live workloads, only in snapshots; bytes of live snapshots', async () => {
      const usage = await svc.projectUsage();
      assert.deepEqual(
        usage.map((p) => [p.projectId, p.projectName, p.totalVms, p.vmsProtected, p.passivelyProtected, p.usedBytes]),
        [
          [B, 'beta', 2, 0, 0, 0],
          [A, 'alpha', 5, 2, 1, 120],
        ],
      );
      assert.deepEqual(usage[1]!.workloads, [
        {
          id: w1.id,
          name: 'w1',
          bytes: 120,
          vms: [{ id: 'vm1', name: 'name-vm1' }, { id: 'vm2', name: 'name-vm2' }],
          snapshots: [
            { id: full.id, name: full.name, bytes: 100, createdAt: TEST_T0 },
            { id: inc.id, name: inc.name, bytes: 20, createdAt: TEST_T0 + 1000 },
          ],
        },
      ]);
    });

    test('storage per target (live snapshots on the default one) and the protected VMs', async () => {
      const s = await svc.storageUsage();
      assert.deepEqual(
        s.targets.map((t) => [t.target.name, t.full, t.incremental]),
        [
          ['default', { count: 1, bytes: 100 }, { count: 1, bytes: 20 }],
          ['second', { count: 0, bytes: 0 }, { count: 0, bytes: 0 }],
        ],
      );
      assert.deepEqual(await svc.protectedVms(), [
        { id: 'vm1', name: 'name-vm1', projectId: A, workloadId: w1.id },
        { id: 'vm2', name: 'name-vm2', projectId: A, workloadId: w1.id },
      ]);
    });
  });
}
