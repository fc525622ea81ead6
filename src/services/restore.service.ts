import { inTransaction, type Db } from '../store/db.js';
import { getWorkload, transitionWorkload } from '../store/workload.store.js';
import { getSnapshot, transitionSnapshot } from '../store/snapshot.store.js';
import { deleteRestoreRecord, getRestore, insertRestore, listRestores, transitionRestore } from '../store/restore.store.js';
import { RESTORE_JOBS } from '../jobs/kinds.js';
import { enqueue } from '../jobs/queue.js';
import type { Clock } from '../lib/clock.js';
import type { RequestContext } from '../domain/context.js';
import type { Snapshot } from '../domain/snapshot.js';
import { DELETABLE_RESTORE_STATES, RUNNING_RESTORE_STATES, type Restore, type RestoreKind, type RestorePlan, type RestorePlanInstance } from '../domain/restore.js';
import { parseBool } from '../domain/jobschedule.js';
import { InvalidStateError, NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid, newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { optionalText, requireObject, textOrDefault } from './input.js';
import { ownScope } from './workload.service.js';

export interface RestoreServiceDeps {
  db: Db;
  clock: Clock;
}

const KINDS: RestoreKind[] = ['oneclick', 'selective', 'inplace'];

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * Turns the posted `options` (one-click, selective or in-place, exactly as tempest sends them;
 * unknown keys ignored) into a plan checked against the snapshot: every named instance and
 * disk must be in it, so a bad request fails with 400 before any job starts.
 */
export function planRestore(options: Record<string, unknown>, snap: Snapshot): RestorePlan {
  if (options.type !== 'openstack') throw new ValidationError('Invalid restore options: type must be "openstack"');
  const os = options.openstack === undefined ? {} : requireObject(options.openstack, 'restore options.openstack');
  let kind: RestoreKind;
  const rt = options.restore_type;
  if (rt !== undefined && rt !== null && rt !== '') {
    if (typeof rt !== 'string' || !KINDS.includes(rt as RestoreKind)) throw new ValidationError('Invalid restore options: restore_type must be oneclick, selective or inplace');
    kind = rt as RestoreKind;
  } else if (options.oneclickrestore !== undefined && parseBool(options.oneclickrestore, 'oneclickrestore')) {
    kind = 'oneclick';
  } else {
    throw new ValidationError('Invalid restore options: restore_type must be oneclick, selective or inplace');
  }
  const byId = new Map(snap.instances.map((i) => [i.id, i]));
  const snapNetworks = new Set(snap.instances.flatMap((i) => i.nics.map((n) => n.network.id)));

  if (kind === 'oneclick') {
    return {
      kind,
      instances: snap.instances.map((i) => ({ id: i.id, name: i.name, availability_zone: i.metadata.availability_zone ?? 'nova', devices: i.vdisks.map((v) => v.volume_mountpoint), networkMap: {} })),
    };
  }

  if (!Array.isArray(os.instances)) throw new ValidationError(`Invalid restore options: openstack.instances must list the instances for a ${kind} restore`);
  const networkMap: RestorePlanInstance['networkMap'] = {};
  const nm = os.networks_mapping === undefined || os.networks_mapping === null ? {} : requireObject(os.networks_mapping, 'networks_mapping');
  const nets = nm.networks ?? [];
  if (!Array.isArray(nets)) throw new ValidationError('Invalid restore options: networks_mapping.networks must be a list');
  for (const m of nets) {
    const o = requireObject(m, 'networks_mapping item');
    const from = requireObject(o.snapshot_network, 'snapshot_network');
    const to = requireObject(o.target_network, 'target_network');
    const fromId = str(from.id);
    if (!fromId || !snapNetworks.has(fromId)) throw new ValidationError(`Invalid restore options: network ${JSON.stringify(from.id)} is not in the snapshot`);
    if (!isUuid(to.id)) throw new ValidationError(`Invalid restore options: target network id ${JSON.stringify(to.id)} is not a UUID`);
    const sub = to.subnet === undefined ? undefined : requireObject(to.subnet, 'target_network.subnet');
    if (sub && !isUuid(sub.id)) throw new ValidationError(`Invalid restore options: target subnet id ${JSON.stringify(sub.id)} is not a UUID`);
    networkMap[fromId] = { id: String(to.id), name: str(to.name) ?? String(to.id), ...(sub ? { subnet: { id: String(sub.id) } } : {}) };
  }

  const seen = new Set<string>();
  const out: RestorePlanInstance[] = [];
  for (const item of os.instances) {
    const o = requireObject(item, 'openstack.instances item');
    const id = typeof o.id === 'string' ? o.id.toLowerCase() : '';
    const inst = byId.get(id);
    if (!inst) throw new ValidationError(`Invalid restore options: instance ${JSON.stringify(o.id)} is not in snapshot ${snap.id}`);
    if (seen.has(id)) throw new ValidationError(`Invalid restore options: instance ${id} is listed twice`);
    seen.add(id);
    if (o.include !== undefined && !parseBool(o.include, 'include')) continue;
    const vd = o.vdisks ?? [];
    if (!Array.isArray(vd)) throw new ValidationError(`Invalid restore options: vdisks of instance ${id} must be a list`);
    const devices: string[] = [];
    for (const v of vd) {
      const vo = requireObject(v, 'vdisks item');
      const disk = inst.vdisks.find((x) => (x.volume_id !== undefined && x.volume_id === vo.id) || x.resource_id === vo.id || x.volume_mountpoint === vo.id);
      if (!disk) throw new ValidationError(`Invalid restore options: disk ${JSON.stringify(vo.id)} is not a disk of instance ${id} in the snapshot`);
      if (!devices.includes(disk.volume_mountpoint)) devices.push(disk.volume_mountpoint);
    }
    out.push({
      id,
      name: kind === 'inplace' ? inst.name : textOrDefault(o.name, 'instance name', inst.name),
      availability_zone: optionalText(o.availability_zone, 'availability_zone') || inst.metadata.availability_zone || 'nova',
      devices: devices.length > 0 ? devices : inst.vdisks.map((x) => x.volume_mountpoint),
      networkMap: kind === 'selective' ? networkMap : {},
    });
  }
  if (out.length === 0) throw new ValidationError('Invalid restore options: no instance is included');
  return { kind, instances: out };
}

/**
 * Restore use cases. Creating one moves the snapshot to `restoring` and locks the workload in
 * the same transaction as the job; both return to `available` when the restore ends.
 */
export class RestoreService {
  constructor(private readonly deps: RestoreServiceDeps) {}

  private now(): number {
    return toSecond(this.deps.clock.now());
  }

  private async snapshot(ctx: RequestContext, snapshotId: string, workloadId?: string): Promise<Snapshot> {
    const s = isUuid(snapshotId) ? await getSnapshot(this.deps.db, ownScope(ctx), snapshotId.toLowerCase()) : null;
    if (!s || (workloadId !== undefined && s.workload_id !== workloadId.toLowerCase())) throw NotFoundError.of('Snapshot', snapshotId);
    return s;
  }

  async create(ctx: RequestContext, snapshotId: string, workloadId: string | undefined, body: Record<string, unknown>): Promise<Restore> {
    const snap = await this.snapshot(ctx, snapshotId, workloadId);
    const options = body.options === undefined ? { type: 'openstack' } : requireObject(body.options, 'restore options');
    if (snap.status !== 'available') throw new InvalidStateError('Snapshot status must be available');
    const plan = planRestore(options, snap);
    const name = textOrDefault(body.name, 'name', textOrDefault(options.name, 'options.name', 'restore'));
    const description = textOrDefault(body.description, 'description', textOrDefault(options.description, 'options.description', 'no-description'));
    const now = this.now();
    const r: Restore = {
      id: newId(),
      project_id: snap.project_id,
      user_id: ctx.userId,
      snapshot_id: snap.id,
      workload_id: snap.workload_id,
      name,
      description,
      status: 'restoring',
      kind: plan.kind,
      options,
      host: '',
      size: 0,
      uploaded_size: 0,
      progress_percent: 0,
      progress_msg: 'Restore operation is scheduled',
      warning_msg: null,
      error_msg: null,
      time_taken: 0,
      instances: [],
      metadata: [{ id: newId(), key: 'data_transfer_time', value: '0', created_at: now, updated_at: null }],
      created_at: now,
      updated_at: now,
      finished_at: null,
    };
    await inTransaction(this.deps.db, async (tx) => {
      if (!(await transitionSnapshot(tx, snap.id, ['available'], 'restoring', now))) throw new InvalidStateError('Snapshot status must be available');
      const w = await getWorkload(tx, ownScope(ctx), snap.workload_id);
      if (!w || !(await transitionWorkload(tx, w.id, ownScope(ctx), ['available'], 'locked', now))) {
        throw new InvalidStateError("Workload must be in the 'available' state to restore");
      }
      await insertRestore(tx, r);
      await enqueue(tx, RESTORE_JOBS.run, { restoreId: r.id, plan }, { resourceId: r.id, now });
    });
    return r;
  }

  async list(ctx: RequestContext, f: { snapshotId?: string; workloadId?: string }): Promise<Restore[]> {
    let snapshotId: string | undefined;
    if (f.snapshotId !== undefined) snapshotId = (await this.snapshot(ctx, f.snapshotId, f.workloadId)).id;
    return listRestores(this.deps.db, ownScope(ctx), snapshotId ? { snapshotId } : {});
  }

  async get(ctx: RequestContext, id: string, nested?: { workloadId: string; snapshotId: string }): Promise<Restore> {
    const r = isUuid(id) ? await getRestore(this.deps.db, ownScope(ctx), id.toLowerCase()) : null;
    if (!r || (nested && (r.workload_id !== nested.workloadId.toLowerCase() || r.snapshot_id !== nested.snapshotId.toLowerCase()))) throw NotFoundError.of('Restore', id);
    return r;
  }

  /** Deletes the record only (restored VMs stay), from a final state. */
  async delete(ctx: RequestContext, id: string, nested?: { workloadId: string; snapshotId: string }): Promise<void> {
    const r = await this.get(ctx, id, nested);
    if (!(await deleteRestoreRecord(this.deps.db, r.id, DELETABLE_RESTORE_STATES, this.now()))) {
      throw new InvalidStateError("Restore status must be 'available' or 'error' or 'cancelled'");
    }
  }

  async cancel(ctx: RequestContext, id: string): Promise<void> {
    const r = await this.get(ctx, id);
    if (!RUNNING_RESTORE_STATES.includes(r.status)) return;
    await transitionRestore(this.deps.db, r.id, RUNNING_RESTORE_STATES, 'cancelling', this.now(), { progress_msg: 'Restore is being cancelled' });
  }
}
