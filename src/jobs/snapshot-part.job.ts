import type { Tx } from '../store/db.js';
import { getSnapshot } from '../store/snapshot.store.js';
import { getWorkload } from '../store/workload.store.js';
import {
  endSnapshotPart,
  failSnapshotPart,
  getSnapshotPart,
  insertSnapshotPart,
  listSnapshotParts,
  recordSnapshotPartResult,
  reportSnapshotPartProgress,
  startSnapshotPart,
  type SnapshotPart,
} from '../store/snapshot-part.store.js';
import type { BackupOutcome, Checkpoint } from '../platform/platform.js';
import type { ManifestDisk } from '../repository/manifest.format.js';
import type { Instance } from '../domain/instance.js';
import { RUNNING_SNAPSHOT_STATES, type Snapshot } from '../domain/snapshot.js';
import { storageScope } from '../domain/workload.js';
import type { Logger } from '../lib/logger.js';
import { CancelledError, errorMessage } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { SNAPSHOT_JOBS } from './kinds.js';
import { enqueue } from './queue.js';
import { ByteProgress, startTicker } from './progress-ticker.js';
import type { JobHandler, KindJob } from './runner.js';
import { assertEncryptionAllows, baseFor, beginSessions, copyDisks, Held, onTargetOf, type SnapshotJobDeps } from './snapshot-steps.js';

/**
 * Per-host parts of a snapshot (issue 12): when a workload's VMs sit on several compute hosts
 * whose workers read them locally (routing.ts 'split'), the snapshot's job stays the parent
 * and every other host gets a part: a `snapshot.part` job only that host's worker may claim.
 *
 * A part opens its VMs' backup sessions and its own repository writer, copies its disks and
 * publishes their indexes without a manifest (SnapshotWriter.finishPart), then records what it
 * wrote in its row (written). The parent, once its own disks and every part are written,
 * adopts the parts' disks into the one manifest it commits, marks the parts committed, waits
 * for each part to end its sessions as committed (libvirt: keep the new checkpoint; done), and
 * only then makes the snapshot available and unlocks the workload: the next snapshot can never
 * overlap a part's end, exactly as for the parent's own sessions.
 *
 * As a whole: a failed or lost part fails the snapshot (the parent names the host and why); a
 * snapshot that fails, is cancelled or loses its parent stops every part still running (each
 * watches the snapshot's status) and their sessions end as failed. GC keeps a written part's
 * objects while the parent's writer lease lives (gc.ts), and the parent's writer is open from
 * before any part starts until its manifest is durable.
 */

/** What a part wrote, stored as JSON in its row for the parent. */
export interface PartResult {
  instances: Instance[];
  disks: { instanceId: string; device: string; format: string; size: number; manifest: ManifestDisk }[];
  checkpoints: [string, Checkpoint | null][];
  warnings: string[];
  bytesStored: number;
  modes: string[];
}

/** A part that failed (or was lost): the snapshot fails with this message. */
export class PartFailedError extends Error {
  constructor(part: SnapshotPart) {
    super(`the part read on compute host ${part.node} failed: ${part.error ?? 'no reason recorded'}`);
    this.name = 'PartFailedError';
  }
}

/** Parent side: one part row and its job, targeted at the host's worker, per host (in the caller's transaction). */
export async function enqueueParts(tx: Tx, s: Snapshot, parts: { node: string; instances: Instance[] }[], now: number): Promise<void> {
  for (const p of parts) {
    const partId = newId();
    await insertSnapshotPart(tx, { id: partId, snapshotId: s.id, node: p.node, instanceIds: p.instances.map((i) => i.id) }, now);
    await enqueue(tx, SNAPSHOT_JOBS.part, { snapshotId: s.id, partId }, { resourceId: s.id, now, targetNode: p.node });
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Parent side: polls the snapshot's parts every `everyMs` until each is in one of `states`;
 * a failed part throws PartFailedError (the first by host name). Returns the parts.
 */
export async function awaitParts(d: SnapshotJobDeps, snapshotId: string, states: SnapshotPart['status'][], everyMs: number, signal: AbortSignal): Promise<SnapshotPart[]> {
  for (;;) {
    const parts = await listSnapshotParts(d.db, snapshotId);
    const failed = parts.find((p) => p.status === 'failed');
    if (failed) throw new PartFailedError(failed);
    if (parts.every((p) => states.includes(p.status))) return parts;
    await sleep(everyMs, signal);
  }
}

/** Parent side, after its manifest: waits for every committed part to end its sessions; a part that failed now only loses its checkpoint (logged). */
export async function awaitPartsEnded(d: SnapshotJobDeps, snapshotId: string, everyMs: number, signal: AbortSignal, log: Logger): Promise<void> {
  for (;;) {
    const parts = await listSnapshotParts(d.db, snapshotId);
    if (parts.every((p) => p.status === 'done' || p.status === 'failed')) {
      for (const p of parts.filter((x) => x.status === 'failed')) log.warn({ snapshotId, node: p.node, err: p.error }, 'a part ended its backup sessions as failed after the manifest: its next snapshot reads in full');
      return;
    }
    await sleep(everyMs, signal);
  }
}

/**
 * Parent side: the snapshot's percent with its parts' bytes counted (0..99, like ByteProgress):
 * a part not yet open counts nothing yet, so the percent can step back once its size is known.
 */
export async function partsProgress(d: SnapshotJobDeps, snapshotId: string, own: ByteProgress): Promise<number> {
  const parts = await listSnapshotParts(d.db, snapshotId);
  const total = own.total + parts.reduce((a, p) => a + (p.bytesTotal ?? 0), 0);
  const done = own.done + parts.reduce((a, p) => a + p.bytesDone, 0);
  return total === 0 ? 0 : Math.min(99, Math.floor((done * 100) / total));
}

/** The running states a part keeps working in; anything else (error, cancelled, cancelling) stops it. */
const isRunning = (s: Snapshot | null) => !!s && RUNNING_SNAPSHOT_STATES.includes(s.status);

/**
 * One part, on its host's worker: sessions and a writer for its VMs, every disk copied and
 * published, the result recorded; then its sessions stay open until the parent's manifest is
 * durable (committed) or the snapshot ends otherwise (failed).
 */
async function runPart(d: SnapshotJobDeps, job: KindJob<typeof SNAPSHOT_JOBS.part>, signal: AbortSignal, log: Logger): Promise<void> {
  const { snapshotId, partId } = job.payload;
  const [part, s] = await Promise.all([getSnapshotPart(d.db, partId), getSnapshot(d.db, { admin: true }, snapshotId)]);
  if (!part || !s) return;
  if (!isRunning(s)) {
    await failSnapshotPart(d.db, partId, `the snapshot is ${s.status}`, d.clock.now());
    return;
  }
  if (!(await startSnapshotPart(d.db, partId, d.clock.now()))) return;
  const o = onTargetOf(d, s);
  const everyMs = d.progressEveryMs ?? 500;
  const held = new Held();
  let progress: ByteProgress | null = null;
  const ticker = startTicker({
    what: 'Snapshot',
    everyMs,
    log,
    isCancelling: async () => !isRunning(await getSnapshot(d.db, { admin: true }, snapshotId)),
    // The parent folds this into the snapshot's progress (partsProgress).
    report: async () => {
      if (progress) await reportSnapshotPartProgress(d.db, partId, progress.done, progress.total, d.clock.now());
    },
  });
  const abort = AbortSignal.any([signal, ticker.cancelSignal]);
  let outcome: BackupOutcome = 'failed';
  try {
    const w = await getWorkload(d.db, { admin: true }, s.workload_id);
    if (!w) throw new Error(`Workload ${s.workload_id} no longer exists`);
    const scope = storageScope(w);
    held.writerStart = o.repo.startSnapshot({ projectId: scope, snapshotId: s.id, encryptedFor: w.encryption ? { workloadId: w.id, projectId: w.project_id, secretUuid: w.secret_uuid ?? null } : null });
    held.writerStart.catch(() => undefined); // awaited below, or aborted by release()
    if (s.is_scheduled) await d.platform.beginScheduledRun?.(w.project_id, w.user_id, part.instanceIds);
    const instances: Instance[] = [];
    for (const id of part.instanceIds) {
      const inst = await d.platform.getInstance(w.project_id, id);
      if (!inst) throw new Error(`Instance ${id} could not be found on the platform`);
      instances.push(inst);
    }
    assertEncryptionAllows(w, instances);
    const base = await baseFor(o, s, scope, log);
    const disks = await beginSessions(o, instances, base, held, abort);
    const writer = (held.writer = await held.writerStart);
    held.writerStart = null;
    progress = new ByteProgress(disks.reduce((a, x) => a + x.source.size, 0));
    const summaries = await copyDisks(o, { disks, base, writer, full: s.snapshot_type === 'full', onDiskRead: (i) => held.diskRead(i) }, progress, abort);
    const written = await writer.finishPart();
    held.writer = null; // finished: nothing to abort (GC takes its objects if the snapshot never commits)
    const result: PartResult = {
      instances,
      disks: disks.map((x) => ({ instanceId: x.instance.id, device: x.disk.device, format: x.disk.format, size: x.source.size, manifest: written.find((m) => m.diskKey === x.key)! })),
      checkpoints: held.sessions.map(({ instance, session }) => [instance.id, session.checkpoint]),
      warnings: held.sessions.flatMap(({ session }) => session.warnings),
      bytesStored: summaries.reduce((a, x) => a + x.bytesStored, 0),
      modes: summaries.map((x) => x.mode),
    };
    if (!(await recordSnapshotPartResult(d.db, partId, result, progress.total, d.clock.now()))) throw new CancelledError('Snapshot');
    ticker.stop(); // from here the part waits for the snapshot's end, whatever it is
    log.info({ snapshotId, partId, disks: disks.length, bytesStored: result.bytesStored }, 'snapshot part written; waiting for the parent to commit');
    outcome = (await awaitCommitOrEnd(d, partId, snapshotId, everyMs, signal)) ? 'committed' : 'failed';
  } catch (e) {
    ticker.stop();
    await held.release('failed', log);
    const why = ticker.cancelled || e instanceof CancelledError ? 'the snapshot stopped' : errorMessage(e);
    await failSnapshotPart(d.db, partId, why, d.clock.now());
    if (!ticker.cancelled && !(e instanceof CancelledError) && !signal.aborted) throw e;
  } finally {
    ticker.stop();
    await held.release(outcome, log);
    if (outcome === 'committed') await endSnapshotPart(d.db, partId, d.clock.now());
  }
}

/** True once the parent marked this part committed; false when the snapshot ended without it. */
async function awaitCommitOrEnd(d: SnapshotJobDeps, partId: string, snapshotId: string, everyMs: number, signal: AbortSignal): Promise<boolean> {
  for (;;) {
    const part = await getSnapshotPart(d.db, partId);
    if (part?.status === 'committed') return true;
    if (part?.status !== 'written' || !isRunning(await getSnapshot(d.db, { admin: true }, snapshotId))) {
      await failSnapshotPart(d.db, partId, 'the snapshot ended before its manifest named this part', d.clock.now());
      return false;
    }
    await sleep(everyMs, signal);
  }
}

export function snapshotPartHandler(d: SnapshotJobDeps): JobHandler<typeof SNAPSHOT_JOBS.part> {
  return {
    kind: SNAPSHOT_JOBS.part,
    // Parents wait for parts on other workers: a part is never held back by its worker's limit.
    outsideConcurrency: true,
    run: (job, ctx) => runPart(d, job, ctx.signal, ctx.log),
    // Its worker died, or no live worker serves its host (`reason`): the part fails, and with it
    // the snapshot (the parent sees it). What the dead worker left on the platform is cleaned
    // as for a lost snapshot, for this part's VMs.
    onLost: async (job, nowMs, reason) => {
      const part = await getSnapshotPart(d.db, job.payload.partId);
      if (!part) return;
      if (!(await failSnapshotPart(d.db, part.id, reason ?? 'its worker was lost', nowMs))) return; // it had ended
      const s = d.platform.cleanupBackup ? await getSnapshot(d.db, { admin: true }, part.snapshotId) : null;
      const w = s ? await getWorkload(d.db, { admin: true }, s.workload_id) : null;
      if (w) await d.platform.cleanupBackup!(w.project_id, part.instanceIds).catch(() => undefined);
    },
  };
}
