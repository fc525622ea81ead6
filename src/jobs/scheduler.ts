import type { TargetCatalog } from '../lib/target.js';
import { inTransaction, type Db, type Tx } from '../store/db.js';
import { getWorkload } from '../store/workload.store.js';
import { startSnapshot } from '../services/snapshot-start.service.js';
import {
  claimScheduledRun,
  deleteOrphanScheduleStates,
  getGlobalJobScheduler,
  incrementalsSinceFull,
  insertScheduleState,
  listScheduleCandidates,
  recordScheduleOutcome,
  replanSchedule,
  type ScheduleCandidate,
} from '../store/scheduler.store.js';
import { intervalMs, nextRunMs, scheduleKey, scheduledSnapshotType } from '../domain/jobschedule.js';
import { DEFAULT_DESCRIPTION, type Workload } from '../domain/workload.js';
import type { Snapshot } from '../domain/snapshot.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage, ForbiddenError } from '../lib/errors.js';
import { formatWireTime, toSecond } from '../lib/time.js';

/** Name of every scheduled snapshot (workloadmgr-api §3.2; tempest's is_schedule_running looks for it). */
export const SCHEDULED_SNAPSHOT_NAME = 'jobscheduler';

export interface SchedulerOptions {
  db: Db;
  clock: Clock;
  log: Logger;
  /** Where snapshots are stored, for the snapshot's backup_media_target record. */
  targets: TargetCatalog;
  /** Longest sleep between ticks (schedule edits by other processes are seen this late). */
  pollMs?: number;
  /**
   * A due run found later than this (workers were down, the loop stalled) is skipped, not
   * fired late; capped at half the workload's interval so a late run never lands next to the
   * following one. Default 10 minutes.
   */
  misfireGraceMs?: number;
  /** Called after a tick queued snapshot jobs (e.g. JobRunner.poke in the same process). */
  onQueued?: () => void;
}

export type TickOutcome =
  | { workloadId: string; kind: 'fired'; snapshotId: string; type: 'full' | 'incremental'; due: number }
  | { workloadId: string; kind: 'skipped'; reason: string; due: number };

export interface TickReport {
  outcomes: TickOutcome[];
  /** Earliest planned run after this tick (epoch ms), null when nothing is planned. */
  nextDueAt: number | null;
}

/**
 * Fires scheduled snapshots (workloadmgr-api §3.2, reliability D17). Runs in every worker
 * process; all of them may tick at once. Per workload a plan row holds `next_run_at`; a due run
 * is claimed by a conditional update that moves it to the next future slot, in the same
 * transaction as the snapshot it starts (workload lock + snapshot row + job, exactly like
 * `POST /workloads/{id}`), so one slot gives at most one snapshot whatever the number of
 * schedulers, and a crash between claim and snapshot loses the slot rather than doubling it.
 *
 * Plans follow the stored jobschedule: when its timing fields change (edit, pause, resume) the
 * plan is recomputed from "now", and a claim always moves to the first slot after now, so runs
 * missed while everything was down are never replayed as a burst.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = true;

  constructor(private readonly o: SchedulerOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.arm(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private arm(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.loopOnce(), Math.max(0, delayMs));
    this.timer.unref();
  }

  private async loopOnce(): Promise<void> {
    this.timer = null;
    const poll = this.o.pollMs ?? 15_000;
    let wait = poll;
    const run = this.tick()
      .then((r) => {
        // Wake exactly at the next due slot when it comes before the next poll, so a snapshot's
        // created_at is its slot time (tempest compares the spacing of scheduled snapshots).
        if (r.nextDueAt !== null) wait = Math.min(poll, Math.max(0, r.nextDueAt - this.o.clock.now()));
      })
      .catch((e: unknown) => this.o.log.error({ err: errorMessage(e) }, 'scheduler tick failed'));
    this.running = run;
    await run;
    this.running = null;
    this.arm(wait);
  }

  /** One pass over every workload: plan new or changed schedules, fire or skip due runs. */
  async tick(): Promise<TickReport> {
    const { db, clock } = this.o;
    const now = clock.now();
    const outcomes: TickOutcome[] = [];
    let nextDueAt: number | null = null;
    const globalOn = await getGlobalJobScheduler(db);
    const candidates = await listScheduleCandidates(db);
    for (const c of candidates) {
      try {
        const planned = await this.visit(c, now, globalOn, outcomes);
        if (planned !== null && (nextDueAt === null || planned < nextDueAt)) nextDueAt = planned;
      } catch (e) {
        this.o.log.error({ workloadId: c.workloadId, err: errorMessage(e) }, 'scheduler: workload skipped after an error');
      }
    }
    await deleteOrphanScheduleStates(db);
    if (outcomes.some((x) => x.kind === 'fired')) this.o.onQueued?.();
    return { outcomes, nextDueAt };
  }

  /** Returns the workload's next planned run after this visit (null: none). */
  private async visit(c: ScheduleCandidate, now: number, globalOn: boolean, outcomes: TickOutcome[]): Promise<number | null> {
    const { db } = this.o;
    const s = c.jobschedule;
    const key = scheduleKey(s);
    const plan = () => (s.enabled ? nextRunMs(s, now) : null);
    if (!c.state) {
      const next = plan();
      await insertScheduleState(db, c.workloadId, key, next, now);
      return next;
    }
    if (c.state.scheduleKey !== key) {
      const next = plan();
      await replanSchedule(db, c.workloadId, c.state.scheduleKey, key, next, now);
      return next;
    }
    const due = c.state.nextRunAt;
    if (due === null) return null;
    if (due > now) return due;

    const next = nextRunMs(s, now);
    const grace = Math.min(this.o.misfireGraceMs ?? 10 * 60_000, Math.floor(intervalMs(s.interval) / 2));
    const late = now - due;
    const skipReason = !globalOn
      ? 'global job scheduler is disabled'
      : late > grace
        ? `missed (found ${Math.round(late / 1000)} s late; scheduler or workers were not running)`
        : null;
    const outcome = await inTransaction(db, async (tx): Promise<TickOutcome | null> => {
      if (!(await claimScheduledRun(tx, c.workloadId, key, due, next, now))) return null; // another scheduler has it
      const skip = async (reason: string): Promise<TickOutcome> => {
        await recordScheduleOutcome(tx, c.workloadId, { note: `Scheduled snapshot at ${formatWireTime(due)} skipped: ${reason}` }, toSecond(now));
        return { workloadId: c.workloadId, kind: 'skipped', reason, due };
      };
      if (skipReason) return skip(skipReason);
      // The switch may have flipped since the tick began; read it under the claim.
      if (!(await getGlobalJobScheduler(tx))) return skip('global job scheduler is disabled');
      const w = await getWorkload(tx, { admin: true }, c.workloadId);
      if (!w) return null;
      const snap = await this.startScheduled(tx, w, now);
      if (typeof snap === 'string') return skip(snap);
      await recordScheduleOutcome(tx, w.id, { snapshotId: snap.id }, toSecond(now));
      return { workloadId: w.id, kind: 'fired', snapshotId: snap.id, type: snap.snapshot_type, due };
    });
    if (outcome) {
      outcomes.push(outcome);
      if (outcome.kind === 'fired') this.o.log.info({ workloadId: c.workloadId, snapshotId: outcome.snapshotId, type: outcome.type, due }, 'scheduled snapshot started');
      else this.o.log.warn({ workloadId: c.workloadId, due, reason: outcome.reason }, 'scheduled snapshot skipped');
    }
    return next;
  }

  /**
   * The scheduled snapshot of a due slot, through the one snapshot-start use case (the same as
   * `POST /workloads/{id}`). A refusal is returned as the skip reason: the workload is busy, or
   * over its Snapshots or Storage quota (the slot is consumed, not retried every tick).
   */
  private async startScheduled(tx: Tx, w: Workload, now: number): Promise<Snapshot | string> {
    const type = scheduledSnapshotType(w.jobschedule.fullbackup_interval, await incrementalsSinceFull(tx, w.id));
    try {
      const snap = await startSnapshot(tx, {
        workload: w,
        userId: w.user_id,
        name: SCHEDULED_SNAPSHOT_NAME,
        description: DEFAULT_DESCRIPTION,
        type,
        isScheduled: true,
        createdAt: toSecond(now),
        targets: this.o.targets,
      });
      return snap ?? `workload is ${w.status}`;
    } catch (e) {
      if (e instanceof ForbiddenError) return e.message;
      throw e;
    }
  }
}
