import type { Db, DbOrTx } from '../store/db.js';
import { getWorkload } from '../store/workload.store.js';
import { getGlobalJobScheduler, setGlobalJobScheduler, swapJobSchedule } from '../store/scheduler.store.js';
import { nextRunMs } from '../domain/jobschedule.js';
import type { JobSchedule } from '../domain/workload.js';
import type { RequestContext } from '../domain/context.js';
import type { Clock } from '../lib/clock.js';
import { ConflictError, NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';

/** workloadmgr's exact text (tempest F14 compares it). */
export const GLOBAL_SCHEDULER_DISABLED_MESSAGE = 'Cannot update scheduler related fields when global jobscheduler is disabled.';

/**
 * Guard for workload create/modify (workloadmgr-api §4.1.5): while the global job scheduler is
 * disabled no jobschedule field may change. `changed` is mergeJobSchedule's list of keys given;
 * only keys whose value really differs count, so a client echoing the current schedule (or
 * sending `{}`, as tempest does on every modify) is not refused. For create, pass
 * `defaultJobSchedule(now)` as `before`.
 */
export async function assertScheduleChangeAllowed(db: DbOrTx, before: JobSchedule, after: JobSchedule, changed: readonly string[]): Promise<void> {
  const effective = changed.filter((k) => before[k as keyof JobSchedule] !== after[k as keyof JobSchedule]);
  if (effective.length === 0) return;
  if (!(await getGlobalJobScheduler(db))) throw new ValidationError(GLOBAL_SCHEDULER_DISABLED_MESSAGE);
}

/**
 * What the workload detail view derives from the schedule (§2.2): the global switch and the
 * seconds until the next run, null while the workload's schedule or the global scheduler is
 * off or the schedule has ended (the view then omits `nextrun` and reports `enabled: false`).
 */
export function scheduleViewFields(schedule: JobSchedule, globalJobScheduler: boolean, nowMs: number): { globalJobScheduler: boolean; nextRunSeconds: number | null } {
  const next = schedule.enabled && globalJobScheduler ? nextRunMs(schedule, nowMs) : null;
  return { globalJobScheduler, nextRunSeconds: next === null ? null : Math.max(0, Math.round((next - nowMs) / 10) / 100) };
}

export interface SchedulerServiceDeps {
  db: Db;
  clock: Clock;
}

/** Global job scheduler switch (§4.5) and per-workload pause/resume (§4.1.9). */
export class SchedulerService {
  constructor(private readonly deps: SchedulerServiceDeps) {}

  private now(): number {
    return toSecond(this.deps.clock.now());
  }

  async globalEnabled(): Promise<boolean> {
    return getGlobalJobScheduler(this.deps.db);
  }

  /** Persists the switch (a DB row: survives restarts and is shared by every process). */
  async setGlobal(ctx: RequestContext, enabled: boolean): Promise<boolean> {
    await setGlobalJobScheduler(this.deps.db, enabled, this.now(), ctx.userId);
    return enabled;
  }

  /** `POST /workloads/{id}/pause`: stored `enabled` → false (no-op when already paused). */
  pause(ctx: RequestContext, id: string): Promise<void> {
    return this.setEnabled(ctx, id, false);
  }

  /** `POST /workloads/{id}/resume`: stored `enabled` → true; the next run is planned from now. */
  resume(ctx: RequestContext, id: string): Promise<void> {
    return this.setEnabled(ctx, id, true);
  }

  /**
   * Compare-and-swap on the stored jobschedule, so a concurrent modify is neither lost nor
   * overwritten. Refused like a schedule edit while the global scheduler is disabled.
   */
  private async setEnabled(ctx: RequestContext, id: string, enabled: boolean): Promise<void> {
    const scope = { projectId: ctx.projectId };
    for (let attempt = 0; attempt < 5; attempt++) {
      const w = isUuid(id) ? await getWorkload(this.deps.db, scope, id.toLowerCase()) : null;
      if (!w) throw NotFoundError.of('Workload', id);
      if (w.jobschedule.enabled === enabled) return;
      const after = { ...w.jobschedule, enabled };
      await assertScheduleChangeAllowed(this.deps.db, w.jobschedule, after, ['enabled']);
      if (await swapJobSchedule(this.deps.db, w.id, w.jobschedule, after, this.now())) return;
    }
    throw new ConflictError('The workload was modified concurrently; try again');
  }
}
