import type { Db, DialectName } from '../store/db.js';
import { claimJob, failExpiredJob, failQueuedJob, finishJob, listExpiredJobs, listQueuedTargetedJobs, releaseJob, renewLease, type Job } from '../store/job.store.js';
import { liveWorkerNodeNames } from '../store/node.store.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import { isJobKind, type JobKind, type JobPayloads } from './kinds.js';

/**
 * The abort reason of a job cut off by a stopping worker once the shutdown grace ran out. The
 * job ends `failed` with this message and its handler's `onLost` repairs the resource, exactly
 * as the reconciler would after a crash, only at once instead of after a lease.
 */
export const SERVICE_RESTARTED = 'service restarted';
export class ServiceRestartedError extends Error {
  constructor() {
    super(SERVICE_RESTARTED);
    this.name = 'ServiceRestartedError';
  }
}

/** A job as its handler sees it: kind and payload typed by jobs/kinds.ts. */
export type KindJob<K extends JobKind> = Omit<Job, 'kind' | 'payload'> & { kind: K; payload: JobPayloads[K] };

export interface JobRunContext {
  /** Aborted when the lease is lost (job cancelled or taken by the reconciler) or the worker stops. */
  signal: AbortSignal;
  log: Logger;
}

/**
 * The handler of one job kind. `run` does the work (it must watch `ctx.signal`). `onLost`
 * repairs the resource when the job's worker died: the job is never re-run silently
 * (ARCHITECTURE invariant "nothing runs twice").
 */
export interface JobHandler<K extends JobKind> {
  readonly kind: K;
  run(job: KindJob<K>, ctx: JobRunContext): Promise<void>;
  /** `reason`: why, when it is not a dead worker (e.g. no live worker serves the job's target node). */
  onLost(job: KindJob<K>, now: number, reason?: string): Promise<void>;
  /**
   * Claimed even while the worker runs its concurrency limit of other jobs. For a job that
   * other running jobs wait for and that itself waits for none of them: a split snapshot's
   * per-host part. Its parent holds a slot on another worker while it waits, so parts held
   * back by the limit could deadlock two hosts whose slots are all parents waiting on each
   * other. How many run is bounded by the parents running in the whole cluster.
   */
  readonly outsideConcurrency?: boolean;
}

/** A handler of any kind; a list of them mixes kinds, each typed by its own `kind`. */
export type AnyJobHandler = { [K in JobKind]: JobHandler<K> }[JobKind];

/**
 * The one place a stored job becomes typed: its kind is checked against the list, and its
 * payload is trusted to be what `enqueue` (jobs/queue.ts) type-checked when it was written.
 */
function asKindJob(job: Job): KindJob<JobKind> | null {
  return isJobKind(job.kind) ? (job as KindJob<JobKind>) : null;
}

export interface RunnerOptions {
  db: Db;
  dialect: DialectName;
  clock: Clock;
  log: Logger;
  owner: string; // node name + pid + random: unique per worker process
  leaseMs: number;
  handlers: AnyJobHandler[];
  /** This worker's node name: it also claims the jobs targeted at this node. */
  nodeName?: string;
  /**
   * A node whose last heartbeat (node registry) is older than this is dead: a queued job
   * targeted at a node with no live worker is failed by the reconciler. Default: leaseMs.
   */
  liveWindowMs?: number;
  concurrency?: number;
  pollMs?: number;
  reconcileMs?: number;
}

export class JobRunner {
  // Each handler's methods take its own kind's job; stored as the widest kind, and fed only jobs
  // of that kind by the lookup below.
  private readonly handlers = new Map<string, JobHandler<JobKind>>();
  private readonly active = new Map<string, { ctl: AbortController; done: Promise<void>; bounded: boolean }>();
  /** The kinds claimed outside the concurrency limit (JobHandler.outsideConcurrency). */
  private readonly unboundedKinds: string[] = [];
  private stopped = true;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  // A wake-up that came while the loop was not sleeping (e.g. mid-claim); the next sleep is skipped.
  private woken = false;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private reconciling: Promise<unknown> | null = null;

  constructor(private readonly o: RunnerOptions) {
    for (const h of o.handlers) {
      if (this.handlers.has(h.kind)) throw new Error(`two handlers for job kind ${h.kind}`);
      this.handlers.set(h.kind, h);
      if (h.outsideConcurrency) this.unboundedKinds.push(h.kind);
    }
  }

  /**
   * Starts claiming, and reconciling: a first round at once, then every `reconcileMs`, each in
   * the background and one at a time. A start-up round is not awaited by the caller on purpose:
   * repairing a lost job can take minutes (an OpenStack restore's cleanup waits for Cinder and
   * Glance), and a restarted service must serve meanwhile; what the repair still holds (the
   * workload's lock) answers 409 until it is done.
   */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.claimLoop();
    const every = this.o.reconcileMs ?? Math.max(1000, Math.floor(this.o.leaseMs / 2));
    this.reconcileInBackground();
    this.reconcileTimer = setInterval(() => this.reconcileInBackground(), every);
    this.reconcileTimer.unref();
  }

  /** One reconcile round unless one is running; stop() waits for it. */
  private reconcileInBackground(): void {
    if (this.reconciling) return;
    this.reconciling = this.reconcile()
      .catch((e) => this.o.log.error({ err: errorMessage(e) }, 'reconcile failed'))
      .finally(() => (this.reconciling = null));
  }

  /** Nudges the claim loop (called after enqueueing in the same process). */
  poke(): void {
    this.nudge();
  }

  private nudge(): void {
    this.woken = true;
    this.wake?.();
  }

  /** Jobs this worker runs right now (the node registry reports it as load). */
  get running(): number {
    return this.active.size;
  }

  /**
   * Stops claiming, lets running jobs finish for up to `graceMs`, then aborts the rest with
   * ServiceRestartedError and waits for them to settle (each is then handed to its `onLost`
   * repair, see execute). Heartbeats go on during the grace, so no other worker's reconciler
   * takes a job that is still finishing here.
   */
  async stop(graceMs = 0): Promise<void> {
    this.stopped = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.nudge();
    // The loop first, so that a claim in flight has settled before the active jobs are aborted;
    // a timer-driven reconcile too, so no repair (onLost) is cut off by the store closing.
    await Promise.all([this.loop, this.reconciling]);
    if (graceMs > 0 && this.active.size > 0) {
      this.o.log.info({ jobs: [...this.active.keys()], graceMs }, 'stopping: waiting for running jobs to finish');
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.allSettled([...this.active.values()].map((a) => a.done)), graceOver]);
      clearTimeout(timer);
    }
    for (const [id, a] of this.active) {
      this.o.log.warn({ jobId: id }, 'stopping: shutdown grace is over, cancelling the job');
      a.ctl.abort(new ServiceRestartedError());
    }
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  /**
   * Fails jobs whose worker is gone (lease expired) and lets their handler repair state.
   * Safe to run from every worker at once: failExpiredJob is conditional, one wins.
   */
  async reconcile(): Promise<number> {
    const now = this.o.clock.now();
    const expired = await listExpiredJobs(this.o.db, now);
    let n = 0;
    for (const job of expired) {
      if (!(await failExpiredJob(this.o.db, job.id, 'worker lease expired', now))) continue;
      n++;
      this.o.log.warn({ jobId: job.id, kind: job.kind, resourceId: job.resourceId }, 'job lost with its worker; not re-running');
      await this.repair(job, now);
    }
    return n + (await this.failUnservedTargets(now));
  }

  /**
   * Queued jobs targeted at a node no live worker serves would wait for ever: failed with a
   * reason naming the node, and repaired like lost ones. Conditional: a job its worker
   * claimed meanwhile is left alone.
   */
  private async failUnservedTargets(now: number): Promise<number> {
    const targeted = await listQueuedTargetedJobs(this.o.db);
    if (targeted.length === 0) return 0;
    const live = await liveWorkerNodeNames(this.o.db, now - (this.o.liveWindowMs ?? this.o.leaseMs));
    let n = 0;
    for (const job of targeted) {
      if (live.has(job.targetNode!) || job.targetNode === this.o.nodeName) continue;
      const reason = `no live Lifeboat worker serves node ${job.targetNode} (a worker with LIFEBOAT_NODE_NAME=${job.targetNode} must run there)`;
      if (!(await failQueuedJob(this.o.db, job.id, reason, now))) continue;
      n++;
      this.o.log.warn({ jobId: job.id, kind: job.kind, targetNode: job.targetNode }, 'queued job failed: its target node has no live worker');
      await this.repair(job, now, reason);
    }
    return n;
  }

  private async repair(job: Job, now: number, reason?: string): Promise<void> {
    const h = this.handlers.get(job.kind);
    const typed = asKindJob(job);
    try {
      if (h && typed) await h.onLost(typed, now, reason);
    } catch (e) {
      this.o.log.error({ jobId: job.id, err: errorMessage(e) }, 'repair after lost job failed');
    }
  }

  private async claimLoop(): Promise<void> {
    const limit = this.o.concurrency ?? 2;
    const pollMs = this.o.pollMs ?? 250;
    while (!this.stopped) {
      this.woken = false;
      let claimed: Job | null = null;
      // At the limit, only the kinds that run outside it (see JobHandler.outsideConcurrency).
      const bounded = [...this.active.values()].filter((a) => a.bounded).length;
      const kinds = bounded < limit ? undefined : this.unboundedKinds;
      if (kinds === undefined || kinds.length > 0) {
        try {
          claimed = await claimJob(this.o.db, this.o.dialect, this.o.owner, this.o.leaseMs, this.o.clock.now(), this.o.nodeName ?? null, kinds);
        } catch (e) {
          this.o.log.error({ err: errorMessage(e) }, 'claiming a job failed');
        }
      }
      if (claimed && this.stopped) {
        // Claimed while stopping: the handler never started, so handing it back is safe.
        await releaseJob(this.o.db, claimed.id, this.o.owner, this.o.clock.now()).catch((e) =>
          this.o.log.error({ jobId: claimed.id, err: errorMessage(e) }, 'handing back a job claimed during stop failed'),
        );
        break;
      }
      if (claimed) {
        this.execute(claimed);
        continue;
      }
      if (this.woken || this.stopped) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  private execute(job: Job): void {
    const ctl = new AbortController();
    const log = this.o.log.child({ jobId: job.id, kind: job.kind, resourceId: job.resourceId });
    const heartbeatEvery = Math.max(100, Math.floor(this.o.leaseMs / 3));
    const hb = setInterval(() => {
      renewLease(this.o.db, job.id, this.o.owner, this.o.leaseMs, this.o.clock.now())
        .then((held) => {
          if (!held) ctl.abort(new Error('job lease lost'));
        })
        .catch((e) => log.warn({ err: errorMessage(e) }, 'heartbeat failed'));
    }, heartbeatEvery);
    const done = (async () => {
      const h = this.handlers.get(job.kind);
      const typed = asKindJob(job);
      try {
        if (!h || !typed) throw new Error(`no handler for job kind ${job.kind}`);
        await h.run(typed, { signal: ctl.signal, log });
        if (ctl.signal.reason instanceof ServiceRestartedError) await this.handOver(job, log);
        else await finishJob(this.o.db, job.id, this.o.owner, { status: 'done' }, this.o.clock.now());
      } catch (e) {
        if (ctl.signal.reason instanceof ServiceRestartedError) await this.handOver(job, log);
        else {
          log.error({ err: errorMessage(e) }, 'job failed');
          await finishJob(this.o.db, job.id, this.o.owner, { status: 'failed', error: errorMessage(e) }, this.o.clock.now()).catch(() => undefined);
        }
      } finally {
        clearInterval(hb);
        this.active.delete(job.id);
        this.nudge();
      }
    })();
    this.active.set(job.id, { ctl, done, bounded: !this.handlers.get(job.kind)?.outsideConcurrency });
  }

  /**
   * A job cut off by shutdown: failed with "service restarted" (conditional on this worker
   * still holding it), then its handler's repair runs here and now, as the reconciler's would.
   * The repair is idempotent: it changes nothing the cancelled handler already settled.
   */
  private async handOver(job: Job, log: Logger): Promise<void> {
    const now = this.o.clock.now();
    const held = await finishJob(this.o.db, job.id, this.o.owner, { status: 'failed', error: SERVICE_RESTARTED }, now).catch((e: unknown) => {
      log.error({ err: errorMessage(e) }, 'failing a job cut off by shutdown failed; the reconciler takes it after its lease');
      return false;
    });
    if (!held) return;
    log.warn('job cut off by shutdown; repaired as lost, not re-run');
    const h = this.handlers.get(job.kind);
    const typed = asKindJob(job);
    try {
      if (h && typed) await h.onLost(typed, now);
    } catch (e) {
      log.error({ err: errorMessage(e) }, 'repair after a job cut off by shutdown failed');
    }
  }
}
