import { inTransaction, type Db } from '../store/db.js';
import { getWorkload, replaceMembers, transitionWorkload, updateWorkloadFields } from '../store/workload.store.js';
import { getSnapshot, transitionSnapshot } from '../store/snapshot.store.js';
import { getRestore, transitionRestore, updateRestoreFields } from '../store/restore.store.js';
import type { NewInstanceSpec, Platform, PreparedInstance } from '../platform/platform.js';
import type { Repository } from '../repository/repository.js';
import { asRepositorySet, type RepositorySet } from '../repository/repository-set.js';
import { restoreDisk } from '../datamover/restore.js';
import type { SnapshotInstance } from '../domain/snapshot.js';
import { storageScope } from '../domain/workload.js';
import { RESTORE_LOST_MESSAGE, type RestorePlan, type RestorePlanInstance, type RestoredInstance } from '../domain/restore.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import { toSecond } from '../lib/time.js';
import { RESTORE_JOBS } from './kinds.js';
import { diskKey } from './snapshot.job.js';
import { ByteProgress, startTicker } from './progress-ticker.js';
import { reportRestoreDamage } from './damage.job.js';
import type { AnyJobHandler } from './runner.js';

export interface RestoreJobDeps {
  db: Db;
  platform: Platform;
  /** The target repositories (or the one): a restore reads the one its snapshot recorded. */
  repo: Repository | RepositorySet;
  clock: Clock;
  nodeName: string;
  progressEveryMs?: number;
  /** Called when a restore ends available or error (e-mail notification; best effort). */
  onRestoreFinished?: (restoreId: string) => void;
}


/** Disk key → the format the disk had at snapshot time (`meta.disks` the snapshot job writes). */
function diskFormats(meta: unknown): Map<string, string> {
  const disks = (meta as { disks?: unknown } | null)?.disks;
  const out = new Map<string, string>();
  for (const x of Array.isArray(disks) ? (disks as unknown[]) : []) {
    const { instanceId, device, format } = (x ?? {}) as Record<string, unknown>;
    if (typeof instanceId === 'string' && typeof device === 'string' && typeof format === 'string') out.set(diskKey(instanceId, device), format);
  }
  return out;
}

/** The snapshot-time `vm_metadata` (power_state, key_name...); {} when absent or unreadable. */
function vmMetadata(si: SnapshotInstance): Record<string, unknown> {
  try {
    const m: unknown = JSON.parse(si.metadata.vm_metadata ?? '{}');
    return m && typeof m === 'object' ? (m as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Whether the VM was running at snapshot time (`vm_metadata.power_state`); undefined for older snapshots. */
function wasRunning(si: SnapshotInstance): boolean | undefined {
  const state = vmMetadata(si).power_state;
  return typeof state === 'string' ? state === 'ACTIVE' : undefined;
}

/** The snapshot-time flavor as numbers (OpenStack's name, swap and extra specs when recorded). */
function flavorOf(si: SnapshotInstance): NewInstanceSpec['flavor'] {
  const f = si.flavor;
  return {
    vcpus: Number(f.vcpus),
    ram: Number(f.ram),
    disk: Number(f.disk),
    ephemeral: Number(f.ephemeral),
    ...(f.name !== undefined ? { name: f.name } : {}),
    ...(f.swap !== undefined ? { swap: Number(f.swap) || 0 } : {}),
    ...(f.extra_specs !== undefined ? { extra_specs: { ...f.extra_specs } } : {}),
  };
}

/**
 * The new instance's description: the snapshot's VM, renamed and re-networked per the plan;
 * each disk in its snapshot-time format unless the plan asks for a volume type; started when
 * the plan says so, else when the source was running.
 */
function newInstanceSpec(si: SnapshotInstance, p: RestorePlanInstance, disks: Map<string, RestoreDiskInfo>): NewInstanceSpec {
  const powerOn = p.powerOn ?? wasRunning(si);
  const { key_name: keyName, root_device_name: rootDevice } = vmMetadata(si);
  const groups = si.security_group.flatMap((g) => (g.id !== undefined ? [{ id: g.id, name: g.name, rules: g.rules ?? [] }] : []));
  return {
    name: p.name,
    availability_zone: p.availability_zone,
    flavor: flavorOf(si),
    security_groups: si.security_group.map((g) => g.name),
    ...(typeof keyName === 'string' && keyName ? { key_name: keyName } : {}),
    ...(typeof rootDevice === 'string' && rootDevice ? { root_device: rootDevice } : {}),
    ...(groups.length > 0 ? { security_group_details: groups } : {}),
    nics: si.nics.map((n) => {
      const mapped = p.networkMap[n.network.id];
      const network = mapped
        ? { id: mapped.id, name: mapped.name, ...(mapped.subnet ? { subnet: { id: mapped.subnet.id, name: n.network.subnet?.name ?? '', cidr: n.network.subnet?.cidr ?? '', ip_version: n.network.subnet?.ip_version ?? 4, gateway_ip: n.network.subnet?.gateway_ip ?? null } } : {}) }
        : { id: n.network.id, name: n.network.name, ...(n.network.subnet ? { subnet: { ...n.network.subnet } } : {}) };
      return { mac_address: n.mac_address, ip_address: n.ip_address, network };
    }),
    metadata: { restored_from_snapshot: '', original_instance_id: si.id },
    disks: si.vdisks
      .filter((v) => p.devices.includes(v.volume_mountpoint))
      .map((v) => {
        const volumeType = p.volumeTypes?.[v.volume_mountpoint] ?? v.volume_type;
        // A Cinder volume keeps its snapshot-time zone unless the plan maps it (restore-check.ts
        // refuses a zone or type that no longer exists before any work).
        const zone = p.volumeZones?.[v.volume_mountpoint] ?? (v.volume_id !== undefined ? v.availability_zone : undefined);
        const d = disks.get(v.volume_mountpoint);
        const source = v.volume_id === undefined ? { image_backed: true, ...(v.image_properties ? { image_properties: { ...v.image_properties } } : {}) } : {};
        return { device: v.volume_mountpoint, format: d?.format ?? 'raw', size: d?.size ?? v.restore_size, ...(d?.dataBytes !== undefined ? { data_bytes: d.dataBytes } : {}), ...(volumeType ? { volume_type: volumeType } : {}), ...(zone ? { availability_zone: zone } : {}), ...source };
      }),
    ...(powerOn !== undefined ? { power_on: powerOn } : {}),
  };
}

/**
 * Runs a restore: for each planned instance, prepare the target (a new instance, or sinks over
 * the original disks), restore every disk through the datamover (hash-verified, sparse), then
 * publish the instance (on a platform with `concurrentPublishes`, while the next instance's
 * disks are restored; the data itself is restored one disk at a time). A disk that fails (missing/corrupt chunk) fails its instance only; the
 * restore then ends `error` naming it, while the other instances are still restored.
 */
async function runRestore(d: RestoreJobDeps, restoreId: string, plan: RestorePlan, signal: AbortSignal, log: Logger): Promise<void> {
  const { db, clock } = d;
  const r = await getRestore(db, { admin: true }, restoreId);
  if (!r) return;
  const started = clock.now();
  if (r.status === 'cancelling') return finish(d, r.id, r.snapshot_id, r.workload_id, 'cancelled', { progress_msg: 'Restore cancelled' });
  if (!(await transitionRestore(db, r.id, ['restoring'], 'executing', toSecond(started), { host: d.nodeName, progress_msg: 'Restore from snapshot is starting' }))) {
    // A cancel that landed between the read and the claim is honoured, else the restore would
    // stay `cancelling` with its snapshot and workload locked; anything else is not ours.
    if ((await getRestore(db, { admin: true }, r.id))?.status === 'cancelling') await finish(d, r.id, r.snapshot_id, r.workload_id, 'cancelled', { progress_msg: 'Restore cancelled' });
    return;
  }

  let progress: ByteProgress | null = null;
  const ticker = startTicker({
    what: 'Restore',
    everyMs: d.progressEveryMs ?? 500,
    log,
    isCancelling: async () => (await getRestore(db, { admin: true }, r.id))?.status === 'cancelling',
    report: async () => {
      if (progress) await updateRestoreFields(db, r.id, { progress_percent: progress.percent, uploaded_size: progress.done, updated_at: toSecond(clock.now()) }, ['executing']);
    },
  });
  const abort = AbortSignal.any([signal, ticker.cancelSignal]);
  const result: RestoreResult = { restored: [], failures: [], bytesWritten: 0, warnings: [], forceFull: false };
  try {
    const snap = await getSnapshot(db, { admin: true }, r.snapshot_id);
    if (!snap) throw new Error(`Snapshot ${r.snapshot_id} no longer exists`);
    const repo = asRepositorySet(d.repo).get(snap.backup_target);
    const owner = await getWorkload(db, { admin: true }, r.workload_id);
    const manifest = await repo.readManifest(snap.id, owner?.encryption ? { encryptedScope: storageScope(owner) } : {});
    const sizeOf = new Map(manifest.disks.map((x) => [x.diskKey, x.size]));
    const dataOf = new Map(manifest.disks.map((x) => [x.diskKey, Math.min(x.size, (x.chunkCount - x.holes) * x.chunkSize)]));
    const formatOf = diskFormats(manifest.meta);
    const total = plan.instances.reduce((a, p) => a + p.devices.reduce((b, dev) => b + (sizeOf.get(diskKey(p.id, dev)) ?? 0), 0), 0);
    await updateRestoreFields(db, r.id, { size: total }, ['executing']);
    progress = new ByteProgress(total);
    const publishing = new Publishing(d.platform.concurrentPublishes ?? 0);
    try {
      for (const [slot, p] of plan.instances.entries()) {
        abort.throwIfAborted();
        publishing.throwIfFailed();
        const si = snap.instances.find((i) => i.id === p.id);
        if (!si) throw new Error(`Instance ${p.id} is not in snapshot ${snap.id}`);
        const disks = new Map(p.devices.map((dev): [string, RestoreDiskInfo] => [dev, { size: sizeOf.get(diskKey(p.id, dev)) ?? 0, format: formatOf.get(diskKey(p.id, dev)) ?? 'raw', dataBytes: dataOf.get(diskKey(p.id, dev)) }]));
        const prepared = await restoreInstance({ ...d, repo }, { restoreId: r.id, projectId: r.project_id, kind: plan.kind, snapshotId: snap.id, si, p, disks }, { progress, abort, log }, result);
        if (prepared) await publishing.start(() => publishInstance(prepared, slot, result));
      }
    } finally {
      await publishing.settle();
    }
    publishing.throwIfFailed();
    await completeRestore(d, r, plan, total, started, result);
    log.info({ restoreId: r.id, kind: plan.kind, instances: restoredOf(result).length, failures: result.failures.length }, 'restore finished');
    d.onRestoreFinished?.(r.id);
  } catch (e) {
    ticker.stop();
    if (result.forceFull) await updateWorkloadFields(db, r.workload_id, { force_full: true }, toSecond(clock.now()));
    const cancelled = ticker.cancelled && !signal.aborted;
    const msg = cancelled ? null : signal.aborted ? RESTORE_LOST_MESSAGE : `Restore failed: ${errorMessage(e)}`;
    await finish(d, r.id, r.snapshot_id, r.workload_id, cancelled ? 'cancelled' : 'error', {
      progress_msg: cancelled ? 'Restore cancelled' : msg,
      error_msg: msg,
      instances: JSON.stringify(restoredOf(result)),
      finished_at: toSecond(clock.now()),
    });
    if (!cancelled) d.onRestoreFinished?.(r.id);
    if (!cancelled && !signal.aborted) throw e;
  } finally {
    ticker.stop();
  }
}

interface RestoreResult {
  /** The published instances by their place in the plan (publishes may end out of order): read through restoredOf(). */
  restored: (RestoredInstance | undefined)[];
  failures: string[];
  bytesWritten: number;
  /** What the platform said of the instances it published (warning_msg). */
  warnings: string[];
  /** A platform reset an instance's change tracking: the workload's next snapshot must be a full. */
  forceFull: boolean;
}

/** The published instances in plan order. */
function restoredOf(x: RestoreResult): RestoredInstance[] {
  return x.restored.filter((i): i is RestoredInstance => i !== undefined);
}

/**
 * The publishes of one restore that run while the next instance's disks are restored, at most
 * `limit` at once (0: each one is awaited before start() returns, as a plain loop would). The
 * first failure is kept: the caller starts nothing new after it (throwIfFailed), settle() waits
 * for the ones in flight, and the restore then fails with it.
 */
export class Publishing {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { e: unknown } | null = null;

  constructor(private readonly limit: number) {}

  async start(publish: () => Promise<void>): Promise<void> {
    if (this.limit <= 0) return publish();
    while (this.inFlight.size >= this.limit) await Promise.race(this.inFlight);
    const run: Promise<void> = publish()
      .catch((e: unknown) => void (this.failure ??= { e }))
      .finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure.e;
  }

  async settle(): Promise<void> {
    await Promise.all(this.inFlight);
  }
}

interface InstanceRestore {
  restoreId: string;
  projectId: string;
  kind: RestorePlan['kind'];
  snapshotId: string;
  si: SnapshotInstance;
  p: RestorePlanInstance;
  disks: Map<string, RestoreDiskInfo>;
}

/** A disk of the snapshot as its restore needs it: size, format, the bytes that hold data (non-hole chunks; undefined when the manifest lacks the disk). */
interface RestoreDiskInfo {
  size: number;
  format: string;
  dataBytes: number | undefined;
}

/**
 * One instance's data: prepare its target and restore each disk. Returns the prepared target
 * to publish, or null when a disk failed (named in `result.failures`). Whatever happens before
 * it is handed over for publishing (a failed disk, an abort, an error), the prepared target is
 * discarded: in place, committed disks stay restored and the others keep their original content.
 */
async function restoreInstance(d: Omit<RestoreJobDeps, 'repo'> & { repo: Repository }, x: InstanceRestore, run: { progress: ByteProgress; abort: AbortSignal; log: Logger }, result: RestoreResult): Promise<PreparedInstance | null> {
  const { progress, abort, log } = run;
  const tag = { restoreId: x.restoreId };
  const sizeOf = (dev: string) => x.disks.get(dev)?.size ?? 0;
  let prepared: PreparedInstance;
  if (x.kind === 'inplace') {
    const opts = x.p.powerOn === undefined ? {} : { powerOn: x.p.powerOn };
    const dataBytes = (dev: string) => x.disks.get(dev)?.dataBytes;
    prepared = await d.platform.openInPlaceSinks(x.projectId, x.p.id, x.p.devices.map((dev) => ({ device: dev, size: sizeOf(dev), ...(dataBytes(dev) !== undefined ? { data_bytes: dataBytes(dev) } : {}) })), tag, opts);
  } else {
    const spec = newInstanceSpec(x.si, x.p, x.disks);
    spec.metadata.restored_from_snapshot = x.snapshotId;
    prepared = await d.platform.createInstance(x.projectId, spec, tag);
  }
  let handedOver = false;
  try {
    const failedHere: string[] = [];
    for (const dev of x.p.devices) {
      const sink = prepared.sinks.get(dev);
      if (!sink) throw new Error(`No target for disk ${dev} of instance ${x.si.name}`);
      try {
        const sum = await restoreDisk({ repo: d.repo, snapshotId: x.snapshotId, diskKey: diskKey(x.p.id, dev), sink, signal: abort, onProgress: (q) => progress.update(q.bytesDone) });
        result.bytesWritten += sum.bytesWritten;
      } catch (e) {
        if (abort.aborted) throw abort.reason;
        failedHere.push(`disk ${dev} of instance ${x.si.name} (${x.si.id}): ${errorMessage(e)}`);
        await reportRestoreDamage(d.db, d.repo, e, d.clock.now()).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'damage report failed'));
      }
      progress.finishDisk(sizeOf(dev));
    }
    if (failedHere.length > 0) {
      result.failures.push(...failedHere);
      return null;
    }
    handedOver = true;
    return prepared;
  } finally {
    if (!handedOver) await prepared.discard().catch(() => undefined);
  }
}

/** Publishes a prepared instance into its place `slot` of the result; a publish that fails is discarded. */
async function publishInstance(prepared: PreparedInstance, slot: number, result: RestoreResult): Promise<void> {
  let published = false;
  try {
    let inst;
    try {
      inst = await prepared.publish();
    } finally {
      // Even a publish that failed half-way may have rewritten disks (in place): say so, force a full.
      const notes = prepared.notes?.();
      result.warnings.push(...(notes?.warnings ?? []));
      result.forceFull ||= notes?.changeTrackingReset ?? false;
    }
    published = true;
    result.restored[slot] = { id: inst.id, name: inst.name, status: 'available', metadata: { ...inst.metadata } };
  } finally {
    if (!published) await prepared.discard().catch(() => undefined);
  }
}

/** The final state: available when every instance was restored, else error naming the failures. */
async function completeRestore(d: RestoreJobDeps, r: { id: string; snapshot_id: string; workload_id: string }, plan: RestorePlan, total: number, started: number, x: RestoreResult): Promise<void> {
  const end = d.clock.now();
  const ok = x.failures.length === 0;
  await inTransaction(d.db, async (tx) => {
    if (ok && plan.kind === 'oneclick') {
      // The workload now protects the restored VMs (tempest compares the member ids).
      const w = await getWorkload(tx, { admin: true }, r.workload_id);
      if (w) await replaceMembers(tx, w.id, w.project_id, restoredOf(x).map((i) => ({ id: i.id, name: i.name, metadata: {} })));
    }
    // Disks rewritten without their change-tracking state: no checkpoint recorded before may be trusted.
    if (x.forceFull) await updateWorkloadFields(tx, r.workload_id, { force_full: true }, toSecond(end));
    await finishIn(tx, d, r.id, r.snapshot_id, r.workload_id, ok ? 'available' : 'error', {
      size: total,
      uploaded_size: x.bytesWritten,
      progress_percent: 100,
      progress_msg: ok ? 'Restore from snapshot is complete' : 'Restore failed',
      error_msg: ok ? null : `Restore failed: ${x.failures.join('; ')}`,
      warning_msg: x.warnings.length > 0 ? x.warnings.join('; ') : null,
      time_taken: Math.max(0, Math.round((end - started) / 1000)),
      instances: JSON.stringify(restoredOf(x)),
      finished_at: toSecond(end),
    });
  });
}

type Fields = Parameters<typeof updateRestoreFields>[2];

async function finishIn(tx: Parameters<Parameters<typeof inTransaction>[1]>[0], d: RestoreJobDeps, id: string, snapshotId: string, workloadId: string, status: 'available' | 'error' | 'cancelled', fields: Fields): Promise<void> {
  const now = toSecond(d.clock.now());
  // Not ours any more (an admin's unlock cancelled it): the snapshot and workload are not ours to release.
  if (!(await transitionRestore(tx, id, ['restoring', 'executing', 'cancelling'], status, now, fields))) return;
  await transitionSnapshot(tx, snapshotId, ['restoring'], 'available', now);
  await transitionWorkload(tx, workloadId, { admin: true }, ['locked'], 'available', now);
}

async function finish(d: RestoreJobDeps, id: string, snapshotId: string, workloadId: string, status: 'available' | 'error' | 'cancelled', fields: Fields): Promise<void> {
  await inTransaction(d.db, (tx) => finishIn(tx, d, id, snapshotId, workloadId, status, fields));
}

export function restoreJobHandlers(d: RestoreJobDeps): AnyJobHandler[] {
  return [
    {
      kind: RESTORE_JOBS.run,
      run: (job, ctx) => runRestore(d, job.payload.restoreId, job.payload.plan, ctx.signal, ctx.log),
      // The worker died: the restore is an error, the snapshot and workload usable again.
      onLost: async (job, nowMs) => {
        const r = await getRestore(d.db, { admin: true }, job.payload.restoreId);
        if (!r) return;
        // First, while the workload is still locked (no snapshot may read a domain mid-swap):
        // what the dead worker left — in-place temp files, partial new instances, an in-place
        // swap cut off half-way (finished by the platform: the next snapshot is then a full).
        // Best effort: the restore ends whatever the cleanup managed (onLost runs once).
        const left = await d.platform.cleanupRestore(r.project_id, { restoreId: r.id }, job.payload.plan.instances.map((p) => p.id)).catch(() => undefined);
        if (left?.changeTrackingReset) await updateWorkloadFields(d.db, r.workload_id, { force_full: true }, toSecond(nowMs));
        await finish(d, r.id, r.snapshot_id, r.workload_id, 'error', { error_msg: RESTORE_LOST_MESSAGE, progress_msg: RESTORE_LOST_MESSAGE, finished_at: toSecond(nowMs) });
        d.onRestoreFinished?.(r.id);
      },
    },
  ];
}

