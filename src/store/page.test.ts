import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PageWindow } from '../domain/page.js';
import { testSnapshot, testWorkload } from '../domain/testing.js';
import { newHexId } from '../lib/ids.js';
import type { StoreHandle } from './db.js';
import { pagePosition } from './page.js';
import { insertSnapshot, listSnapshots, markSnapshotDeleted } from './snapshot.store.js';
import { insertWorkload, listWorkloads, type Scope } from './workload.store.js';
import { storeKinds } from './testing.js';

const T0 = Date.UTC(2026, 0, 1);
/** Creation times with ties, so the order between equal times (the id) is exercised. */
const TIMES = [T0, T0 + 1000, T0 + 1000, T0 + 1000, T0 + 2000, T0 + 2000, T0 + 3000];

/** Every page of `size` from the start, each after the last id of the one before. */
async function walk(size: number, list: (w: PageWindow) => Promise<{ id: string }[]>, position: (id: string) => Promise<PageWindow['after']>): Promise<string[][]> {
  const pages: string[][] = [];
  let after: PageWindow['after'];
  for (;;) {
    const page = (await list({ limit: size, ...(after ? { after } : {}) })).map((x) => x.id);
    if (page.length === 0) return pages;
    pages.push(page);
    after = await position(page[page.length - 1]!);
    assert.ok(pages.length <= TIMES.length, 'the walk does not end');
  }
}

for (const kind of storeKinds()) {
  describe(`list paging: keyset after a marker, offset, limit (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    const projectId = newHexId();
    const scope: Scope = { projectId };
    const w = testWorkload({ project_id: projectId });
    before(async () => {
      h = await kind.open();
      await insertWorkload(h.db, w);
      for (const t of TIMES) await insertSnapshot(h.db, testSnapshot(w, { created_at: t }));
    });
    after(async () => h.close());

    const snapshots = (win: PageWindow = {}) => listSnapshots(h.db, scope, { workloadId: w.id }, win);

    it('pages of every size walk the whole list once, in list order (created_at, then id)', async () => {
      const all = (await snapshots()).map((s) => s.id);
      assert.equal(all.length, TIMES.length);
      for (let size = 1; size <= TIMES.length + 1; size++) {
        const pages = await walk(size, snapshots, async (id) => (await pagePosition(h.db, 'snapshots', scope, id)) ?? undefined);
        assert.deepEqual(pages.flat(), all, `pages of ${size}`);
        assert.ok(pages.slice(0, -1).every((p) => p.length === size), `pages of ${size}: only the last one is short`);
      }
    });

    it('offset skips after the marker; limit without offset, offset without limit', async () => {
      const all = (await snapshots()).map((s) => s.id);
      const at = (await pagePosition(h.db, 'snapshots', scope, all[1]!))!;
      assert.deepEqual((await snapshots({ after: at, offset: 2, limit: 2 })).map((s) => s.id), all.slice(4, 6));
      assert.deepEqual((await snapshots({ offset: 5 })).map((s) => s.id), all.slice(5));
      assert.deepEqual((await snapshots({ limit: 3 })).map((s) => s.id), all.slice(0, 3));
      assert.deepEqual(await snapshots({ offset: 99 }), []);
    });

    it('a marker is only a live row of the scope: another project, a deleted row and an unknown id are not there', async () => {
      const all = (await snapshots()).map((s) => s.id);
      assert.ok(await pagePosition(h.db, 'snapshots', { admin: true }, all[0]!));
      assert.equal(await pagePosition(h.db, 'snapshots', { projectId: newHexId() }, all[0]!), null);
      assert.equal(await pagePosition(h.db, 'workloads', scope, all[0]!), null);
      const gone = testSnapshot(w, { created_at: T0 + 5000 });
      await insertSnapshot(h.db, gone);
      await markSnapshotDeleted(h.db, gone.id, T0 + 6000);
      assert.equal(await pagePosition(h.db, 'snapshots', scope, gone.id), null);
    });

    it('workloads page newest first, ties by id', async () => {
      const p = newHexId();
      for (const t of TIMES) await insertWorkload(h.db, testWorkload({ project_id: p, created_at: t }));
      const own: Scope = { projectId: p };
      const list = (win: PageWindow = {}) => listWorkloads(h.db, own, {}, win);
      const all = await list();
      assert.deepEqual(all.map((x) => x.created_at), [...TIMES].sort((a, b) => b - a));
      const pages = await walk(2, list, async (id) => (await pagePosition(h.db, 'workloads', own, id)) ?? undefined);
      assert.deepEqual(pages.flat(), all.map((x) => x.id));
    });
  });
}
