import { inTransaction, type Tx } from '../store/db.js';
import { getWorkload, transitionWorkload, updateWorkloadFields } from '../store/workload.store.js';
import { finishTask, getSnapshot, markSnapshotDeleted, setSnapshotMetadata, transitionSnapshot, updateSnapshotFields } from '../store/snapshot.store.js';
import { commitSnapshotParts } from '../store/snapshot-part.store.js';
import type { BackupOutcome, Checkpoint } from '../platform/platform.js';
import type { SnapshotWriter } from '../repository/snapshot-writer.js';
import type { BackupDiskSummary } from '../datamover/backup.js';
import type { Instance } from '../domain/instance.js';
import { storageScope, type Workload } from '../domain/workload.js';
import { RUNNING_SNAPSHOT_STATES, SNAPSHOT_LOST_MESSAGE, type Snapshot, type SnapshotInstance } from '../domain/snapshot.js';
import { snapshotInstanceView } from '../domain/snapshot-instance.js';
import type { Logger } from '../lib/logger.js';
import { CancelledError, errorMessage } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { SNAPSHOT_JOBS } from './kinds.js';
import { releaseWorkloadWithRetention } from './retention.js';
import { ByteProgress, startTicker } from './progress-ticker.js';
import { checkpointRecord, type SnapshotBase } from './snapshot-base.js';
import { reportWriterDamage } from './damage.job.js';
import { snapshotManifestMeta } from './manifest-meta.js';
import type { AnyJobHandler, KindJob } from './runner.js';
import { routeSnapshot, type Route } from './routing.js';
import { enqueue } from './queue.js';
import { assertEncryptionAllows, baseFor, beginSessions, copyDisks, Held, onTargetOf, prefetchFirstBaseIndex, type BaseIndexPrefetch, type OnTarget, type PlannedDisk, type SnapshotJobDeps } from './snapshot-steps.js';
import { awaitParts, awaitPartsEnded, enqueueParts, partsProgress, snapshotPartHandler, type PartResult } from './snapshot-part.job.js';

export { diskKey, type SnapshotJobDeps } from './snapshot-steps.js';

/** The VMs a snapshot reads here, and the per-host parts other workers read (routing.ts 'split'). */
interface Routed {
  instances: Instance[] | undefined;
  parts?: { node: string; instances: Instance[] }[];
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
  /** What the per-host parts wrote (a split snapshot), once every part is written. */
  parts: PartResult[];
  /** The first disk's base index, read while the sessions opened. */
  firstBaseIndex: BaseIndexPrefetch | null;
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
  const routed: Routed | 'handed-over' = job.targetNode === null && deps.platform.placement ? await routeOrHandOver(deps, snapshotId, log) : { instances: undefined };
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
      if (!progress) return;
      // A split snapshot's percent counts its parts' bytes too.
      const percent = routed.parts ? await partsProgress(d, s.id, progress) : progress.percent;
      await updateSnapshotFields(d.db, s.id, { progress_percent: percent, updated_at: toSecond(d.clock.now()) }, ['uploading']);
    },
  });
  const abort = AbortSignal.any([signal, ticker.cancelSignal]);
  let outcome: BackupOutcome = 'failed';
  try {
    const opened = await openSnapshot(d, s, held, abort, log, routed);
    marks.opened = d.clock.now();
    progress = new ByteProgress(opened.total);
    // Not moved: a cancel (or an admin's unlock) came while the sessions opened; it must not be lost.
    if (!(await transitionSnapshot(d.db, s.id, ['executing'], 'uploading', toSecond(d.clock.now()), { progress_msg: 'Uploading snapshot data', restore_size: opened.total }))) throw new CancelledError('Snapshot');
    const dataStart = d.clock.now();
    const summaries = await copyDisks(d, { ...opened, full: s.snapshot_type === 'full', onDiskRead: (i) => held.diskRead(i) }, progress, abort);
    if (routed.parts) opened.parts = await awaitWrittenParts(d, s, routed.parts, abort);
    marks.copied = d.clock.now();
    // A cancel that came after the ticker's last look (a copy shorter than one tick) is honoured
    // here, before the manifest makes the snapshot exist; commitSnapshot covers the rest.
    if (await isCancelling()) throw new CancelledError('Snapshot');
    // Not committed in the DB (an admin's unlock cancelled it): its checkpoint is no base either.
    if (!(await commitSnapshot(d, s, opened, held, summaries, { startedAt, dataStart, marks }, log))) return;
    outcome = 'committed';
    marks.available = d.clock.now();
    log.info({ snapshotId: s.id, type: s.snapshot_type, bytes: opened.total, modes: [...summaries.map((x) => x.mode), ...opened.parts.flatMap((p) => p.modes)], marks }, 'snapshot available');
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
 * The instances looked up here are returned for the snapshot to reuse: for a split snapshot,
 * those read here, with the parts for the other hosts (queued once the writer is open).
 */
async function routeOrHandOver(d: SnapshotJobDeps, snapshotId: string, log: Logger): Promise<'handed-over' | Routed> {
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
  if (route.kind === 'split') return { instances: route.here, parts: route.parts };
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
 * into `held` as soon as it exists, so a later failure still ends it) and the writer. A split
 * snapshot queues its per-host parts once its writer (and so its lease) is open: the lease is
 * what keeps GC off the parts' objects until the manifest names them.
 */
async function openSnapshot(d: OnTarget, s: Snapshot, held: Held, abort: AbortSignal, log: Logger, routed: Routed): Promise<OpenedSnapshot> {
  const w = await getWorkload(d.db, { admin: true }, s.workload_id);
  if (!w) throw new Error(`Workload ${s.workload_id} no longer exists`);
  // The writer (lease, GC plan) starts while the platform and the base are consulted: it is
  // independent of both, and taking the lease earlier is only safer. Its chunk index goes on
  // loading while the first disk is read and hashed (the datamover waits for it before a lookup).
  // Stored under the workload's storage scope: its project, or its own (encrypted: sealed under its data key).
  const scope = storageScope(w);
  held.writerStart = d.repo.startSnapshot({ projectId: scope, snapshotId: s.id, encryptedFor: w.encryption ? { workloadId: w.id, projectId: w.project_id, secretUuid: w.secret_uuid ?? null } : null });
  held.writerStart.catch(() => undefined); // awaited below, or aborted by release()
  if (routed.parts) await queueParts(d, s, held, routed.parts, log);
  // A scheduled run acts for the workload's owner (OpenStack: a new trust-scoped token per run).
  if (s.is_scheduled) await d.platform.beginScheduledRun?.(w.project_id, w.user_id, w.instances.map((m) => m.id));
  // The base (database and repository) is loaded while the platform is asked for the instances.
  const baseP = baseFor(d, s, scope, log);
  baseP.catch(() => undefined); // awaited below unless an instance lookup fails first
  const instances: Instance[] = [];
  // Looked up moments ago by the routing step (same workload: it is locked): not asked again.
  for (const m of routed.instances ? [] : w.instances) {
    const inst = await d.platform.getInstance(w.project_id, m.id);
    if (!inst) throw new Error(`Instance ${m.name} (${m.id}) could not be found on the platform`);
    instances.push(inst);
  }
  if (routed.instances) instances.push(...routed.instances);
  assertEncryptionAllows(w, instances);
  const base = await baseP;
  const firstBaseIndex = prefetchFirstBaseIndex(d, base, instances[0]);
  const disks = await beginSessions(d, instances, base, held, abort);
  held.writer = await held.writerStart;
  held.writerStart = null;
  return { workload: w, instances, base, disks, total: disks.reduce((a, x) => a + x.source.size, 0), writer: held.writer, parts: [], firstBaseIndex };
}

/** Waits for the writer's lease, then queues one part per other host (the snapshot must still be ours: executing). */
async function queueParts(d: OnTarget, s: Snapshot, held: Held, parts: NonNullable<Routed['parts']>, log: Logger): Promise<void> {
  held.writer = await held.writerStart!;
  held.writerStart = Promise.resolve(held.writer); // openSnapshot awaits it again
  const now = d.clock.now();
  const hosts = parts.map((p) => p.node).join(', ');
  const queued = await inTransaction(d.db, async (tx) => {
    const msg = `Snapshot of workload is starting; the Lifeboat workers of compute hosts ${hosts} read their servers`;
    if (!(await updateSnapshotFields(tx, s.id, { progress_msg: msg, updated_at: toSecond(now) }, ['executing']))) return false;
    await enqueueParts(tx, s, parts, now);
    return true;
  });
  if (!queued) throw new CancelledError('Snapshot');
  log.info({ snapshotId: s.id, parts: parts.map((p) => ({ node: p.node, instances: p.instances.map((i) => i.id) })) }, 'snapshot split into per-host parts');
}

/** After the parent's own disks: waits for every part to be written; their results. */
async function awaitWrittenParts(d: OnTarget, s: Snapshot, parts: NonNullable<Routed['parts']>, abort: AbortSignal): Promise<PartResult[]> {
  const msg = `Waiting for the Lifeboat workers of compute hosts ${parts.map((p) => p.node).join(', ')}`;
  await updateSnapshotFields(d.db, s.id, { progress_msg: msg, updated_at: toSecond(d.clock.now()) }, ['uploading']);
  const written = await awaitParts(d, s.id, ['written'], d.progressEveryMs ?? 500, abort);
  return written.map((p) => p.result as PartResult);
}

/**
 * How long the parent waits, after its manifest, for its parts to end their backup sessions
 * (a libvirt backup job ends in well under a second): beyond it the snapshot is made available
 * anyway, since its data is durable; a part still ending then costs at most its host's next
 * incremental (read in full when the checkpoint is missing).
 */
const PART_END_BOUND_MS = 120_000;

/**
 * Commit step: the manifest (the snapshot exists on the target from here; it carries what is
 * needed to rebuild the DB, checkpoints included), then the DB row in one transaction. False
 * when the row was no longer ours to make available (an admin's unlock cancelled it).
 */
async function commitSnapshot(d: OnTarget, s: Snapshot, o: OpenedSnapshot, held: Held, summaries: BackupDiskSummary[], t: { startedAt: number; dataStart: number; marks: PhaseMarks }, log: Logger): Promise<boolean> {
  const w = o.workload;
  // This worker's disks and sessions, then every part's (a split snapshot), in one manifest.
  const diskList = [
    ...o.disks.map((x) => ({ instanceId: x.instance.id, device: x.disk.device, size: x.source.size, format: x.disk.format })),
    ...o.parts.flatMap((p) => p.disks.map(({ instanceId, device, size, format }) => ({ instanceId, device, size, format }))),
  ];
  const sizes = new Map<string, Map<string, number>>();
  for (const x of diskList) sizes.set(x.instanceId, (sizes.get(x.instanceId) ?? new Map<string, number>()).set(x.device, x.size));
  const instances = [...o.instances, ...o.parts.flatMap((p) => p.instances)];
  const views: SnapshotInstance[] = instances.map((inst) => snapshotInstanceView(inst, w, sizes.get(inst.id) ?? new Map(), new Map(inst.disks.map((dk) => [dk.device, newId()]))));
  const checkpoints = checkpointRecord([...held.sessions.map(({ instance, session }): [string, Checkpoint | null] => [instance.id, session.checkpoint]), ...o.parts.flatMap((p) => p.checkpoints)]);
  const warnings = [...held.sessions.flatMap(({ session }) => session.warnings), ...o.parts.flatMap((p) => p.warnings)];
  const transferSeconds = Math.round((d.clock.now() - t.dataStart) / 1000);
  const stored = summaries.reduce((a, x) => a + x.bytesStored, 0) + o.parts.reduce((a, p) => a + p.bytesStored, 0);
  const total = diskList.reduce((a, x) => a + x.size, 0);
  o.writer.adoptDisks(o.parts.flatMap((p) => p.disks.map((x) => x.manifest)));
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
      disks: diskList,
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
  // A split snapshot's parts do the same on their hosts, and are waited for likewise.
  if (o.parts.length > 0) await commitSnapshotParts(d.db, s.id, d.clock.now());
  await held.release('committed', log);
  if (o.parts.length > 0) await awaitPartsEnded(d, s.id, d.progressEveryMs ?? 500, AbortSignal.timeout(PART_END_BOUND_MS), log).catch((e: unknown) => log.warn({ snapshotId: s.id, err: errorMessage(e) }, 'parts did not end their sessions in time'));
  t.marks.ended = d.clock.now();

  // The manifest's commit time is the snapshot's end: an import rebuilds the same record from it.
  const end = manifest.createdAt;
  const outcome = await inTransaction(d.db, async (tx): Promise<'available' | 'cancelled' | 'not ours'> => {
    // Not ours any more (an admin's unlock cancelled it): the workload's lock is not ours to release.
    // A user's cancel that came during the commit is honoured too: the snapshot ends `cancelled`.
    const committed = await transitionSnapshot(tx, s.id, ['uploading'], 'available', toSecond(end), {
      size: stored,
      uploaded_size: stored,
      restore_size: total,
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

/**
 * The snapshot ends `error` with `msg`, at 100 % (ended, as workloadmgr records a snapshot that
 * did not finish), and the workload is usable again (if the snapshot was still ours).
 */
async function failSnapshot(d: SnapshotJobDeps, s: Snapshot, msg: string, nowMs = d.clock.now()): Promise<void> {
  const now = toSecond(nowMs);
  await inTransaction(d.db, async (tx) => {
    const changed = await transitionSnapshot(tx, s.id, [...RUNNING_SNAPSHOT_STATES, 'cancelling'], 'error', now, { error_msg: msg, progress_msg: msg, progress_percent: 100, finished_at: now });
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
    snapshotPartHandler(d),
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
