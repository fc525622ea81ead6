import type { BackupOutcome, BackupSession, Checkpoint, DiskSource, Platform } from '../platform/platform.js';
import type { Repository } from '../repository/repository.js';
import { asRepositorySet, type RepositorySet } from '../repository/repository-set.js';
import type { DiskIndex } from '../repository/disk-index.format.js';
import type { SnapshotWriter } from '../repository/snapshot-writer.js';
import { backupDisk, type BackupDiskSummary } from '../datamover/backup.js';
import type { Disk, Instance } from '../domain/instance.js';
import type { Snapshot } from '../domain/snapshot.js';
import { encryptionConflict, type Workload } from '../domain/workload.js';
import type { Db } from '../store/db.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import type { DiskBackupNumbers } from '../lib/metrics.js';
import type { ByteProgress } from './progress-ticker.js';
import { loadSnapshotBase, type SnapshotBase } from './snapshot-base.js';

/**
 * The steps a snapshot's parent job (snapshot.job.ts) and its per-host parts
 * (snapshot-part.job.ts) share: the base an incremental reads against, one backup session per
 * VM, and the copy of every disk into the repository.
 */

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
export type OnTarget = Omit<SnapshotJobDeps, 'repo'> & { repo: Repository };

export function onTargetOf(d: SnapshotJobDeps, s: Snapshot): OnTarget {
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
export class Held {
  readonly sessions: { instance: Instance; session: BackupSession }[] = [];
  writerStart: Promise<SnapshotWriter> | null = null;
  writer: SnapshotWriter | null = null;
  private readonly disksRead = new Map<BackupSession, number>();

  /**
   * One disk of `instance` has been read completely: once all of its session's disks have, the
   * session is told (readsDone), so the platform can end its export while the data is stored.
   */
  diskRead(instance: Instance): void {
    const session = this.sessions.find((x) => x.instance === instance)?.session;
    if (!session) return;
    const n = (this.disksRead.get(session) ?? 0) + 1;
    this.disksRead.set(session, n);
    if (n === session.disks.length) session.readsDone?.();
  }

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

export interface PlannedDisk {
  instance: Instance;
  disk: Disk;
  source: DiskSource;
  key: string;
  /** The base checkpoint the disk's session began from (the datamover asks for changes since it). */
  cbtBase: string | null;
}

/**
 * The base of an incremental (null for a full): the newest available snapshot of the workload,
 * unless it is stored under another project than `scope` (the workload was reassigned since:
 * its chunks are keyed for that project, so every disk is read in full).
 */
/**
 * An unencrypted workload never stores the data of a disk the cloud encrypts (a volume attached
 * after the workload was made): the snapshot fails before reading anything.
 */
export function assertEncryptionAllows(w: Pick<Workload, 'encryption'>, instances: readonly Instance[]): void {
  for (const inst of instances) {
    const conflict = encryptionConflict(w, inst);
    if (conflict) throw new Error(conflict);
  }
}

export async function baseFor(d: OnTarget, s: Snapshot, scope: string, log: Logger): Promise<SnapshotBase | null> {
  // A full trusts nothing of earlier snapshots, checkpoints included.
  const loaded = s.snapshot_type === 'incremental' ? await loadSnapshotBase(d.db, d.repo, s.workload_id, log) : null;
  const base = loaded && loaded.manifest.projectId === scope ? loaded : null;
  if (loaded && !base) log.info({ snapshotId: s.id, baseProject: loaded.manifest.projectId }, 'base snapshot stored under another project: reading every disk in full');
  return base;
}

/**
 * A backup session per VM, each pushed into `held` as soon as it exists (so a later failure
 * still ends it), from the VM's checkpoint in `base`; returns every disk to copy.
 */
export async function beginSessions(d: OnTarget, instances: readonly Instance[], base: SnapshotBase | null, held: Held, abort: AbortSignal): Promise<PlannedDisk[]> {
  const disks: PlannedDisk[] = [];
  for (const instance of instances) {
    abort.throwIfAborted();
    const baseCheckpoint: Checkpoint | null = base?.checkpoints.get(instance.id) ?? null;
    const session = await d.platform.beginBackup(instance, { baseCheckpoint });
    held.sessions.push({ instance, session });
    for (const { disk, source } of session.disks) disks.push({ instance, disk, source, key: diskKey(instance.id, disk.device), cbtBase: baseCheckpoint?.name ?? null });
  }
  return disks;
}

/** A base disk index being read ahead (`index`: its object key, naming the disk it is for). */
export interface BaseIndexPrefetch {
  index: string;
  read: Promise<DiskIndex | null>;
}

/**
 * Starts reading the base index of the disk the run step most likely copies first (the first
 * instance's first disk in the base manifest) while the platform opens its sessions: an
 * incremental's first disk then finds its base loaded (a 2 GiB disk's index is 1 MiB to read
 * and decode). At most one index is held ahead, as copyDisks does for the next disk.
 */
export function prefetchFirstBaseIndex(d: OnTarget, base: SnapshotBase | null, first: Instance | undefined): BaseIndexPrefetch | null {
  const bd = first ? base?.manifest.disks.find((x) => x.diskKey.startsWith(diskKey(first.id, ''))) : undefined;
  if (!bd) return null;
  const read = d.repo.readDiskIndex(bd.index).catch(() => null);
  return { index: bd.index, read };
}

/** What the run step copies: the planned disks, the base they are deduplicated against, the writer. */
export interface CopyPlan {
  disks: PlannedDisk[];
  base: SnapshotBase | null;
  writer: SnapshotWriter;
  full: boolean;
  /** The first disk's base index, read ahead (used when it is that disk's). */
  firstBaseIndex?: BaseIndexPrefetch | null;
  /** Told when a disk's source has been read completely (its data may still be being stored). */
  onDiskRead?: (instance: Instance) => void;
}

/** Run step: every disk through the datamover; the next base index is read while a disk runs. */
export async function copyDisks(d: OnTarget, o: CopyPlan, progress: ByteProgress, abort: AbortSignal): Promise<BackupDiskSummary[]> {
  const baseIndexOf = (i: number): Promise<DiskIndex | null> => {
    const x = o.disks[i];
    const bd = x ? o.base?.manifest.disks.find((y) => y.diskKey === x.key) : undefined;
    if (bd && i === 0 && o.firstBaseIndex?.index === bd.index) return o.firstBaseIndex.read;
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
      full: o.full,
      base,
      cbtBase: x.cbtBase,
      signal: abort,
      onProgress: (p) => progress.update(p.bytesDone),
      onReadsDone: () => o.onDiskRead?.(x.instance),
    });
    summaries.push(summary);
    d.metrics?.recordDiskBackup({ ...summary, bytesDeduplicated: Math.min(x.source.size, summary.reusedChunks * o.writer.chunkSize) });
    progress.finishDisk(x.source.size);
  }
  abort.throwIfAborted();
  return summaries;
}

