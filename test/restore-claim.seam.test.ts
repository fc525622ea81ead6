import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { openStore, type StoreHandle } from '../src/store/db.js';
import { getWorkload, insertWorkload } from '../src/store/workload.store.js';
import { getSnapshot, insertSnapshot } from '../src/store/snapshot.store.js';
import { getRestore, insertRestore } from '../src/store/restore.store.js';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { Repository } from '../src/repository/repository.js';
import type { Platform } from '../src/platform/platform.js';
import type { Restore } from '../src/domain/restore.js';
import { testSnapshot, testWorkload } from '../src/domain/testing.js';
import type { JobHandler, KindJob } from '../src/jobs/runner.js';
import { RESTORE_JOBS } from '../src/jobs/kinds.js';
import { restoreJobHandlers } from '../src/jobs/restore.job.js';
import { ManualClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { newId } from '../src/lib/ids.js';

/**
 * A restore cancelled in the moment between its job reading the row and claiming it
 * (restoring → executing): the cancel must be honoured, not leave the restore `cancelling`
 * with its snapshot and workload locked. The race is made exact below the job, in the store:
 * a SQLite trigger turns the claim's UPDATE into the user's cancel (the row becomes
 * `cancelling`, the claim changes nothing), as if the cancel had committed just before it.
 */
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

/** The platform is never reached on this path; any call fails the test. */
const unreachable = new Proxy({} as Platform, {
  get: (_t, prop) => (prop === 'then' ? undefined : () => Promise.reject(new Error(`platform.${String(prop)} called`))),
});

describe('restore job: a cancel just before the claim', () => {
  let h: StoreHandle;
  let repo: Repository;
  const clock = new ManualClock(T0);

  before(async () => {
    h = await openStore('sqlite::memory:');
    repo = await Repository.init(new MemBackend(), { chunkSize: 64 * 1024, packSize: 1 << 20 }, { clock, logger: silentLogger });
  });
  after(async () => {
    await h.close();
  });

  it('ends the restore cancelled and releases its snapshot and workload', async () => {
    const w = testWorkload({ status: 'locked', created_at: T0 });
    await insertWorkload(h.db, w);
    const s = testSnapshot(w, { status: 'restoring', created_at: T0 });
    await insertSnapshot(h.db, s);
    const r: Restore = {
      id: newId(),
      project_id: w.project_id,
      user_id: w.user_id,
      snapshot_id: s.id,
      workload_id: w.id,
      name: 'r',
      description: '',
      status: 'restoring',
      kind: 'oneclick',
      options: {},
      host: '',
      size: 0,
      uploaded_size: 0,
      progress_percent: 0,
      progress_msg: null,
      warning_msg: null,
      error_msg: null,
      time_taken: 0,
      instances: [],
      metadata: [],
      created_at: T0,
      updated_at: null,
      finished_at: null,
    };
    await insertRestore(h.db, r);
    await sql`CREATE TRIGGER cancel_before_claim BEFORE UPDATE OF status ON restores
      WHEN OLD.status = 'restoring' AND NEW.status = 'executing'
      BEGIN
        UPDATE restores SET status = 'cancelling' WHERE id = OLD.id;
        SELECT RAISE(IGNORE);
      END`.execute(h.db);

    const handler = restoreJobHandlers({ db: h.db, platform: unreachable, repo, clock, nodeName: 'node-1' }).find((x): x is JobHandler<typeof RESTORE_JOBS.run> => x.kind === RESTORE_JOBS.run)!;
    const job: KindJob<typeof RESTORE_JOBS.run> = {
      id: newId(),
      kind: RESTORE_JOBS.run,
      payload: { restoreId: r.id, plan: { kind: 'oneclick', instances: [] } },
      resourceId: r.id,
      targetNode: null,
      status: 'running',
      leaseOwner: 'me',
      leaseExpiresAt: null,
      attempts: 1,
      error: null,
      createdAt: T0,
    };
    await handler.run(job, { signal: new AbortController().signal, log: silentLogger });

    assert.equal((await getRestore(h.db, { admin: true }, r.id))?.status, 'cancelled');
    assert.equal((await getSnapshot(h.db, { admin: true }, s.id))?.status, 'available');
    assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
  });
});
