import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { storeKinds } from './testing.js';
import { inTransaction, openStore, type StoreHandle } from './db.js';
import { claimJob, enqueueJob, failExpiredJob, finishJob, getJob, listExpiredJobs, purgeFinishedJobs, releaseJob, renewLease, type Job } from './job.store.js';

const T0 = Date.UTC(2026, 0, 1);
const LEASE = 30_000;

for (const kind of storeKinds()) {
  describe(`job.store (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });

    // Tests share one store; each starts from an empty queue so "oldest" and counts are exact.
    async function reset(): Promise<void> {
      await h.db.deleteFrom('jobs').execute();
    }
    const enqueue = (now: number, resourceId = 'r') => enqueueJob(h.db, { kind: 'k', payload: { resourceId, n: [1, 2] }, resourceId, now });
    const claim = (owner: string, now: number, db = h.db) => claimJob(db, h.dialect, owner, LEASE, now);

    it('enqueues a queued job; an enqueue inside a rolled-back transaction leaves no job', async () => {
      await reset();
      const id = await enqueue(T0);
      assert.deepEqual(await getJob(h.db, id), {
        id,
        kind: 'k',
        payload: { resourceId: 'r', n: [1, 2] },
        resourceId: 'r',
        status: 'queued',
        leaseOwner: null,
        leaseExpiresAt: null,
        attempts: 0,
        error: null,
        createdAt: T0,
        targetNode: null,
      } satisfies Job);
      let lost = '';
      await assert.rejects(
        inTransaction(h.db, async (tx) => {
          lost = await enqueueJob(tx, { kind: 'k', payload: {}, resourceId: 'x', now: T0 });
          throw new Error('state change failed');
        }),
      );
      assert.equal(await getJob(h.db, lost), null);
      assert.equal(await claim('w', T0 + 1).then((j) => j?.id), id);
      assert.equal(await claim('w', T0 + 1), null);
    });

    it('claims the oldest queued job (ties by id) and sets owner, lease and attempts', async () => {
      await reset();
      const newer = await enqueue(T0 + 20);
      const older = await enqueue(T0 + 10);
      const j = await claim('worker-1', T0 + 100);
      assert.equal(j?.id, older);
      assert.deepEqual([j?.status, j?.leaseOwner, j?.leaseExpiresAt, j?.attempts], ['running', 'worker-1', T0 + 100 + LEASE, 1]);
      assert.deepEqual(await getJob(h.db, older), j);
      assert.equal((await claim('worker-2', T0 + 101))?.id, newer);
      assert.equal(await claim('worker-3', T0 + 102), null);

      await reset();
      const ids = [await enqueue(T0), await enqueue(T0), await enqueue(T0)].sort();
      const order = [(await claim('w', T0))?.id, (await claim('w', T0))?.id, (await claim('w', T0))?.id];
      assert.deepEqual(order, ids);
    });

    it('a job with a target node is claimed only by that node; untargeted jobs by any worker', async () => {
      await reset();
      const forB = await enqueueJob(h.db, { kind: 'k', payload: {}, resourceId: 'r', now: T0, targetNode: 'host-b' });
      const any = await enqueue(T0 + 1);
      assert.equal((await getJob(h.db, forB))?.targetNode, 'host-b');
      // A worker without a node name and one on host-a both skip the older job for host-b.
      assert.equal((await claimJob(h.db, h.dialect, 'w-none', LEASE, T0 + 5))?.id, any);
      assert.equal(await claimJob(h.db, h.dialect, 'w-a', LEASE, T0 + 5, 'host-a'), null);
      const b = await claimJob(h.db, h.dialect, 'w-b', LEASE, T0 + 5, 'host-b');
      assert.deepEqual([b?.id, b?.leaseOwner, b?.targetNode], [forB, 'w-b', 'host-b']);
    });

    it('concurrent claimers on one handle take every job exactly once', async () => {
      await reset();
      const ids = new Set<string>();
      for (let i = 0; i < 30; i++) ids.add(await enqueue(T0 + (i % 7)));
      const claimed = await claimAll([h.db], 16, (db, n) => claim(`w${n}`, T0 + 100, db));
      assert.deepEqual([...claimed].sort(), [...ids].sort());
    });

    it('renewLease extends only a lease this worker still holds', async () => {
      await reset();
      const id = await enqueue(T0);
      await claim('a', T0);
      assert.equal(await renewLease(h.db, id, 'b', LEASE, T0 + 10), false);
      assert.equal(await renewLease(h.db, id, 'a', LEASE, T0 + 10), true);
      assert.equal((await getJob(h.db, id))?.leaseExpiresAt, T0 + 10 + LEASE);
      // The lease ran out and a reconciler took the job away: the worker must learn it lost it.
      assert.equal(await failExpiredJob(h.db, id, 'worker lease expired', T0 + 11 + LEASE), true);
      assert.equal(await renewLease(h.db, id, 'a', LEASE, T0 + 12 + LEASE), false);
      const j = await getJob(h.db, id);
      assert.deepEqual([j?.status, j?.error, j?.leaseExpiresAt], ['failed', 'worker lease expired', null]);
    });

    it('finishJob ends a held job once; false for another owner or after the lease was lost', async () => {
      await reset();
      const a = await enqueue(T0);
      const b = await enqueue(T0 + 1);
      await claim('w', T0);
      await claim('w', T0);
      assert.equal(await finishJob(h.db, a, 'other', { status: 'done' }, T0 + 5), false);
      assert.equal(await finishJob(h.db, a, 'w', { status: 'done' }, T0 + 5), true);
      assert.equal(await finishJob(h.db, a, 'w', { status: 'failed', error: 'late' }, T0 + 6), false);
      const ja = await getJob(h.db, a);
      assert.deepEqual([ja?.status, ja?.error, ja?.leaseExpiresAt], ['done', null, null]);

      assert.equal(await failExpiredJob(h.db, b, 'worker lease expired', T0 + LEASE + 1), true);
      assert.equal(await finishJob(h.db, b, 'w', { status: 'done' }, T0 + LEASE + 2), false);
      assert.equal((await getJob(h.db, b))?.status, 'failed');

      const c = await enqueue(T0 + 2);
      assert.equal(await finishJob(h.db, c, 'w', { status: 'done' }, T0 + 3), false, 'a queued job is not finishable');
      await claim('w', T0 + 3);
      assert.equal(await finishJob(h.db, c, 'w', { status: 'failed', error: 'disk gone' }, T0 + 4), true);
      assert.deepEqual([(await getJob(h.db, c))?.status, (await getJob(h.db, c))?.error], ['failed', 'disk gone']);
    });

    it('releaseJob hands a held job back to the queue, only for its owner', async () => {
      await reset();
      const id = await enqueue(T0);
      assert.equal(await releaseJob(h.db, id, 'w', T0), false, 'not claimed yet');
      await claim('w', T0);
      assert.equal(await releaseJob(h.db, id, 'other', T0 + 1), false);
      assert.equal(await releaseJob(h.db, id, 'w', T0 + 1), true);
      const j = await getJob(h.db, id);
      assert.deepEqual([j?.status, j?.leaseOwner, j?.leaseExpiresAt], ['queued', null, null]);
      assert.equal(await renewLease(h.db, id, 'w', LEASE, T0 + 2), false);
      const again = await claim('w2', T0 + 3);
      assert.deepEqual([again?.id, again?.attempts], [id, 2]);
    });

    it('lists only running jobs whose lease is over; failExpiredJob is conditional on it', async () => {
      await reset();
      const live = await enqueue(T0);
      const dead = await enqueue(T0 + 1);
      const queued = await enqueue(T0 + 2);
      await claim('live', T0); // expires T0 + LEASE
      await claim('dead', T0 - 1000); // expires T0 + LEASE - 1000
      const at = T0 + LEASE - 500;
      assert.deepEqual((await listExpiredJobs(h.db, at)).map((j) => j.id), [dead]);
      assert.deepEqual((await listExpiredJobs(h.db, T0 + LEASE)).map((j) => j.id), [dead], 'a lease ending exactly now is not expired');
      assert.equal(await failExpiredJob(h.db, live, 'x', at), false, 'a live lease cannot be failed');
      assert.equal(await failExpiredJob(h.db, queued, 'x', at + LEASE * 10), false, 'a queued job is not expired');
      // The dead worker renewed just in time: the reconciler's stale view must not win.
      assert.equal(await renewLease(h.db, dead, 'dead', LEASE, at), true);
      assert.equal(await failExpiredJob(h.db, dead, 'x', at), false);
      assert.equal((await getJob(h.db, dead))?.status, 'running');
      assert.deepEqual(await listExpiredJobs(h.db, at), []);
    });

    it('two reconcilers racing to fail an expired job: exactly one wins', async () => {
      await reset();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await enqueue(T0 + i));
      for (let i = 0; i < 5; i++) await claim('gone', T0);
      const now = T0 + LEASE + 1;
      for (const id of ids) {
        const wins = await Promise.all([failExpiredJob(h.db, id, 'r1', now), failExpiredJob(h.db, id, 'r2', now)]);
        assert.equal(wins.filter(Boolean).length, 1);
      }
      assert.deepEqual(await listExpiredJobs(h.db, now), []);
    });

    it('purges only finished jobs last updated before the cut-off', async () => {
      await reset();
      const done = await enqueue(T0);
      const failed = await enqueue(T0 + 1);
      const recent = await enqueue(T0 + 2);
      const running = await enqueue(T0 + 3);
      const queued = await enqueue(T0 + 4);
      for (let i = 0; i < 4; i++) await claim('w', T0);
      await finishJob(h.db, done, 'w', { status: 'done' }, T0 + 10);
      await finishJob(h.db, failed, 'w', { status: 'failed', error: 'e' }, T0 + 10);
      await finishJob(h.db, recent, 'w', { status: 'done' }, T0 + 20);
      assert.equal(await purgeFinishedJobs(h.db, T0 + 20), 2);
      assert.equal(await getJob(h.db, done), null);
      assert.equal(await getJob(h.db, failed), null);
      for (const id of [recent, running, queued]) assert.ok(await getJob(h.db, id), id);
      assert.equal(await purgeFinishedJobs(h.db, T0 + 20), 0);
    });

    if (kind.name === 'postgres') {
      it('claimers on two separate handles to one database take every job exactly once', async () => {
        await reset();
        const schema = (await sql<{ s: string }>`SELECT current_schema() AS s`.execute(h.db)).rows[0]?.s ?? '';
        const other = await openStore(process.env.LIFEBOAT_TEST_PG ?? '', { schema });
        try {
          const ids = new Set<string>();
          for (let i = 0; i < 60; i++) ids.add(await enqueue(T0 + (i % 5)));
          const claimed = await claimAll([h.db, other.db], 24, (db, n) => claim(`w${n}`, T0 + 100, db));
          assert.deepEqual([...claimed].sort(), [...ids].sort());
        } finally {
          await other.close();
        }
      });
    }
  });
}

describe('job.store (sqlite file, two handles)', () => {
  it('claimers on two handles to one file take every job exactly once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-jobs-'));
    const a = await openStore(`sqlite:${join(dir, 'db.sqlite')}`);
    const b = await openStore(`sqlite:${join(dir, 'db.sqlite')}`);
    try {
      const ids = new Set<string>();
      for (let i = 0; i < 40; i++) ids.add(await enqueueJob(a.db, { kind: 'k', payload: {}, resourceId: 'r', now: T0 + (i % 3) }));
      const claimed = await claimAll([a.db, b.db], 12, (db, n) => claimJob(db, 'sqlite', `w${n}`, LEASE, T0 + 100));
      assert.deepEqual([...claimed].sort(), [...ids].sort());
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Runs `workers` claimers concurrently (spread over the handles) until the queue is empty;
 * fails on any job handed out twice.
 */
async function claimAll<D>(dbs: D[], workers: number, claim: (db: D, n: number) => Promise<Job | null>): Promise<Set<string>> {
  const seen = new Set<string>();
  await Promise.all(
    Array.from({ length: workers }, async (_, n) => {
      const db = dbs[n % dbs.length] as D;
      for (;;) {
        const j = await claim(db, n);
        if (!j) return;
        assert.ok(!seen.has(j.id), `job ${j.id} claimed twice`);
        seen.add(j.id);
      }
    }),
  );
  return seen;
}
