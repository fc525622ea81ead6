/**
 * Writes copies of one snapshot row straight into a stopped service's DB with the project's
 * store code (openStore + insertSnapshot). Imported lazily by bench/api.ts, right when it is
 * needed, so it runs the same dist/ (migrations included) as the service it just stopped, even
 * when someone rebuilt dist/ while the bench was running.
 */
import { openStore } from '../src/store/db.js';
import { getSnapshot, insertSnapshot } from '../src/store/snapshot.store.js';
import { newId } from '../src/lib/ids.js';

/** Adds count-1 copies of snapshot `sid` (new ids, created_at +1 ms each), so there are `count`. */
export async function seedSnapshots(dbUrl: string, sid: string, count: number): Promise<void> {
  const store = await openStore(dbUrl);
  try {
    const orig = await getSnapshot(store.db, { admin: true }, sid);
    if (!orig) throw new Error(`snapshot ${sid} not found in ${dbUrl}`);
    await store.db.transaction().execute(async (tx) => {
      for (let i = 1; i < count; i++) {
        const t = orig.created_at + i;
        await insertSnapshot(tx, { ...orig, id: newId(), name: `bench-${i}`, created_at: t, updated_at: t, finished_at: t });
      }
    });
  } finally {
    await store.close();
  }
}
