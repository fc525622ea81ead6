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
import { InvalidStateError, NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid, newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import type { Platform } from '../platform/platform.js';
import { ownScope } from './workload.service.js';
import type { PageRequest } from '../domain/page.js';
import { pageWindow } from './page.js';

export interface RestoreServiceDeps {
  db: Db;
  clock: Clock;
  /** The platform's own checks of a plan (networks, formats...), before anything changes. */
  platform?: Pick<Platform, 'checkRestore'>;
}

/** One network of the snapshot mapped to a network of the target (selective restores). */
export interface NetworkMappingRequest {
  snapshotNetworkId: string;
  target: RestorePlanInstance['networkMap'][string];
}

/** One instance of a selective or in-place restore, as asked. */
export interface RestoreInstanceRequest {
  /** Lower-case instance id; must be an instance of the snapshot. */
  id: string;
  /** false: listed but not restored. */
  include: boolean;
  /** Disks to restore, each a volume id, resource id or mount point of the instance; none: all. */
  diskIds: string[];
  /** New name (ignored in place); absent: the snapshot's name. */
  name?: string;
  availabilityZone?: string;
  /** Disk id (as in diskIds) → `new_volume_type`. */
  volumeTypes?: Record<string, string>;
  /** Disk id (as in diskIds) → the disk's `availability_zone` (OpenStack: the Cinder zone of the new volume). */
  volumeZones?: Record<string, string>;
  /** Lifeboat's `power_on` for this instance (wins over the request's). */
  powerOn?: boolean;
}

/** The restore `options`, checked for shape by http/ (restore.commands.ts). */
export interface RestoreRequest {
  kind: RestoreKind;
  /** Empty for one-click restores (every instance of the snapshot). */
  instances: RestoreInstanceRequest[];
  networks: NetworkMappingRequest[];
  /** Lifeboat's `power_on` for every instance (RestorePlanInstance.powerOn). */
  powerOn?: boolean;
}

export interface CreateRestoreCommand {
  name: string;
  description: string;
  /** The options as posted, kept on the restore record (the views echo them). */
  options: Record<string, unknown>;
  request: RestoreRequest;
}

function networkMapOf(networks: NetworkMappingRequest[], snap: Snapshot): RestorePlanInstance['networkMap'] {
  const snapNetworks = new Set(snap.instances.flatMap((i) => i.nics.map((n) => n.network.id)));
  const map: RestorePlanInstance['networkMap'] = {};
  for (const m of networks) {
    if (!snapNetworks.has(m.snapshotNetworkId)) throw new ValidationError(`Invalid restore options: network ${JSON.stringify(m.snapshotNetworkId)} is not in the snapshot`);
    map[m.snapshotNetworkId] = m.target;
  }
  return map;
}

/**
 * Checks a restore request against the snapshot and turns it into a plan: every named
 * instance and disk must be in the snapshot, so a bad request fails with 400 before any job
 * starts.
 */
export function planRestore(req: RestoreRequest, snap: Snapshot): RestorePlan {
  const { kind } = req;
  if (kind === 'oneclick') {
    return {
      kind,
      instances: snap.instances.map((i) => ({
        id: i.id,
        name: i.name,
        availability_zone: i.metadata.availability_zone ?? 'nova',
        devices: i.vdisks.map((v) => v.volume_mountpoint),
        networkMap: {},
        ...(req.powerOn !== undefined ? { powerOn: req.powerOn } : {}),
      })),
    };
  }
  const networkMap = networkMapOf(req.networks, snap);
  const byId = new Map(snap.instances.map((i) => [i.id, i]));
  const out: RestorePlanInstance[] = [];
  for (const want of req.instances) {
    const inst = byId.get(want.id);
    if (!inst) throw new ValidationError(`Invalid restore options: instance ${JSON.stringify(want.id)} is not in snapshot ${snap.id}`);
    if (!want.include) continue;
    const devices: string[] = [];
    const volumeTypes: Record<string, string> = {};
    const volumeZones: Record<string, string> = {};
    for (const diskId of want.diskIds) {
      const disk = inst.vdisks.find((x) => (x.volume_id !== undefined && x.volume_id === diskId) || x.resource_id === diskId || x.volume_mountpoint === diskId);
      if (!disk) throw new ValidationError(`Invalid restore options: disk ${JSON.stringify(diskId)} is not a disk of instance ${want.id} in the snapshot`);
      if (!devices.includes(disk.volume_mountpoint)) devices.push(disk.volume_mountpoint);
      const volumeType = want.volumeTypes?.[diskId];
      if (volumeType !== undefined) volumeTypes[disk.volume_mountpoint] = volumeType;
      const zone = want.volumeZones?.[diskId];
      if (zone !== undefined) volumeZones[disk.volume_mountpoint] = zone;
    }
    const powerOn = want.powerOn ?? req.powerOn;
    out.push({
      id: want.id,
      name: kind === 'inplace' ? inst.name : (want.name ?? inst.name),
      availability_zone: want.availabilityZone || inst.metadata.availability_zone || 'nova',
      devices: devices.length > 0 ? devices : inst.vdisks.map((x) => x.volume_mountpoint),
      networkMap: kind === 'selective' ? networkMap : {},
      ...(Object.keys(volumeTypes).length > 0 ? { volumeTypes } : {}),
      ...(Object.keys(volumeZones).length > 0 ? { volumeZones } : {}),
      ...(powerOn !== undefined ? { powerOn } : {}),
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

  async create(ctx: RequestContext, snapshotId: string, workloadId: string | undefined, cmd: CreateRestoreCommand): Promise<Restore> {
    const snap = await this.snapshot(ctx, snapshotId, workloadId);
    if (snap.status !== 'available') throw new InvalidStateError('Snapshot status must be available');
    const plan = planRestore(cmd.request, snap);
    await this.deps.platform?.checkRestore?.(snap.project_id, plan, snap);
    const now = this.now();
    const r: Restore = {
      id: newId(),
      project_id: snap.project_id,
      user_id: ctx.userId,
      snapshot_id: snap.id,
      workload_id: snap.workload_id,
      name: cmd.name,
      description: cmd.description,
      status: 'restoring',
      kind: plan.kind,
      options: cmd.options,
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

  async list(ctx: RequestContext, f: { snapshotId?: string; workloadId?: string }, page?: PageRequest): Promise<Restore[]> {
    let snapshotId: string | undefined;
    if (f.snapshotId !== undefined) snapshotId = (await this.snapshot(ctx, f.snapshotId, f.workloadId)).id;
    const scope = ownScope(ctx);
    return listRestores(this.deps.db, scope, snapshotId ? { snapshotId } : {}, await pageWindow(this.deps.db, 'restores', scope, page));
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
