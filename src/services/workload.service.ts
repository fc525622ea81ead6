import type { Db, DbOrTx } from '../store/db.js';
import { activeJobsOfWorkload } from '../store/job.store.js';
import { inTransaction } from '../store/db.js';
import {
  findMemberships,
  getWorkload,
  insertWorkload,
  isMemberConflict,
  listWorkloads,
  replaceMembers,
  transitionWorkload,
  updateWorkloadFields,
  type Scope,
} from '../store/workload.store.js';
import { countLiveSnapshots, workloadStorageUsage, type StorageUsage } from '../store/snapshot.store.js';
import { WORKLOAD_JOBS } from '../jobs/kinds.js';
import { enqueue } from '../jobs/queue.js';
import type { Platform } from '../platform/platform.js';
import type { Clock } from '../lib/clock.js';
import type { RequestContext } from '../domain/context.js';
import { encryptionConflict, type Workload, type WorkloadMember, type WorkloadStatus } from '../domain/workload.js';
import { defaultJobSchedule, mergeJobSchedule, type JobScheduleChanges } from '../domain/jobschedule.js';
import { InvalidStateError, NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid, newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { workloadPolicyOnCreate, workloadPolicyOnModify } from './policy.service.js';
import { assertScheduleChangeAllowed, scheduleViewFields } from './scheduler.service.js';
import { getGlobalJobScheduler } from '../store/scheduler.store.js';
import { enforceWorkloadQuotas } from './quota.service.js';
import { cancelJobsInFlight, describeJob } from './job-cancel.service.js';
import type { TargetCatalog } from '../lib/target.js';
import { schedulerTrustOf, type SchedulerTrust } from './trust.service.js';
import type { PageRequest } from '../domain/page.js';
import { pageWindow } from './page.js';

export interface WorkloadServiceDeps {
  db: Db;
  platform: Platform;
  clock: Clock;
  /** The configured backup targets; absent: only the default may be chosen. */
  targets?: TargetCatalog;
}

export interface WorkloadDetail {
  workload: Workload;
  /** Name of the backup target its snapshots go to (a stored null resolved to the default). */
  backupTarget: string | null;
  storageUsage: StorageUsage;
  globalJobScheduler: boolean;
  nextRunSeconds: number | null;
  /** What scheduled runs act through (null: the platform has no delegation). */
  schedulerTrust: SchedulerTrust | null;
}

/** A workload create, checked for shape by http/ (workload.commands.ts). */
export interface CreateWorkloadCommand {
  name: string;
  description: string;
  workloadTypeId: string;
  sourcePlatform: string;
  /** Unique instance ids, in request order. */
  instanceIds: string[];
  jobschedule: JobScheduleChanges;
  metadata: Record<string, string>;
  /** The backup target (type) named in `backup_target_types`; null: the default. */
  backupTarget?: string | null;
  /** An encrypted workload (its snapshots sealed under its own data key); absent: plain. */
  encryption?: boolean;
  /** The Barbican secret named at create (recorded). */
  secretUuid?: string;
}

/** A workload modify: only what is present changes (metadata merges into the stored map). */
export interface ModifyWorkloadCommand {
  name?: string;
  description?: string;
  jobschedule: JobScheduleChanges;
  metadata?: Record<string, string>;
  instanceIds?: string[];
}

export function ownScope(ctx: RequestContext): Scope {
  return { projectId: ctx.projectId };
}

/**
 * Workload use cases. Every state change is a conditional update; async completion (create →
 * available, reset, delete) runs as a durable job enqueued in the same transaction.
 */
export class WorkloadService {
  constructor(private readonly deps: WorkloadServiceDeps) {}

  private now(): number {
    return toSecond(this.deps.clock.now());
  }

  async list(ctx: RequestContext, opts: { all: boolean; projectId?: string; page?: PageRequest }): Promise<Workload[]> {
    const scope: Scope = opts.all ? { admin: true } : ownScope(ctx);
    return listWorkloads(this.deps.db, scope, opts.projectId ? { projectId: opts.projectId } : {}, await pageWindow(this.deps.db, 'workloads', scope, opts.page));
  }

  async get(ctx: RequestContext, id: string): Promise<Workload> {
    const w = isUuid(id) ? await getWorkload(this.deps.db, ownScope(ctx), id.toLowerCase()) : null;
    if (!w) throw NotFoundError.of('Workload', id);
    return w;
  }

  /** The workload plus what its detail view derives: storage usage and the next run. */
  async getDetail(ctx: RequestContext, id: string): Promise<WorkloadDetail> {
    return this.detailOf(await this.get(ctx, id));
  }

  async listDetail(ctx: RequestContext, opts: { all: boolean; projectId?: string; page?: PageRequest }): Promise<WorkloadDetail[]> {
    const list = await this.list(ctx, opts);
    return Promise.all(list.map((w) => this.detailOf(w)));
  }

  /** The detail of a workload already read (e.g. one just imported). */
  async detailOf(w: Workload): Promise<WorkloadDetail> {
    const backupTarget = this.deps.targets ? this.deps.targets.resolve(w.backup_target) : w.backup_target;
    return { ...(await this.detailFields(w)), backupTarget };
  }

  private async detailFields(w: Workload): Promise<Omit<WorkloadDetail, 'backupTarget'>> {
    const now = this.deps.clock.now();
    const schedule = scheduleViewFields(w.jobschedule, await getGlobalJobScheduler(this.deps.db), now);
    const schedulerTrust = await schedulerTrustOf(this.deps.db, this.deps.platform.trusts, w);
    return { workload: w, storageUsage: await workloadStorageUsage(this.deps.db, w.id), ...schedule, schedulerTrust };
  }

  /**
   * Resolves instance ids in the caller's project; a foreign or unknown id is the same 400, and
   * so is an instance with an encrypted volume for an unencrypted workload.
   */
  private async resolveMembers(ctx: RequestContext, ids: string[], exceptWorkload: string | null, workload: Pick<Workload, 'encryption'>): Promise<WorkloadMember[]> {
    if (ids.length === 0) throw new ValidationError('Invalid instances: a workload needs at least one instance');
    const members: WorkloadMember[] = [];
    for (const id of ids) {
      const inst = await this.deps.platform.getInstance(ctx.projectId, id);
      if (!inst) throw new ValidationError(`Invalid instance: instance ${id} could not be found.`);
      const why = this.deps.platform.unprotectableReason?.(inst);
      if (why) throw new ValidationError(`Invalid instance: ${why}`);
      const conflict = encryptionConflict(workload, inst);
      if (conflict) throw new ValidationError(conflict);
      members.push({ id: inst.id, name: inst.name, metadata: {} });
    }
    const taken = await findMemberships(this.deps.db, ids);
    for (const m of members) {
      const owner = taken.get(m.id);
      if (owner && owner !== exceptWorkload) throw new ValidationError(`Invalid instance as ${m.name} already attached with other workload`);
    }
    return members;
  }

  async create(ctx: RequestContext, cmd: CreateWorkloadCommand): Promise<Workload> {
    const now = this.now();
    const baseSchedule = defaultJobSchedule(now);
    const { schedule, changed } = mergeJobSchedule(baseSchedule, cmd.jobschedule);
    await assertScheduleChangeAllowed(this.deps.db, baseSchedule, schedule, changed);
    const members = await this.resolveMembers(ctx, cmd.instanceIds, null, { encryption: cmd.encryption === true });
    const backupTarget = this.backupTargetOf(cmd.backupTarget ?? null);
    if (cmd.encryption && cmd.secretUuid) await this.checkEncryptionSecret(cmd.secretUuid);
    const w: Workload = {
      id: newId(),
      project_id: ctx.projectId,
      user_id: ctx.userId,
      name: cmd.name,
      description: cmd.description,
      workload_type_id: cmd.workloadTypeId,
      source_platform: cmd.sourcePlatform,
      status: 'creating',
      error_msg: null,
      availability_zone: null,
      jobschedule: schedule,
      metadata: cmd.metadata,
      force_full: true,
      backup_target: backupTarget,
      ...(cmd.encryption ? { encryption: true, secret_uuid: cmd.secretUuid ?? null } : {}),
      created_at: now,
      updated_at: now,
      instances: members,
    };
    try {
      await inTransaction(this.deps.db, async (tx) => {
        // A workload policy's four schedule fields overwrite the given ones.
        const pf = await workloadPolicyOnCreate(tx, ctx.projectId, w.metadata);
        if (pf) {
          const { policy_id, ...fields } = pf;
          w.metadata = { ...w.metadata, policy_id };
          w.jobschedule = { ...w.jobschedule, ...fields };
        }
        await enforceWorkloadQuotas(tx, { projectId: ctx.projectId, workloadId: null, instanceIds: cmd.instanceIds, platform: this.deps.platform });
        await insertWorkload(tx, w);
        await enqueue(tx, WORKLOAD_JOBS.create, { workloadId: w.id }, { resourceId: w.id, now });
      });
    } catch (e) {
      // Another request took one of these VMs between our check and the insert.
      if (isMemberConflict(e)) throw new ValidationError('Invalid instance: an instance is already attached with other workload');
      throw e;
    }
    return w;
  }

  /**
   * A workload naming a Barbican secret (`secret_uuid`) on a platform with a key manager
   * (OpenStack) has its data key wrapped by that secret's key, read by Lifeboat's service
   * identity (platform/openstack/key-manager.ts): the secret must exist, be readable by Lifeboat
   * and hold a 256-bit key now, else 400 naming it and nothing is created. Elsewhere the secret
   * is only recorded and the key file is the source (repository/key-source.ts KeySources).
   */
  private async checkEncryptionSecret(secretUuid: string): Promise<void> {
    const km = this.deps.platform.keyManager;
    if (!km) return;
    try {
      await km.readKey(secretUuid);
    } catch (e) {
      if (e instanceof ValidationError) throw new ValidationError(`Invalid secret_uuid: ${e.message}`);
      throw e;
    }
  }

  /**
   * The target a new workload's snapshots go to, fixed at create time (its incremental chain
   * lives there): the chosen one, else the current default. Unknown → 400, nothing created.
   */
  private backupTargetOf(choice: string | null): string | null {
    const t = this.deps.targets;
    if (choice === null) return t ? t.defaultName : null;
    if (!t?.has(choice)) throw new ValidationError(`Invalid backup_target_types: no backup target type named ${JSON.stringify(choice.slice(0, 64))}`);
    return choice;
  }

  async modify(ctx: RequestContext, id: string, cmd: ModifyWorkloadCommand): Promise<void> {
    const w = await this.get(ctx, id);
    const { schedule, changed } = mergeJobSchedule(w.jobschedule, cmd.jobschedule);
    await assertScheduleChangeAllowed(this.deps.db, w.jobschedule, schedule, changed);
    const metadata = cmd.metadata === undefined ? undefined : { ...w.metadata, ...cmd.metadata };
    const members = cmd.instanceIds ? await this.resolveMembers(ctx, cmd.instanceIds, w.id, w) : undefined;
    const now = this.now();
    try {
      await inTransaction(this.deps.db, async (tx) => {
        // Only an idle workload may change; the conditional update is the lock.
        const ok = await transitionWorkload(tx, w.id, ownScope(ctx), ['available', 'error'], w.status === 'error' ? 'error' : 'available', now);
        if (!ok) throw new InvalidStateError("Workload must be in the 'available' state to modify");
        const pf = await workloadPolicyOnModify(tx, ctx.projectId, cmd.metadata);
        if (members) await enforceWorkloadQuotas(tx, { projectId: w.project_id, workloadId: w.id, instanceIds: members.map((m) => m.id), platform: this.deps.platform });
        let js = changed.length > 0 ? schedule : undefined;
        let md = metadata;
        if (pf) {
          const { policy_id, ...fields } = pf;
          js = { ...(js ?? w.jobschedule), ...fields };
          md = { ...(md ?? w.metadata), policy_id };
        }
        await updateWorkloadFields(
          tx,
          w.id,
          {
            ...(cmd.name !== undefined ? { name: cmd.name } : {}),
            ...(cmd.description !== undefined ? { description: cmd.description } : {}),
            ...(js ? { jobschedule: js } : {}),
            ...(md ? { metadata: md } : {}),
          },
          now,
        );
        if (members) await replaceMembers(tx, w.id, w.project_id, members);
      });
    } catch (e) {
      if (isMemberConflict(e)) throw new ValidationError('Invalid instance: an instance is already attached with other workload');
      throw e;
    }
  }

  async delete(ctx: RequestContext, id: string): Promise<void> {
    const w = await this.get(ctx, id);
    const now = this.now();
    await inTransaction(this.deps.db, async (tx) => {
      if ((await countLiveSnapshots(tx, w.id)) > 0) {
        throw new ValidationError('This workload contains snapshots. Please delete all snapshots and try again..');
      }
      const ok = await transitionWorkload(tx, w.id, ownScope(ctx), ['available', 'error'], 'deleting', now);
      if (!ok) throw new InvalidStateError("Workload status must be 'available' or 'error'");
      await enqueue(tx, WORKLOAD_JOBS.delete, { workloadId: w.id }, { resourceId: w.id, now });
    });
  }

  /**
   * Forces the workload back to `available` (operator escape hatch for a stuck lock). A lock
   * that a job in flight still holds stays: refused (400 naming the job) unless the caller is
   * an admin, and then the job is cancelled first, in the same transaction.
   */
  async unlock(ctx: RequestContext, id: string): Promise<void> {
    const w = await this.get(ctx, id);
    const now = this.now();
    await inTransaction(this.deps.db, async (tx) => {
      // Already available: no lock to break, whatever job is finishing (its row ends just after).
      if (await transitionWorkload(tx, w.id, ownScope(ctx), ['available'], 'available', now)) return;
      await this.releaseJobsInFlight(tx, ctx, w.id, 'unlock', now);
      const ok = await transitionWorkload(tx, w.id, ownScope(ctx), UNLOCKABLE_STATES, 'available', now);
      if (!ok) throw new InvalidStateError(`Workload cannot be unlocked while ${w.status}`);
    });
  }

  /**
   * Marks the workload so its next snapshot is full; resetting → available through a job. Only
   * an idle workload resets, except that an admin may reset one a job holds: the job is
   * cancelled first, as for unlock.
   */
  async reset(ctx: RequestContext, id: string): Promise<void> {
    const w = await this.get(ctx, id);
    const now = this.now();
    await inTransaction(this.deps.db, async (tx) => {
      const idle = await transitionWorkload(tx, w.id, ownScope(ctx), ['available', 'error'], 'resetting', now, { force_full: 1 });
      if (!idle) {
        const cancelled = await this.releaseJobsInFlight(tx, ctx, w.id, 'reset', now);
        const ok = cancelled && (await transitionWorkload(tx, w.id, ownScope(ctx), UNLOCKABLE_STATES, 'resetting', now, { force_full: 1 }));
        if (!ok) throw new InvalidStateError("Workload must be in the 'available' state to reset");
      }
      await enqueue(tx, WORKLOAD_JOBS.reset, { workloadId: w.id }, { resourceId: w.id, now });
    });
  }

  /**
   * Jobs still working on the workload (or its snapshots and restores) hold its lock: a
   * member's unlock/reset is refused naming the oldest; an admin's cancels them all. True when
   * jobs were cancelled.
   */
  private async releaseJobsInFlight(tx: DbOrTx, ctx: RequestContext, workloadId: string, action: 'unlock' | 'reset', now: number): Promise<boolean> {
    const jobs = await activeJobsOfWorkload(tx, workloadId);
    const first = jobs[0];
    if (!first) return false;
    const done = action === 'unlock' ? 'unlocked' : 'reset';
    if (!ctx.isAdmin) {
      throw new InvalidStateError(
        `Workload cannot be ${done} while job ${first.id} (${describeJob(first)}) is ${first.status}; an admin can ${action} it, which cancels the job`,
      );
    }
    await cancelJobsInFlight(tx, jobs, `workload ${done} by ${ctx.userName}`, now);
    return true;
  }
}

/** Every state a forced unlock (or an admin's reset over a cancelled job) may leave. */
const UNLOCKABLE_STATES: WorkloadStatus[] = ['available', 'locked', 'locked_for_delete', 'resetting', 'error', 'creating'];
