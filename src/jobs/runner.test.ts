import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';
import { JobRunner, type AnyJobHandler, type JobHandler, type KindJob, type RunnerOptions } from './runner.js';
import { storeKinds, type StoreKind } from '../store/testing.js';
import { openStore, type Db, type StoreHandle } from '../store/db.js';
import { claimJob, enqueueJob, getJob } from '../store/job.store.js';
import { insertNode } from '../store/node.store.js';
import { ManualClock } from '../lib/clock.js';
import { silentLogger } from '../lib/logger.js';

const LEASE = 300; // the runner heartbeats every max(100, lease/3) ms of real time

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The kind the probe handles in these tests (any kind of the list would do). */
const PROBE = 'workload.create';
type ProbeJob = KindJob<typeof PROBE>;

/** A handler whose runs the test drives: each run waits for `release(id)` (or its signal). */
class Probe implements JobHandler<typeof PROBE> {
  readonly kind = PROBE;
  readonly runs: ProbeJob[] = [];
  readonly lost: ProbeJob[] = [];
  readonly settled = new Set<string>();
  readonly signals = new Map<string, AbortSignal>();
  running = 0;
  maxRunning = 0;
  private readonly gates = new Map<string, ReturnType<typeof deferred<'ok' | Error>>>();
  constructor(private readonly body?: (job: ProbeJob, signal: AbortSignal) => Promise<void>) {}

  release(id: string, outcome: 'ok' | Error = 'ok'): void {
    this.gate(id).resolve(outcome);
  }

  private gate(id: string) {
    let g = this.gates.get(id);
    if (!g) this.gates.set(id, (g = deferred<'ok' | Error>()));
    return g;
  }

  async run(job: ProbeJob, ctx: { signal: AbortSignal }): Promise<void> {
    this.runs.push(job);
    this.signals.set(job.id, ctx.signal);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      if (this.body) return await this.body(job, ctx.signal);
      const aborted = new Promise<never>((_, reject) => {
        const fail = () => reject(ctx.signal.reason as Error);
        if (ctx.signal.aborted) fail();
        else ctx.signal.addEventListener('abort', fail, { once: true });
      });
      const outcome = await Promise.race([this.gate(job.id).promise, aborted]);
      if (outcome instanceof Error) throw outcome;
    } finally {
      this.running--;
      this.settled.add(job.id);
    }
  }

  async onLost(job: ProbeJob): Promise<void> {
    this.lost.push(job);
  }
}

/** Holds the result of the next query run through the plugged Db until released. */
class Gate implements KyselyPlugin {
  private armed: { hit: ReturnType<typeof deferred<void>>; go: ReturnType<typeof deferred<void>> } | null = null;
  arm() {
    const a = { hit: deferred<void>(), go: deferred<void>() };
    this.armed = a;
    return { hit: a.hit.promise, release: () => a.go.resolve() };
  }
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const a = this.armed;
    if (a) {
      this.armed = null;
      a.hit.resolve();
      await a.go.promise;
    }
    return args.result;
  }
}

/**
 * Two handles on one database: the runner's (`db`) and the test's (`aux`). The gate tests hold
 * a runner query open, which on SQLite holds that handle's only connection.
 */
async function openPair(kind: StoreKind): Promise<{ db: StoreHandle; aux: StoreHandle; close(): Promise<void> }> {
  if (kind.name === 'postgres') {
    const h = await kind.open();
    return { db: h, aux: h, close: () => h.close() };
  }
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-runner-'));
  const db = await openStore(`sqlite:${join(dir, 'db.sqlite')}`);
  const aux = await openStore(`sqlite:${join(dir, 'db.sqlite')}`);
  return {
    db,
    aux,
    async close() {
      await db.close();
      await aux.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

for (const kind of storeKinds()) {
  describe(`JobRunner (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let clock: ManualClock;
    const runners: JobRunner[] = [];
    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });
    afterEach(async () => {
      await Promise.all(runners.splice(0).map((r) => r.stop()));
      await h.db.deleteFrom('jobs').execute();
    });

    function runner(over: Partial<RunnerOptions> & { handlers: AnyJobHandler[] }, db: Db = h.db): JobRunner {
      const r = new JobRunner({ db, dialect: h.dialect, clock, log: silentLogger, owner: `w-${runners.length}`, leaseMs: LEASE, pollMs: 10, reconcileMs: 60_000, ...over });
      runners.push(r);
      return r;
    }
    const enqueue = (kindName: string = PROBE, db: Db = h.db) => enqueueJob(db, { kind: kindName, payload: { workloadId: 'res-1' }, resourceId: 'res-1', now: clock.now() });
    const status = async (id: string, db: Db = h.db) => (await getJob(db, id))?.status;

    it('runs a handler and marks its job done', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const id = await enqueue();
      runner({ handlers: [p] }).start();
      await waitFor('handler start', () => p.runs.length === 1);
      assert.deepEqual(p.runs[0]?.payload, { workloadId: 'res-1' });
      assert.equal(await status(id), 'running');
      p.release(id);
      await waitFor('done', async () => (await status(id)) === 'done');
      assert.equal((await getJob(h.db, id))?.error, null);
    });

    it('a job targeted at a node runs only on the runner of that node; two handlers for one kind are refused', async () => {
      clock = new ManualClock();
      const onA = new Probe();
      const onB = new Probe();
      const id = await enqueueJob(h.db, { kind: PROBE, payload: { workloadId: 'res-1' }, resourceId: 'res-1', now: clock.now(), targetNode: 'host-b' });
      // host-b is a live worker in the node registry, as app.ts registers it; else host-a's
      // start-up reconcile rightly fails the job as unserved before host-b claims it.
      const t = clock.now();
      await insertNode(h.db, { id: `host-b:${t}`, node_name: 'host-b', role: 'worker', pid: 1, version: 't', settings_key_id: 'k', status: 'up', running_jobs: 0, concurrency: 1, loadavg: 0, started_at: t, heartbeat_at: t });
      runner({ handlers: [onA], nodeName: 'host-a' }).start();
      runner({ handlers: [onB], nodeName: 'host-b' }).start();
      await waitFor('host-b runs it', () => onB.runs.length === 1);
      onB.release(id);
      await waitFor('done', async () => (await status(id)) === 'done');
      assert.equal(onA.runs.length, 0);
      assert.throws(() => runner({ handlers: [new Probe(), new Probe()] }), /two handlers for job kind workload\.create/);
    });

    it('a throwing handler fails the job with its message; an unknown kind fails too', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const bad = await enqueue();
      const orphan = await enqueue('nobody-handles-this');
      runner({ handlers: [p] }).start();
      await waitFor('handler start', () => p.runs.length === 1);
      p.release(bad, new Error('disk vanished'));
      await waitFor('failed', async () => (await status(bad)) === 'failed' && (await status(orphan)) === 'failed');
      assert.equal((await getJob(h.db, bad))?.error, 'disk vanished');
      assert.equal((await getJob(h.db, orphan))?.error, 'no handler for job kind nobody-handles-this');
    });

    it("heartbeats keep a long job's lease alive far past the lease length", async () => {
      clock = new ManualClock();
      const p = new Probe();
      const reconciler = runner({ handlers: [p] });
      const id = await enqueue();
      runner({ handlers: [p] }).start();
      await waitFor('handler start', () => p.runs.length === 1);
      for (let step = 0; step < 6; step++) {
        clock.advance((LEASE * 2) / 3);
        const want = clock.now() + LEASE;
        await waitFor(`heartbeat ${step}`, async () => (await getJob(h.db, id))?.leaseExpiresAt === want);
        assert.equal(await reconciler.reconcile(), 0);
      }
      assert.ok(clock.now() - (p.runs[0]?.createdAt ?? 0) >= 4 * LEASE);
      assert.equal(p.signals.get(id)?.aborted, false);
      p.release(id);
      await waitFor('done', async () => (await status(id)) === 'done');
      assert.deepEqual(p.lost, []);
    });

    it('a job whose worker died is failed once, onLost runs once across two reconcilers, and it never runs', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const a = runner({ handlers: [p] });
      const b = runner({ handlers: [p] });
      const id = await enqueue();
      assert.equal((await claimJob(h.db, h.dialect, 'dead-worker', LEASE, clock.now()))?.id, id);
      assert.equal(await a.reconcile(), 0, 'lease still valid');
      clock.advance(LEASE + 1);
      const counts = await Promise.all([a.reconcile(), b.reconcile(), a.reconcile(), b.reconcile()]);
      assert.equal(counts.reduce((x, y) => x + y, 0), 1);
      assert.deepEqual(p.lost.map((j) => j.id), [id]);
      const j = await getJob(h.db, id);
      assert.deepEqual([j?.status, j?.error, j?.leaseOwner], ['failed', 'worker lease expired', 'dead-worker']);
      // Both runners now claim; a later job runs, the lost one (older, so first in line if it were re-queued) does not.
      a.start();
      b.start();
      const next = await enqueue();
      await waitFor('next job start', () => p.runs.length > 0);
      p.release(next);
      await waitFor('next job done', async () => (await status(next)) === 'done');
      assert.deepEqual(p.runs.map((r) => r.id), [next]);
      assert.equal(p.lost.length, 1);
    });

    it('started runners reconcile on their timers: one onLost for a dead worker', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const id = await enqueue();
      await claimJob(h.db, h.dialect, 'dead-worker', LEASE, clock.now());
      for (let i = 0; i < 3; i++) runner({ handlers: [p], reconcileMs: 15 }).start();
      clock.advance(LEASE + 1);
      await waitFor('onLost', () => p.lost.length > 0);
      await new Promise((r) => setTimeout(r, 100)); // several more reconcile rounds on each runner
      assert.deepEqual(p.lost.map((j) => j.id), [id]);
      assert.deepEqual(p.runs, []);
      assert.equal(await status(id), 'failed');
    });

    it('start() reconciles at once in the background: a slow repair of a lost job holds back neither start nor new jobs', async () => {
      clock = new ManualClock();
      const repairDone = deferred();
      const p = new Probe();
      p.onLost = async (job) => {
        p.lost.push(job);
        await repairDone.promise; // an OpenStack cleanup waiting on Cinder, say
      };
      const lostId = await enqueue();
      await claimJob(h.db, h.dialect, 'dead-worker', LEASE, clock.now());
      clock.advance(LEASE + 1);
      const r = runner({ handlers: [p], reconcileMs: 60_000 }); // no timer round within the test
      r.start();
      await waitFor('the first round, without waiting for the timer', () => p.lost.length === 1);
      const next = await enqueue();
      await waitFor('a new job runs while the repair still waits', () => p.runs.some((j) => j.id === next));
      p.release(next);
      await waitFor('new job done', async () => (await status(next)) === 'done');
      assert.equal(await status(lostId), 'failed');
      repairDone.resolve();
    });

    it('a worker that lost its lease aborts its handler and does not overwrite the outcome', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const id = await enqueue();
      runner({ handlers: [p] }).start();
      await waitFor('handler start', () => p.runs.length === 1);
      // Another worker's reconciler took the job while this one was paused.
      await h.db.updateTable('jobs').set({ status: 'failed', error: 'worker lease expired', lease_expires_at: null }).where('id', '=', id).execute();
      await waitFor('abort', () => p.signals.get(id)?.aborted === true);
      assert.match(String((p.signals.get(id)?.reason as Error).message), /lease lost/);
      await waitFor('settled', () => p.settled.has(id));
      await new Promise((r) => setTimeout(r, 30));
      const j = await getJob(h.db, id);
      assert.deepEqual([j?.status, j?.error], ['failed', 'worker lease expired']);
    });

    it('stop() without grace cancels running handlers at once, waits until they settle and hands each to onLost ("service restarted")', async () => {
      clock = new ManualClock();
      let cleanedUp = false;
      const p = new Probe(async (_job, signal) => {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        await new Promise((r) => setTimeout(r, 50)); // cleanup after abort takes a while
        cleanedUp = true;
        throw signal.reason;
      });
      const id = await enqueue();
      const r = runner({ handlers: [p] });
      r.start();
      await waitFor('handler start', () => p.runs.length === 1);
      await r.stop();
      assert.equal(cleanedUp, true);
      assert.equal(String((p.signals.get(id)?.reason as Error).message), 'service restarted');
      const j = await getJob(h.db, id);
      assert.deepEqual([j?.status, j?.error], ['failed', 'service restarted']);
      assert.deepEqual(p.lost.map((x) => x.id), [id], 'repaired like a lost job, once');
      // stopped: nothing more is claimed
      const later = await enqueue();
      r.poke();
      await new Promise((res) => setTimeout(res, 50));
      assert.equal(await status(later), 'queued');
    });

    it('stop(grace): no new claim, a running job that finishes inside the grace ends done; one that does not is cancelled when the grace is over', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const quick = await enqueue();
      const slow = await enqueue();
      const r = runner({ handlers: [p], concurrency: 2 });
      r.start();
      await waitFor('both start', () => p.runs.length === 2);
      assert.equal(r.running, 2);
      const queuedLater = await enqueue();
      const t0 = Date.now();
      let stopped = false;
      const stopping = r.stop(600).then(() => (stopped = true));
      p.release(quick);
      await waitFor('quick done', async () => (await status(quick)) === 'done');
      assert.equal(p.signals.get(slow)?.aborted, false, 'still inside the grace');
      assert.equal(stopped, false);
      await stopping;
      assert.ok(Date.now() - t0 >= 550, 'the grace was waited out');
      assert.equal(String((p.signals.get(slow)?.reason as Error).message), 'service restarted');
      const j = await getJob(h.db, slow);
      assert.deepEqual([j?.status, j?.error], ['failed', 'service restarted']);
      assert.deepEqual(p.lost.map((x) => x.id), [slow]);
      assert.equal(await status(queuedLater), 'queued', 'nothing claimed while stopping');
      assert.equal(p.runs.length, 2);
    });

    it('stop() waits for a timer-driven repair (onLost) in progress', async () => {
      clock = new ManualClock();
      const repairing = deferred<void>();
      const finishRepair = deferred<void>();
      let repaired = false;
      const p = new Probe();
      p.onLost = async () => {
        repairing.resolve();
        await finishRepair.promise;
        repaired = true;
      };
      await enqueue();
      await claimJob(h.db, h.dialect, 'dead-worker', LEASE, clock.now());
      clock.advance(LEASE + 1);
      const r = runner({ handlers: [p], reconcileMs: 10 });
      r.start();
      await repairing.promise;
      let stopped = false;
      const stopping = r.stop().then(() => (stopped = true));
      await new Promise((res) => setTimeout(res, 40));
      assert.equal(stopped, false, 'stop() returned while a repair was still running');
      finishRepair.resolve();
      await stopping;
      assert.equal(repaired, true);
    });

    it('respects the concurrency limit', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(await enqueue());
        clock.advance(1);
      }
      runner({ handlers: [p], concurrency: 2, pollMs: 5 }).start();
      await waitFor('two running', () => p.running === 2);
      await new Promise((r) => setTimeout(r, 80)); // many poll rounds with free jobs waiting
      assert.equal(p.maxRunning, 2);
      assert.deepEqual(p.runs.map((j) => j.id), ids.slice(0, 2), 'oldest first');
      for (const id of ids) p.release(id);
      await waitFor('all done', async () => (await Promise.all(ids.map((i) => status(i)))).every((s) => s === 'done'));
      assert.equal(p.maxRunning, 2);
      assert.equal(p.runs.length, 5);
    });

    it('poke() wakes an idle loop at once', async () => {
      clock = new ManualClock();
      const p = new Probe();
      const r = runner({ handlers: [p], pollMs: 60_000 });
      r.start();
      await new Promise((res) => setTimeout(res, 30)); // first claim found nothing; now sleeping
      const id = await enqueue();
      r.poke();
      await waitFor('poked job start', () => p.runs.length === 1, 1500);
      p.release(id);
      await waitFor('done', async () => (await status(id)) === 'done', 1500);
    });

    describe('races with an in-flight claim', () => {
      it('a poke that arrives while a claim is in flight is not lost', async () => {
        clock = new ManualClock();
        const pair = await openPair(kind);
        try {
          const gate = new Gate();
          const p = new Probe();
          const r = runner({ handlers: [p], pollMs: 60_000, db: pair.db.db.withPlugin(gate), dialect: pair.db.dialect });
          r.start();
          await new Promise((res) => setTimeout(res, 30));
          const g = gate.arm();
          r.poke();
          await g.hit; // the claim saw an empty queue and is about to return
          const id = await enqueue(PROBE, pair.aux.db);
          r.poke();
          g.release();
          await waitFor('poked job start', () => p.runs.length === 1, 1500);
          p.release(id);
          await waitFor('done', async () => (await status(id, pair.aux.db)) === 'done', 1500);
          await r.stop();
        } finally {
          await pair.close();
        }
      });

      it('stop() during an in-flight claim starts nothing and hands the claimed job back', async () => {
        clock = new ManualClock();
        const pair = await openPair(kind);
        try {
          const gate = new Gate();
          const p = new Probe();
          const r = runner({ handlers: [p], pollMs: 60_000, db: pair.db.db.withPlugin(gate), dialect: pair.db.dialect });
          r.start();
          await new Promise((res) => setTimeout(res, 30));
          const id = await enqueue(PROBE, pair.aux.db);
          const g = gate.arm();
          r.poke();
          await g.hit;
          const stopping = r.stop();
          g.release();
          await stopping;
          // Nothing of the runner may outlive stop(); the job it claimed but never started is
          // handed back for another worker rather than failed.
          assert.equal(p.running, 0);
          assert.deepEqual(p.runs, []);
          const j = await getJob(pair.aux.db, id);
          assert.deepEqual([j?.status, j?.leaseOwner, j?.leaseExpiresAt], ['queued', null, null]);
        } finally {
          await pair.close();
        }
      });
    });
  });
}
