import { inTransaction, type Db, type DbOrTx } from '../store/db.js';
import {
  countProjectWorkloads,
  deleteQuota,
  getQuota,
  getQuotaOfType,
  insertQuota,
  listQuotas,
  lockQuotas,
  projectSnapshotUsage,
  protectedInstanceIds,
  updateQuotaValues,
  workloadInstanceIds,
  type AllowedQuota,
} from '../store/quota.store.js';
import type { Platform } from '../platform/platform.js';
import type { Clock } from '../lib/clock.js';
import { ForbiddenError, NotFoundError, QuotaExceededError, ValidationError } from '../lib/errors.js';
import { QUOTA_TYPE_IDS, QUOTA_TYPES, type QuotaType } from '../domain/quota.js';
export { QUOTA_TYPE_IDS, QUOTA_TYPES, QuotaExceededError, type QuotaType };
import { isUuid, newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import type { ProjectDirectory } from './policy.service.js';

export type { AllowedQuota } from '../store/quota.store.js';

export function quotaTypeName(typeId: string): string {
  return QUOTA_TYPES.find((q) => q.id === typeId)?.display_name ?? typeId;
}

export interface QuotaServiceDeps {
  db: Db;
  clock: Clock;
  projects?: ProjectDirectory;
}

/** One limit of a quota create, checked for shape by http/ (quota.commands.ts). */
export interface QuotaLimit {
  /** A QUOTA_TYPES id, lower case. */
  typeId: string;
  allowed: number;
  high: number;
}

/** A quota change; `projectId`/`quotaTypeId` when the body names them (they must name this quota). */
export interface UpdateQuotaCommand {
  allowed?: number;
  high?: number;
  projectId?: string;
  quotaTypeId?: string;
}

function checkWatermark(allowed: number, high: number): void {
  if (high > allowed) throw new ValidationError(`Invalid high_watermark: ${high} is greater than allowed_value ${allowed}`);
}

/**
 * Project quota use cases. Who may change quotas is decided by the routes (admin rules); the
 * service validates and stores. Creating a quota for a (project, type) that already has one
 * updates that quota in place (same id): create is idempotent, and one limit per type is
 * what enforcement reads.
 */
export class QuotaService {
  constructor(private readonly deps: QuotaServiceDeps) {}

  private now(): number {
    return toSecond(this.deps.clock.now());
  }

  listTypes(): readonly QuotaType[] {
    return QUOTA_TYPES;
  }

  getType(id: string): QuotaType {
    const t = QUOTA_TYPES.find((q) => q.id === id.toLowerCase());
    if (!t) throw NotFoundError.of('Quota type', id);
    return t;
  }

  async create(projectId: string, items: QuotaLimit[]): Promise<AllowedQuota[]> {
    if (this.deps.projects && (await this.deps.projects.projectName(projectId)) === null) throw NotFoundError.of('Project', projectId);
    for (const it of items) checkWatermark(it.allowed, it.high);
    const now = this.now();
    const ids = await inTransaction(this.deps.db, async (tx) => {
      const out: string[] = [];
      for (const it of items) {
        const existing = await getQuotaOfType(tx, projectId, it.typeId);
        if (existing) {
          await updateQuotaValues(tx, existing.id, { allowed_value: it.allowed, high_watermark: it.high }, now);
          out.push(existing.id);
        } else {
          const id = newId();
          await insertQuota(tx, { id, project_id: projectId, quota_type_id: it.typeId, allowed_value: it.allowed, high_watermark: it.high, created_at: now, updated_at: now });
          out.push(id);
        }
      }
      return out;
    });
    const all = await listQuotas(this.deps.db, projectId);
    return ids.map((id) => all.find((q) => q.id === id)!);
  }

  async list(projectId: string): Promise<AllowedQuota[]> {
    return listQuotas(this.deps.db, projectId);
  }

  /** The quota whatever its project; the route decides whether the caller may see it. */
  async find(id: string): Promise<AllowedQuota | null> {
    return isUuid(id) ? getQuota(this.deps.db, id.toLowerCase()) : null;
  }

  async update(q: AllowedQuota, cmd: UpdateQuotaCommand): Promise<AllowedQuota> {
    if (cmd.projectId !== undefined && cmd.projectId !== q.project_id) {
      throw new ValidationError(`Invalid project_id: ${JSON.stringify(cmd.projectId)} is not the project of quota ${q.id}`);
    }
    if (cmd.quotaTypeId !== undefined && cmd.quotaTypeId !== q.quota_type_id) throw new ValidationError('Invalid quota_type_id: the type of a quota cannot change');
    const allowed = cmd.allowed ?? q.allowed_value;
    // A lowered allowed_value drags an unspecified watermark down with it.
    const high = cmd.high ?? Math.min(q.high_watermark, allowed);
    checkWatermark(allowed, high);
    await updateQuotaValues(this.deps.db, q.id, { allowed_value: allowed, high_watermark: high }, this.now());
    return (await getQuota(this.deps.db, q.id)) ?? { ...q, allowed_value: allowed, high_watermark: high };
  }

  async delete(q: AllowedQuota): Promise<void> {
    if (!(await deleteQuota(this.deps.db, q.id))) throw NotFoundError.of('Allowed quota', q.id);
  }
}

// ---- enforcement -----------------------------------------------------------------------------

export interface WorkloadQuotaInput {
  projectId: string;
  /** The workload being modified; null on create. */
  workloadId: string | null;
  /** The workload's full member list after the change. */
  instanceIds: string[];
  /** Counts volume attachments for the Volumes quota (skipped without it). */
  platform?: Platform;
}

/**
 * Workload create/modify: Workloads (create only), VMs (protected VMs across the project's
 * workloads) and Volumes (volume-backed disks of those VMs). Call inside the transaction that
 * writes the workload, before the write: the project's quota rows are locked, so concurrent
 * creates cannot both pass. A change that does not grow the usage is always allowed, so a
 * lowered quota never blocks renaming or rescheduling an existing workload.
 */
export async function enforceWorkloadQuotas(db: DbOrTx, q: WorkloadQuotaInput): Promise<void> {
  const quotas = await lockQuotas(db, q.projectId, [QUOTA_TYPE_IDS.workloads, QUOTA_TYPE_IDS.vms, QUOTA_TYPE_IDS.volumes]);
  if (quotas.length === 0) return;
  const limit = (typeId: string) => quotas.find((x) => x.quota_type_id === typeId);

  const wq = limit(QUOTA_TYPE_IDS.workloads);
  if (wq && q.workloadId === null) {
    const n = await countProjectWorkloads(db, q.projectId);
    if (n + 1 > wq.allowed_value) throw new QuotaExceededError('Workloads', wq.allowed_value, n, 1);
  }

  const vq = limit(QUOTA_TYPE_IDS.vms);
  const volq = q.platform ? limit(QUOTA_TYPE_IDS.volumes) : undefined;
  if (!vq && !volq) return;
  const others = new Set(await protectedInstanceIds(db, q.projectId, q.workloadId));
  const current = q.workloadId === null ? [] : await workloadInstanceIds(db, q.workloadId);
  const after = [...new Set(q.instanceIds)].filter((id) => !others.has(id));
  if (vq) {
    const before = others.size + current.length;
    const total = others.size + after.length;
    if (total > vq.allowed_value && total > before) throw new QuotaExceededError('VMs', vq.allowed_value, before, total - before);
  }
  if (volq && q.platform) {
    const platform = q.platform;
    const volumesOf = async (ids: Iterable<string>) => {
      let n = 0;
      for (const id of ids) {
        const inst = await platform.getInstance(q.projectId, id);
        n += inst ? inst.disks.filter((d) => d.volume_id !== undefined).length : 0;
      }
      return n;
    };
    const base = await volumesOf(others);
    const before = base + (await volumesOf(current));
    const total = base + (await volumesOf(after));
    if (total > volq.allowed_value && total > before) throw new QuotaExceededError('Volumes', volq.allowed_value, before, total - before);
  }
}

/**
 * Snapshot create: Snapshots (live snapshots of the project + 1) and Storage (bytes the
 * project's snapshots hold on the target; a new snapshot is refused once usage reached the
 * limit, since its own size is only known when it finishes). Call inside the transaction that
 * inserts the snapshot.
 */
export async function enforceSnapshotQuotas(db: DbOrTx, projectId: string): Promise<void> {
  const quotas = await lockQuotas(db, projectId, [QUOTA_TYPE_IDS.snapshots, QUOTA_TYPE_IDS.storage]);
  if (quotas.length === 0) return;
  const usage = await projectSnapshotUsage(db, projectId);
  const sq = quotas.find((x) => x.quota_type_id === QUOTA_TYPE_IDS.snapshots);
  if (sq && usage.count + 1 > sq.allowed_value) throw new QuotaExceededError('Snapshots', sq.allowed_value, usage.count, 1);
  const stq = quotas.find((x) => x.quota_type_id === QUOTA_TYPE_IDS.storage);
  if (stq && usage.bytes >= stq.allowed_value) {
    throw new ForbiddenError(`Quota exceeded for Storage: allowed ${stq.allowed_value} bytes, in use ${usage.bytes} bytes.`);
  }
}
