import { inTransaction, type Db, type Tx } from '../store/db.js';
import { getWorkload, transitionWorkload, updateWorkloadFields } from '../store/workload.store.js';
import { finishTask, getSnapshot, markSnapshotDeleted, setSnapshotMetadata, transitionSnapshot, updateSnapshotFields } from '../store/snapshot.store.js';
import type { BackupOutcome, BackupSession, Checkpoint, DiskSource, Platform } from '../platform/platform.js';
import type { Repository } from '../repository/repository.js';
import { asRepositorySet, type RepositorySet } from '../repository/repository-set.js';
import type { DiskIndex } from '../repository/disk-index.format.js';
import type { SnapshotWriter } from '../repository/snapshot-writer.js';
import { backupDisk, type BackupDiskSummary } from '../datamover/backup.js';
import type { Disk, Instance } from '../domain/instance.js';
import { storageScope, type Workload } from '../domain/workload.js';
import { RUNNING_SNAPSHOT_STATES, SNAPSHOT_LOST_MESSAGE, type Snapshot, type SnapshotInstance } from '../domain/snapshot.js';
import { snapshotInstanceView } from '../domain/snapshot-instance.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { CancelledError, errorMessage } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { SNAPSHOT_JOBS } from './kinds.js';
import { releaseWorkloadWithRetention } from './retention.js';
import { ByteProgress, startTicker } from './progress-ticker.js';
import { checkpointRecord, loadSnapshotBase, type SnapshotBase } from './snapshot-base.js';
import { reportWriterDamage } from './damage.job.js';
import { snapshotManifestMeta } from './manifest-meta.js';
import type { AnyJobHandler, KindJob } from './runner.js';
import { routeSnapshot, type Route } from './routing.js';
import { enqueue } from './queue.js';
import type { DiskBackupNumbers } from '../lib/metrics.js';

export interface SnapshotJobDeps {
  db: Db;
  platform: Platform;
  /** The target repositories (or the one): each snapshot uses the one of its `backup_target`. */
  repo: Repository | RepositorySet;
  clock: Clock;
  nodeName: string;
  /** How often progress is written and cancellation is checked (ms). */
  progressEveryMs?: number;
  /** Called when a snapshot ends available or error (e-mail notification; best effort). */
  onSnapshotFinished?: (snapshotId: string) => void;
  /** Called after a snapshot delete so space can be reclaimed (GC runs outside the job). */
  onSnapshotDeleted?: () => void;
  /** Told the numbers of every backed-up disk (the /metrics byte and chunk counters). */
  metrics?: { recordDiskBackup(n: DiskBackupNumbers): void };
  /**
   * Per-host routing (routing.ts): a worker whose last heartbeat is older than this is not
   * live, so no snapshot is handed to it. Default 60 s (the default job lease).
   */
  liveWindowMs?: number;
}

/** The deps of one snapshot's steps: the repository of the snapshot's own target. */
type OnTarget = Omit<SnapshotJobDeps, 'repo'> & { repo: Repository };

function onTargetOf(d: SnapshotJobDeps, s: Snapshot): OnTarget {
  return { ...d, repo: asRepositorySet(d.repo).get(s.backup_target) };
}

/** The disk's name inside the repository: stable across snapshots of the same VM. */
export function diskKey(instanceId: string, device: string): string {
  return `${instanceId}:${device}`;
}

/**
 * What a running snapshot holds open: platform backup sessions (every disk source) and the
 * repository writer (lease). release() lets go of all of it on every path; idempotent.
 */
class Held {
  readonly sessions: { instance: Instance; session: BackupSession }[] = [];
  writerStart: Promise<SnapshotWriter> | null = null;
  writer: SnapshotWriter | null = null;

  /** Ends every session; on 'failed' also aborts the writer (the snapshot must not appear). */
  async release(outcome: BackupOutcome, log: Logger): Promise<void> {
    if (outcome === 'failed') {
      if (!this.writer && this.writerStart) this.writer = await this.writerStart.catch(() => null);
      this.writerStart = null;
      await this.writer?.abort().catch(() => undefined);
      this.writer = null;
    }
    const sessions = this.sessions.splice(0);
    await Promise.all(
      sessions.map(({ instance, session }) => session.end(outcome).catch((e: unknown) => log.warn({ instance: instance.id, err: errorMessage(e) }, 'ending a backup session failed'))),
    );
  }
}

interface PlannedDisk {
  instance: Instance;
  disk: Disk;
  source: DiskSource;
  key: string;
  /** The base checkpoint the disk's session began from (the datamover asks for changes since it). */
  cbtBase: string | null;
}

/**
 * Clock times (ms) at which a snapshot's steps ended: claimed (the job started), opened (every
 * backup session begun, the writer ready), copied (every disk in the repository), manifest
 * (durable), ended (the platform's sessions ended), available (the DB says so). Logged with
 * 'snapshot available'; the bench prints the breakdown from it.
 */
type PhaseMarks = { claimed: number } & Partial<Record<'opened' | 'copied' | 'manifest' | 'ended' | 'available', number>>;

/** Everything opened for one snapshot: the run and commit steps work from this. */
interface OpenedSnapshot {
  workload: Workload;
  instances: Instance[];
  base: SnapshotBase | null;
  disks: PlannedDisk[];
  total: number;
  writer: SnapshotWriter;
}

/**
 * Runs a snapshot as open → run → commit: open every member VM's backup session (and the
 * repository writer), copy every disk into the repository, then write the manifest (last,
 * carrying workload, instance metadata and the new platform checkpoints) and — only after it
 * is durable — mark the snapshot `available` and unlock the workload in one transaction.
 * Whatever happens, every session is ended and a writer that did not commit is aborted.
 */
async function takeSnapshot(deps: SnapshotJobDeps, job: KindJob<typeof SNAPSHOT_JOBS.take>, signal: AbortSignal, log: Logger): Promise<void> {
  const snapshotId = job.payload.snapshotId;
  // A job already targeted at this node was routed here; anything else asks where to run.
  const routed = job.targetNode === null && deps.platform.placement ? await routeOrHandOver(deps, snapshotId, log) : { instances: undefined };
  if (routed === 'handed-over') return;
  const s = await claimSnapshot(deps, snapshotId);
  if (!s) return;
  const d = onTargetOf(deps, s);
  const startedAt = d.clock.now();
  // When each step ended (clock ms), logged with 'snapshot available': where the time goes.
  const marks: PhaseMarks = { claimed: startedAt };
  const held = new Held();
  let progress: ByteProgress | null = null;
  const isCancelling = async () => (await getSnapshot(d.db, { admin: true }, s.id))?.status === 'cancelling';
  const ticker = startTicker({
    what: 'Snapshot',
    everyMs: d.progressEveryMs ?? 500,
    log,
    isCancelling,
    report: async () => {
      if (progress) await updateSnapshotFields(d.db, s.id, { progress_percent: progress.percent, updated_at: toSecond(d.clock.now()) }, ['uploading']);
    },
  });
  const abort = AbortSignal.any([signal, ticker.cancelSignal]);
  let outcome: BackupOutcome = 'failed';
  try {
    const opened = await openSnapshot(d, s, held, abort, log, routed.instances);
    marks.opened = d.clock.now();
    progress = new ByteProgress(opened.total);
    // Not moved: a cancel (or an admin's unlock) came while the sessions opened; it must not be lost.
    if (!(await transitionSnapshot(d.db, s.id, ['executing'], 'uploading', toSecond(d.clock.now()), { progress_msg: 'Uploading snapshot data', restore_size: opened.total }))) throw new CancelledError('Snapshot');
    const dataStart = d.clock.now();
    const summaries = await copyDisks(d, s, opened, progress, abort);
    marks.copied = d.clock.now();
    // A cancel that came after the ticker's last look (a copy shorter than one tick) is honoured
    // here, before the manifest makes the snapshot exist; commitSnapshot covers the rest.
    if (await isCancelling()) throw new CancelledError('Snapshot');
    // Not committed in the DB (an admin's unlock cancelled it): its checkpoint is no base either.
    if (!(await commitSnapshot(d, s, opened, held, summaries, { startedAt, dataStart, marks }, log))) return;
    outcome = 'committed';
    marks.available = d.clock.now();
    log.info({ snapshotId: s.id, type: s.snapshot_type, bytes: opened.total, modes: summaries.map((x) => x.mode), marks }, 'snapshot available');
    // Older snapshots that lost data (lost packs, copies the read-back found corrupt) say so.
    await reportWriterDamage(d.db, d.repo, opened.writer, d.clock.now()).catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'damage report failed'));
    d.onSnapshotFinished?.(s.id);
  } catch (e) {
    ticker.stop();
    await held.release('failed', log);
    if ((ticker.cancelled || e instanceof CancelledError) && !signal.aborted) return finishCancelled(d, s);
    await failSnapshot(d, s, signal.aborted ? SNAPSHOT_LOST_MESSAGE : `Snapshot failed: ${errorMessage(e)}`);
    if (!signal.aborted) throw e;
  } finally {
    ticker.stop();
    await held.release(outcome, log);
  }
}

/**
 * Runs the snapshot here, or hands it to a job only the worker of the instances' compute host
 * may claim (routing.ts), in one transaction with a progress message saying so; 'handed-over'
 * then, and this job ends. A snapshot no live worker can take fails here, naming the host.
 * The instances looked up here are returned for the snapshot to reuse.
 */
async function routeOrHandOver(d: SnapshotJobDeps, snapshotId: string, log: Logger): Promise<'handed-over' | { instances: Instance[] | undefined }> {
  const s = await getSnapshot(d.db, { admin: true }, snapshotId);
  const w = s?.status === 'creating' ? await getWorkload(d.db, { admin: true }, s.workload_id) : null;
  if (!s || !w) return { instances: undefined };
  const instances: Instance[] = [];
  let route: Route;
  try {
    for (const m of w.instances) {
      const inst = await d.platform.getInstance(w.project_id, m.id);
      if (!inst) return { instances: undefined }; // the snapshot's open step fails naming it
      instances.push(inst);
    }
    route = await routeSnapshot({ db: d.db, platform: d.platform, clock: d.clock, nodeName: d.nodeName, liveWindowMs: d.liveWindowMs ?? 60_000 }, w.project_id, instances);
  } catch (e) {
    // Nowhere to run (UnroutableError names the host) or the platform failed: the snapshot ends here.
    await failSnapshot(d, s, `Snapshot failed: ${errorMessage(e)}`);
    throw e;
  }
  if (route.kind === 'here') return { instances };
  const node = route.node;
  const now = d.clock.now();
  const handed = await inTransaction(d.db, async (tx) => {
    const msg = `Waiting for the Lifeboat worker of compute host ${node}`;
    if (!(await updateSnapshotFields(tx, s.id, { progress_msg: msg, updated_at: toSecond(now) }, ['creating']))) return false;
    await enqueue(tx, SNAPSHOT_JOBS.take, { snapshotId: s.id }, { resourceId: s.id, now, targetNode: node });
    return true;
  });
  if (!handed) return { instances: undefined }; // cancelled or gone meanwhile: claimSnapshot settles it
  log.info({ snapshotId: s.id, node, instances: route.instances }, 'snapshot handed to the worker of its compute host');
  return 'handed-over';
}

/** creating → executing on this node; null when there is nothing to run (gone, cancelled, taken). */
async function claimSnapshot(d: SnapshotJobDeps, snapshotId: string): Promise<Snapshot | null> {
  const s = await getSnapshot(d.db, { admin: true }, snapshotId);
  if (!s) return null;
  if (s.status === 'cancelling') return finishCancelled(d, s).then(() => null);
  if (s.status !== 'creating') return null;
  const moved = await transitionSnapshot(d.db, s.id, ['creating'], 'executing', toSecond(d.clock.now()), { host: d.nodeName, progress_msg: 'Snapshot of workload is starting', progress_percent: 0 });
  if (moved) return s;
  const again = await getSnapshot(d.db, { admin: true }, snapshotId);
  if (again?.status === 'cancelling') await finishCancelled(d, again);
  return null;
}

/**
 * Open step: the workload's VMs, the incremental base, a backup session per VM (each pushed
 * into `held` as soon as it exists, so a later failure still ends it) and the writer.
 */
async function openSnapshot(d: OnTarget, s: Snapshot, held: Held, abort: AbortSignal, log: Logger, known?: Instance[]): Promise<OpenedSnapshot> {
  const w = await getWorkload(d.db, { admin: true }, s.workload_id);
  if (!w) throw new Error(`Workload ${s.workload_id} no longer exists`);
  // The writer (lease, GC plan, the project's chunk index) loads while the platform and the
  // base are consulted: it is independent of both, and taking the lease earlier is only safer.
  // Stored under the workload's storage scope: its project, or its own (encrypted: sealed under its data key).
  const scope = storageScope(w);
  held.writerStart = d.repo.beginSnapshot({ projectId: scope, snapshotId: s.id, encryptedFor: w.encryption ? { workloadId: w.id, projectId: w.project_id, secretUuid: w.secret_uuid ?? null } : null });
  held.writerStart.catch(() => undefined); // awaited below, or aborted by release()
  // A scheduled run acts for the workload's owner (OpenStack: a new trust-scoped token per run).
  if (s.is_scheduled) await d.platform.beginScheduledRun?.(w.project_id, w.user_id, w.instances.map((m) => m.id));
  const instances: Instance[] = [];
  // Looked up moments ago by the routing step (same workload: it is locked): not asked again.
  for (const m of known ? [] : w.instances) {
    const inst = await d.platform.getInstance(w.project_id, m.id);
    if (!inst) throw new Error(`Instance ${m.name} (${m.id}) could not be found on the platform`);
    instances.push(inst);
  }
  if (known) instances.push(...known);
  // A full trusts nothing of earlier snapshots, checkpoints included.
  const loaded = s.snapshot_type === 'incremental' ? await loadSnapshotBase(d.db, d.repo, w.id, log) : null;
  // A base stored under another project (the workload was reassigned since) holds chunks keyed
  // for that project: this snapshot stores its data anew under the workload's project.
  const base = loaded && loaded.manifest.projectId === scope ? loaded : null;
  if (loaded && !base) log.info({ snapshotId: s.id, baseProject: loaded.manifest.projectId }, 'base snapshot stored under another project: reading every disk in full');
  const disks: PlannedDisk[] = [];
  for (const instance of instances) {
    abort.throwIfAborted();
    const baseCheckpoint: Checkpoint | null = base?.checkpoints.get(instance.id) ?? null;
    const session = await d.platform.beginBackup(instance, { baseCheckpoint });
    held.sessions.push({ instance, session });
    for (const { disk, source } of session.disks) disks.push({ instance, disk, source, key: diskKey(instance.id, disk.device), cbtBase: baseCheckpoint?.name ?? null });
  }
  held.writer = await held.writerStart;
  held.writerStart = null;
  return { workload: w, instances, base, disks, total: disks.reduce((a, x) => a + x.source.size, 0), writer: held.writer };
}

/** Run step: every disk through the datamover; the next base index is read while a disk runs. */
async function copyDisks(d: OnTarget, s: Snapshot, o: OpenedSnapshot, progress: ByteProgress, abort: AbortSignal): Promise<BackupDiskSummary[]> {
  const baseIndexOf = (i: number): Promise<DiskIndex | null> => {
    const x = o.disks[i];
    const bd = x ? o.base?.manifest.disks.find((y) => y.diskKey === x.key) : undefined;
    return bd ? d.repo.readDiskIndex(bd.index).catch(() => null) : Promise.resolve(null);
  };
  let nextBase = baseIndexOf(0);
  const summaries: BackupDiskSummary[] = [];
  for (const [i, x] of o.disks.entries()) {
    const base = await nextBase;
    nextBase = baseIndexOf(i + 1);
    const summary = await backupDisk({
      writer: o.writer,
      diskKey: x.key,
      source: x.source,
      meta: { instanceId: x.instance.id, device: x.disk.device },
      full: s.snapshot_type === 'full',
      base,
      cbtBase: x.cbtBase,
      signal: abort,
      onProgress: (p) => progress.update(p.bytesDone),
    });
    summaries.push(summary);
    d.metrics?.recordDiskBackup({ ...summary, bytesDeduplicated: Math.min(x.source.size, summary.reusedChunks * o.writer.chunkSize) });
    progress.finishDisk(x.source.size);
  }
  abort.throwIfAborted();
  return summaries;
}

/**
 * Commit step: the manifest (the snapshot exists on the target from here; it carries what is
 * needed to rebuild the DB, checkpoints included), then the DB row in one transaction. False
 * when the row was no longer ours to make available (an admin's unlock cancelled it).
 */
async function commitSnapshot(d: OnTarget, s: Snapshot, o: OpenedSnapshot, held: Held, summaries: BackupDiskSummary[], t: { startedAt: number; dataStart: number; marks: PhaseMarks }, log: Logger): Promise<boolean> {
  const w = o.workload;
  const sizes = new Map<string, Map<string, number>>();
  for (const x of o.disks) sizes.set(x.instance.id, (sizes.get(x.instance.id) ?? new Map<string, number>()).set(x.disk.device, x.source.size));
  const views: SnapshotInstance[] = o.instances.map((inst) => snapshotInstanceView(inst, w, sizes.get(inst.id) ?? new Map(), new Map(inst.disks.map((dk) => [dk.device, newId()]))));
  const checkpoints = checkpointRecord(held.sessions.map(({ instance, session }) => [instance.id, session.checkpoint]));
  const warnings = held.sessions.flatMap(({ session }) => session.warnings);
  const transferSeconds = Math.round((d.clock.now() - t.dataStart) / 1000);
  const stored = summaries.reduce((a, x) => a + x.bytesStored, 0);
  const snapshotMeta = { data_transfer_time: String(transferSeconds), workload_approx_backup_size: String(Math.ceil(stored / 2 ** 20)) };
  const manifest = await o.writer.commit(
    await snapshotManifestMeta(d.db, {
      snapshot: s,
      workload: w,
      host: d.nodeName,
      startedAt: t.startedAt,
      warnings,
      metadata: snapshotMeta,
      instances: views,
      disks: o.disks.map((x) => ({ instanceId: x.instance.id, device: x.disk.device, size: x.source.size, format: x.disk.format })),
      checkpoints,
    }),
  );
  held.writer = null; // committed: nothing to abort any more
  t.marks.manifest = d.clock.now();
  // The platform commits its checkpoints (libvirt: ends the backup job, keeps the new bitmap,
  // drops the old base) before the row says `available` and the workload is unlocked: the
  // next snapshot of the workload can then never overlap this one's end(). Should the
  // transaction below fail, the new checkpoint is simply never used as a base; the platform
  // then finds the older base's bitmap gone and starts a new chain (never a wrong incremental).
  await held.release('committed', log);
  t.marks.ended = d.clock.now();

  // The manifest's commit time is the snapshot's end: an import rebuilds the same record from it.
  const end = manifest.createdAt;
  const outcome = await inTransaction(d.db, async (tx): Promise<'available' | 'cancelled' | 'not ours'> => {
    // Not ours any more (an admin's unlock cancelled it): the workload's lock is not ours to release.
    // A user's cancel that came during the commit is honoured too: the snapshot ends `cancelled`.
    const committed = await transitionSnapshot(tx, s.id, ['uploading'], 'available', toSecond(end), {
      size: stored,
      uploaded_size: stored,
      restore_size: o.total,
      progress_percent: 100,
      progress_msg: 'Snapshot of workload is complete',
      time_taken: Math.max(0, Math.round((end - t.startedAt) / 1000)),
      finished_at: toSecond(end),
      instances: JSON.stringify(views),
      checkpoints: checkpoints ? JSON.stringify(checkpoints) : null,
      ...(warnings.length > 0 ? { warning_msg: warnings.join('; ') } : {}),
    });
    if (!committed) return (await cancelInTx(tx, s, toSecond(d.clock.now()))) ? 'cancelled' : 'not ours';
    await setSnapshotMetadata(tx, s.id, snapshotMeta, toSecond(end));
    if (s.snapshot_type === 'full') await updateWorkloadFields(tx, w.id, { force_full: false }, toSecond(end));
    // Unlocks the workload, and starts deleting snapshots beyond its retention in the same transaction.
    await releaseWorkloadWithRetention(tx, w.id, s.id, end);
    return 'available';
  });
  // Cancelled after its manifest was written: the target must not keep a snapshot the DB says
  // was cancelled (an import would bring it back). Its chunks are left to GC.
  if (outcome === 'cancelled') await d.repo.deleteSnapshot(s.id).catch((e: unknown) => log.warn({ snapshotId: s.id, err: errorMessage(e) }, 'removing a cancelled snapshot from the target failed'));
  return outcome === 'available';
}

/** The snapshot ends `error` with `msg` and the workload is usable again (if the snapshot was still ours). */
async function failSnapshot(d: SnapshotJobDeps, s: Snapshot, msg: string, nowMs = d.clock.now()): Promise<void> {
  const now = toSecond(nowMs);
  await inTransaction(d.db, async (tx) => {
    const changed = await transitionSnapshot(tx, s.id, [...RUNNING_SNAPSHOT_STATES, 'cancelling'], 'error', now, { error_msg: msg, progress_msg: msg, finished_at: now });
    if (changed) await transitionWorkload(tx, s.workload_id, { admin: true }, ['locked'], 'available', now);
  });
  d.onSnapshotFinished?.(s.id);
}

async function finishCancelled(d: SnapshotJobDeps, s: Snapshot): Promise<void> {
  await inTransaction(d.db, (tx) => cancelInTx(tx, s, toSecond(d.clock.now())));
}

/** A running or cancelling snapshot becomes `cancelled` and its workload usable; false when it was not ours any more. */
async function cancelInTx(tx: Tx, s: Snapshot, now: number): Promise<boolean> {
  const changed = await transitionSnapshot(tx, s.id, [...RUNNING_SNAPSHOT_STATES, 'cancelling'], 'cancelled', now, { progress_msg: 'Snapshot cancelled', finished_at: now });
  if (changed) await transitionWorkload(tx, s.workload_id, { admin: true }, ['locked'], 'available', now);
  return changed;
}

/**
 * Deletes a snapshot: manifest and disk indexes go (the snapshot disappears atomically on the
 * target), then the row is marked deleted and the workload unlocked. Idempotent, so a lost
 * delete is simply completed by the reconciler.
 */
async function deleteSnapshot(d: SnapshotJobDeps, snapshotId: string, taskId: string | undefined): Promise<void> {
  const s = await getSnapshot(d.db, { admin: true }, snapshotId);
  if (!s || s.status !== 'deleting') return;
  await onTargetOf(d, s).repo.deleteSnapshot(s.id);
  const now = toSecond(d.clock.now());
  await inTransaction(d.db, async (tx) => {
    await markSnapshotDeleted(tx, s.id, now);
    await transitionWorkload(tx, s.workload_id, { admin: true }, ['locked_for_delete'], 'available', now);
    if (taskId) await finishTask(tx, taskId, 'done', 'Snapshot deleted', now);
  });
  d.onSnapshotDeleted?.();
}

export function snapshotJobHandlers(d: SnapshotJobDeps): AnyJobHandler[] {
  return [
    {
      kind: SNAPSHOT_JOBS.take,
      run: (job, ctx) => takeSnapshot(d, job, ctx.signal, ctx.log),
      // The worker died (or no live worker serves the job's node: `reason`): never re-run; the
      // snapshot is an error and the workload usable again.
      onLost: async (job, nowMs, reason) => {
        const s = await getSnapshot(d.db, { admin: true }, job.payload.snapshotId);
        if (!s) return;
        // First, while the workload is still locked: what the dead worker left on the platform.
        const w = d.platform.cleanupBackup ? await getWorkload(d.db, { admin: true }, s.workload_id) : null;
        // Best effort (the platform logs what it could not end; its next backup retries).
        if (w) await d.platform.cleanupBackup!(w.project_id, w.instances.map((i) => i.id)).catch(() => undefined);
        await failSnapshot(d, s, reason ? `Snapshot failed: ${reason}` : SNAPSHOT_LOST_MESSAGE, nowMs);
      },
    },
    {
      kind: SNAPSHOT_JOBS.delete,
      run: (job) => deleteSnapshot(d, job.payload.snapshotId, job.payload.taskId),
      onLost: (job) => deleteSnapshot(d, job.payload.snapshotId, job.payload.taskId),
    },
  ];
}
