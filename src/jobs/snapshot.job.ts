import { inTransaction, type Db } from '../store/db.js';
import { getWorkload, transitionWorkload, updateWorkloadFields } from '../store/workload.store.js';
import { finishTask, getSnapshot, latestAvailableSnapshot, markSnapshotDeleted, setSnapshotMetadata, transitionSnapshot, updateSnapshotFields } from '../store/snapshot.store.js';
import type { Platform } from '../platform/platform.js';
import type { Repository } from '../repository/repository.js';
import type { Manifest } from '../repository/manifest.format.js';
import type { DiskIndex } from '../repository/disk-index.format.js';
import type { DiskSource } from '../platform/platform.js';
import { backupDisk, type BackupDiskSummary } from '../datamover/backup.js';
import type { Instance } from '../domain/instance.js';
import { RUNNING_SNAPSHOT_STATES, SNAPSHOT_LOST_MESSAGE, type Snapshot, type SnapshotInstance } from '../domain/snapshot.js';
import { snapshotInstanceView } from '../domain/snapshot-instance.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { CancelledError, errorMessage } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { SNAPSHOT_JOBS } from './kinds.js';
import { releaseWorkloadWithRetention } from './retention.js';
import { reportWriterDamage } from './damage.job.js';
import type { AnyJobHandler } from './runner.js';

export interface SnapshotJobDeps {
  db: Db;
  platform: Platform;
  repo: Repository;
  clock: Clock;
  nodeName: string;
  /** How often progress is written and cancellation is checked (ms). */
  progressEveryMs?: number;
  /** Called when a snapshot ends available or error (e-mail notification; best effort). */
  onSnapshotFinished?: (snapshotId: string) => void;
  /** Called after a snapshot delete so space can be reclaimed (GC runs outside the job). */
  onSnapshotDeleted?: () => void;
}

/** The disk's name inside the repository: stable across snapshots of the same VM. */
export function diskKey(instanceId: string, device: string): string {
  return `${instanceId}:${device}`;
}


/**
 * Runs a snapshot: every disk of every member VM into the repository, then the manifest
 * (written last, carrying workload + instance metadata), then — only after the manifest is
 * durable — the DB says `available` and the workload is unlocked, in one transaction.
 */
async function takeSnapshot(d: SnapshotJobDeps, snapshotId: string, signal: AbortSignal, log: Logger): Promise<void> {
  const { db, repo, clock } = d;
  const s = await getSnapshot(db, { admin: true }, snapshotId);
  if (!s) return;
  if (s.status === 'cancelling') return finishCancelled(d, s);
  if (s.status !== 'creating') return;
  const startedAt = clock.now();
  if (!(await transitionSnapshot(db, s.id, ['creating'], 'executing', toSecond(startedAt), { host: d.nodeName, progress_msg: 'Snapshot of workload is starting', progress_percent: 0 }))) {
    const again = await getSnapshot(db, { admin: true }, snapshotId);
    if (again?.status === 'cancelling') return finishCancelled(d, again);
    return;
  }

  const cancelCtl = new AbortController();
  const abort = AbortSignal.any([signal, cancelCtl.signal]);
  let writer: Awaited<ReturnType<Repository['beginSnapshot']>> | null = null;
  let writerStart: ReturnType<Repository['beginSnapshot']> | null = null;
  let ticker: NodeJS.Timeout | null = null;
  try {
    const w = await getWorkload(db, { admin: true }, s.workload_id);
    if (!w) throw new Error(`Workload ${s.workload_id} no longer exists`);
    // The writer (lease, GC plan, the project's chunk index) loads while the platform and the
    // base are consulted: it is independent of both, and taking the lease earlier is only safer.
    writerStart = repo.beginSnapshot({ projectId: w.project_id, snapshotId: s.id });
    writerStart.catch(() => undefined); // awaited below, or aborted in the catch
    const instances: Instance[] = [];
    for (const m of w.instances) {
      const inst = await d.platform.getInstance(w.project_id, m.id);
      if (!inst) throw new Error(`Instance ${m.name} (${m.id}) could not be found on the platform`);
      instances.push(inst);
    }

    // Incremental base: the newest available snapshot's manifest (a full trusts nothing).
    let base: Manifest | null = null;
    if (s.snapshot_type === 'incremental') {
      const prev = await latestAvailableSnapshot(db, w.id);
      if (prev) base = await repo.readManifest(prev.id).catch((e: unknown) => {
        log.warn({ err: errorMessage(e), base: prev.id }, 'previous snapshot manifest unreadable; reading every disk in full');
        return null;
      });
    }

    // Open every disk first: sizes give restore_size and the progress total.
    const sources: { inst: Instance; disk: Instance['disks'][number]; source: DiskSource }[] = [];
    for (const inst of instances) for (const disk of inst.disks) sources.push({ inst, disk, source: await d.platform.openDiskSource(inst, disk) });
    const total = sources.reduce((a, x) => a + x.source.size, 0);
    let doneBefore = 0;
    let current = 0;
    const percent = () => (total === 0 ? 99 : Math.min(99, Math.floor(((doneBefore + current) * 100) / total)));

    await transitionSnapshot(db, s.id, ['executing'], 'uploading', toSecond(clock.now()), { progress_msg: 'Uploading snapshot data', restore_size: total });
    ticker = setInterval(() => {
      void (async () => {
        const cur = await getSnapshot(db, { admin: true }, s.id);
        if (cur?.status === 'cancelling') cancelCtl.abort(new CancelledError('Snapshot'));
        else await updateSnapshotFields(db, s.id, { progress_percent: percent(), updated_at: toSecond(clock.now()) }, ['uploading']);
      })().catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'progress update failed'));
    }, d.progressEveryMs ?? 500);

    // Base disk indexes: the next one is read while the current disk runs (at most two held).
    const baseIndexOf = (i: number): Promise<DiskIndex | null> => {
      const x = sources[i];
      const bd = x ? base?.disks.find((y) => y.diskKey === diskKey(x.inst.id, x.disk.device)) : undefined;
      return bd ? repo.readDiskIndex(bd.index).catch(() => null) : Promise.resolve(null);
    };
    let nextBase = baseIndexOf(0);
    writer = await writerStart;
    writerStart = null;
    const summaries: BackupDiskSummary[] = [];
    const dataStart = clock.now();
    try {
      for (let i = 0; i < sources.length; i++) {
        const { inst, disk, source } = sources[i]!;
        const key = diskKey(inst.id, disk.device);
        const baseIndex = await nextBase;
        nextBase = baseIndexOf(i + 1);
        current = 0;
        const sum = await backupDisk({
          writer,
          diskKey: key,
          source,
          meta: { instanceId: inst.id, device: disk.device },
          full: s.snapshot_type === 'full',
          base: baseIndex,
          signal: abort,
          onProgress: (p) => {
            current = p.bytesDone;
          },
        });
        summaries.push(sum);
        doneBefore += source.size;
        current = 0;
      }
    } finally {
      for (const x of sources) await x.source.close().catch(() => undefined);
    }
    if (abort.aborted) throw abort.reason;

    const sizes = new Map<string, Map<string, number>>();
    for (const x of sources) {
      const m = sizes.get(x.inst.id) ?? new Map<string, number>();
      m.set(x.disk.device, x.source.size);
      sizes.set(x.inst.id, m);
    }
    const views: SnapshotInstance[] = instances.map((inst) =>
      snapshotInstanceView(inst, w, sizes.get(inst.id) ?? new Map(), new Map(inst.disks.map((dk) => [dk.device, newId()]))),
    );
    const transferSeconds = Math.round((clock.now() - dataStart) / 1000);
    // The manifest carries everything needed to rebuild the DB from the target alone.
    await writer.commit({
      snapshot: { id: s.id, name: s.name, description: s.description, snapshot_type: s.snapshot_type, created_at: s.created_at, user_id: s.user_id },
      workload: { id: w.id, name: w.name, description: w.description, project_id: w.project_id, workload_type_id: w.workload_type_id, metadata: w.metadata },
      instances: views,
      disks: sources.map((x) => ({ instanceId: x.inst.id, device: x.disk.device, size: x.source.size, format: x.disk.format })),
    });
    const committed = writer;
    writer = null;

    const stored = summaries.reduce((a, x) => a + x.bytesStored, 0);
    const end = clock.now();
    await inTransaction(db, async (tx) => {
      // Not ours any more (an admin's unlock cancelled it): the workload's lock is not ours to release.
      const committed = await transitionSnapshot(tx, s.id, ['uploading', 'cancelling'], 'available', toSecond(end), {
        size: stored,
        uploaded_size: stored,
        restore_size: total,
        progress_percent: 100,
        progress_msg: 'Snapshot of workload is complete',
        time_taken: Math.max(0, Math.round((end - startedAt) / 1000)),
        finished_at: toSecond(end),
        instances: JSON.stringify(views),
      });
      if (!committed) return;
      await setSnapshotMetadata(tx, s.id, { data_transfer_time: String(transferSeconds), workload_approx_backup_size: String(Math.ceil(stored / 2 ** 20)) }, toSecond(end));
      if (s.snapshot_type === 'full') await updateWorkloadFields(tx, w.id, { force_full: false }, toSecond(end));
      // Unlocks the workload, and starts deleting snapshots beyond its retention in the same transaction.
      await releaseWorkloadWithRetention(tx, w.id, s.id, end);
    });
    log.info({ snapshotId: s.id, type: s.snapshot_type, bytes: total, stored, modes: summaries.map((x) => x.mode) }, 'snapshot available');
    // Older snapshots that lost data (lost packs, copies the read-back found corrupt) say so.
    await reportWriterDamage(db, repo, committed, clock.now()).catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'damage report failed'));
    d.onSnapshotFinished?.(s.id);
  } catch (e) {
    if (!writer && writerStart) writer = await writerStart.catch(() => null);
    if (writer) await writer.abort().catch(() => undefined);
    const now = toSecond(clock.now());
    const cancelled = cancelCtl.signal.aborted && !signal.aborted;
    if (cancelled) {
      await finishCancelled(d, s);
      return;
    }
    const msg = signal.aborted ? SNAPSHOT_LOST_MESSAGE : `Snapshot failed: ${errorMessage(e)}`;
    await inTransaction(db, async (tx) => {
      const changed = await transitionSnapshot(tx, s.id, [...RUNNING_SNAPSHOT_STATES, 'cancelling'], 'error', now, { error_msg: msg, progress_msg: msg, finished_at: now });
      if (changed) await transitionWorkload(tx, s.workload_id, { admin: true }, ['locked'], 'available', now);
    });
    d.onSnapshotFinished?.(s.id);
    if (!signal.aborted) throw e;
  } finally {
    if (ticker) clearInterval(ticker);
  }
}

async function finishCancelled(d: SnapshotJobDeps, s: Snapshot): Promise<void> {
  const now = toSecond(d.clock.now());
  await inTransaction(d.db, async (tx) => {
    const changed = await transitionSnapshot(tx, s.id, [...RUNNING_SNAPSHOT_STATES, 'cancelling'], 'cancelled', now, { progress_msg: 'Snapshot cancelled', finished_at: now });
    if (changed) await transitionWorkload(tx, s.workload_id, { admin: true }, ['locked'], 'available', now);
  });
}

/**
 * Deletes a snapshot: manifest and disk indexes go (the snapshot disappears atomically on the
 * target), then the row is marked deleted and the workload unlocked. Idempotent, so a lost
 * delete is simply completed by the reconciler.
 */
async function deleteSnapshot(d: SnapshotJobDeps, snapshotId: string, taskId: string | undefined): Promise<void> {
  const s = await getSnapshot(d.db, { admin: true }, snapshotId);
  if (!s || s.status !== 'deleting') return;
  await d.repo.deleteSnapshot(s.id);
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
      run: (job, ctx) => takeSnapshot(d, job.payload.snapshotId, ctx.signal, ctx.log),
      // The worker died: never re-run; the snapshot is an error and the workload usable again.
      onLost: async (job, nowMs) => {
        const now = toSecond(nowMs);
        const s = await getSnapshot(d.db, { admin: true }, job.payload.snapshotId);
        if (!s) return;
        await inTransaction(d.db, async (tx) => {
          const changed = await transitionSnapshot(tx, s.id, [...RUNNING_SNAPSHOT_STATES, 'cancelling'], 'error', now, {
            error_msg: SNAPSHOT_LOST_MESSAGE,
            progress_msg: SNAPSHOT_LOST_MESSAGE,
            finished_at: now,
          });
          if (changed) await transitionWorkload(tx, s.workload_id, { admin: true }, ['locked'], 'available', now);
        });
        d.onSnapshotFinished?.(s.id);
      },
    },
    {
      kind: SNAPSHOT_JOBS.delete,
      run: (job) => deleteSnapshot(d, job.payload.snapshotId, job.payload.taskId),
      onLost: (job) => deleteSnapshot(d, job.payload.snapshotId, job.payload.taskId),
    },
  ];
}
