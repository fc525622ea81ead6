import { randomUUID } from 'node:crypto';
import type { RequestContext } from '../domain/context.js';
import type { Clock } from '../lib/clock.js';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { toSecond } from '../lib/time.js';
import type { TrustBroker } from '../platform/platform.js';
import type { Db } from '../store/db.js';
import { deleteSetting, getSetting, listSettings, upsertSetting, type SettingRow } from '../store/setting.store.js';

/**
 * The vendor's trusts (workloadmgr-api §2.10/§4.9): a hidden setting of the caller's project
 * (`category: identity`, `type: trust_id`, `name: trust-<uuid>`, `value`: the platform's trust
 * id, `metadata.role_name`) backed by a real delegation (Keystone trust to Lifeboat's service
 * user). Create needs the caller's own token, since only a trustor may delegate its roles.
 */
export interface TrustServiceDeps {
  db: Db;
  clock: Clock;
  /** Null when the platform has no delegation (local, libvirt): creating a trust is refused. */
  broker: TrustBroker | null;
}

export const TRUST_CATEGORY = 'identity';
export const TRUST_TYPE = 'trust_id';

export class TrustService {
  constructor(private readonly deps: TrustServiceDeps) {}

  async create(ctx: RequestContext, userToken: string, roleName: string): Promise<SettingRow> {
    const broker = this.deps.broker;
    if (!broker) throw new ValidationError('Trusts need an OpenStack cloud (LIFEBOAT_PLATFORM=openstack): this server has no Keystone to delegate to');
    if (!/^[A-Za-z0-9_.-]{1,255}$/.test(roleName)) throw new ValidationError('role_name must be a Keystone role name');
    const trustId = await broker.create(userToken, { userId: ctx.userId, projectId: ctx.projectId }, [roleName]);
    const now = toSecond(this.deps.clock.now());
    try {
      return await upsertSetting(this.deps.db, {
        project_id: ctx.projectId,
        name: `trust-${randomUUID()}`,
        value: trustId,
        secret: 0,
        description: 'token id for user and project',
        category: TRUST_CATEGORY,
        type: TRUST_TYPE,
        is_public: 0,
        is_hidden: 1,
        metadata: JSON.stringify({ role_name: roleName }),
        user_id: ctx.userId,
        created_at: now,
        updated_at: null,
      });
    } catch (e) {
      await broker.delete(trustId).catch(() => undefined);
      throw e;
    }
  }

  async list(ctx: RequestContext): Promise<SettingRow[]> {
    return (await listSettings(this.deps.db, ctx.projectId, { hidden: true })).filter(isTrust);
  }

  async get(ctx: RequestContext, name: string): Promise<SettingRow> {
    const row = await getSetting(this.deps.db, ctx.projectId, name);
    if (!row || !isTrust(row)) throw NotFoundError.of('Trust', name);
    return row;
  }

  /** Deletes the delegation first, then the record (a failed Keystone call keeps the record to retry). */
  async delete(ctx: RequestContext, name: string): Promise<void> {
    const row = await this.get(ctx, name);
    await this.deps.broker?.delete(row.value);
    await deleteSetting(this.deps.db, ctx.projectId, name);
  }
}

function isTrust(r: SettingRow): boolean {
  return r.category === TRUST_CATEGORY && r.type === TRUST_TYPE;
}

/** The workload detail's `scheduler_trust`: whether scheduled runs can act for the owner. */
export interface SchedulerTrust {
  scheduler_enabled: boolean;
  /** The owner's newest trust in the workload's project (the one scheduled runs use), or null. */
  trust: { name: string; role_name: string; user_id: string } | null;
  /** Keystone honours it now (checked only while the schedule is on). */
  is_valid: boolean;
}

/**
 * What a scheduled run of `w` would act through; null on a platform without delegation. A
 * workload whose schedule is on but whose owner has no valid trust shows `is_valid: false`
 * here before its next run fails saying so.
 */
export async function schedulerTrustOf(db: Db, broker: TrustBroker | null | undefined, w: { project_id: string; user_id: string; jobschedule: { enabled: boolean } }): Promise<SchedulerTrust | null> {
  if (!broker) return null;
  const owned = (await listSettings(db, w.project_id, { hidden: true })).filter((r) => isTrust(r) && r.user_id === w.user_id);
  const newest = owned.sort((a, b) => b.created_at - a.created_at)[0];
  const enabled = w.jobschedule.enabled;
  if (!newest) return { scheduler_enabled: enabled, trust: null, is_valid: false };
  const role = (JSON.parse(newest.metadata || '{}') as { role_name?: unknown }).role_name;
  const trust = { name: newest.name, role_name: typeof role === 'string' ? role : '', user_id: newest.user_id };
  return { scheduler_enabled: enabled, trust, is_valid: enabled ? await broker.validate(newest.value) : false };
}
