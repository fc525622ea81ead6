import type { Db } from '../store/db.js';
import { committedSnapshotIdsOn } from '../store/snapshot.store.js';
import { getRepoVerification, setRepoVerificationProgress, transitionRepoVerification } from '../store/repo-verification.store.js';
import type { Repository } from '../repository/repository.js';
import { asRepositorySet, type RepositorySet } from '../repository/repository-set.js';
import { verifyRepository, type VerifyResult } from '../repository/verify.js';
import { MAX_PROBLEM_LINES, type RepoVerificationStatus } from '../domain/repo-verification.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import { toSecond } from '../lib/time.js';
import { recordVerifyResult } from './damage.job.js';
import { REPO_JOBS } from './kinds.js';
import type { AnyJobHandler } from './runner.js';

export interface RepoVerifyJobDeps {
  db: Db;
  repo: Repository | RepositorySet;
  clock: Clock;
  progressEveryMs?: number;
}

export const VERIFY_LOST_MESSAGE = 'Verify did not finish (the service stopped); start it again';

/** One line per problem of a verify report, as `lifeboat repo verify` prints them. */
export function verifyProblemLines(v: VerifyResult): string[] {
  return [
    ...v.problems.map((p) => {
      const aff = p.affected.map((a) => `snapshot ${a.snapshotId} disk ${a.diskKey}`).join(', ');
      return `${p.kind.toUpperCase()} chunk ${p.chunk} (pack ${p.pack}): ${p.detail}; affects ${aff || 'no snapshot'}`;
    }),
    ...v.metadataProblems.map((m) => `BAD METADATA ${m.key}${m.snapshotId ? ` (snapshot ${m.snapshotId})` : ''}: ${m.message}`),
  ];
}

/** The columns a finished verify fills: its counts, its problems (capped), ok or damaged. */
export function verifyOutcome(v: VerifyResult, nowMs: number) {
  const lines = verifyProblemLines(v);
  return {
    status: (v.ok ? 'ok' : 'damaged') as RepoVerificationStatus,
    extra: {
      progress_percent: 100,
      snapshots: v.snapshots,
      disks: v.disks,
      packs_read: v.packsRead,
      chunks_checked: v.chunksChecked,
      bytes_read: v.bytesRead,
      problem_count: lines.length,
      problems: JSON.stringify(lines.slice(0, MAX_PROBLEM_LINES).map((l) => (l.length > 500 ? `${l.slice(0, 499)}…` : l))),
      failed_snapshots: JSON.stringify(v.failedSnapshots),
      finished_at: toSecond(nowMs),
    },
  };
}

/**
 * Runs one verify started from the admin API: queued → running → ok | damaged | error. The
 * outcome is recorded on the snapshots too (warning_msg names damaged disks; a complete verify
 * clears older damage warnings), exactly as `lifeboat repo verify` does. Progress is the share
 * of packs done.
 */
async function runVerify(d: RepoVerifyJobDeps, id: string, signal: AbortSignal, log: Logger): Promise<void> {
  const run = await getRepoVerification(d.db, id);
  if (!run || !(await transitionRepoVerification(d.db, id, ['queued'], 'running', { started_at: toSecond(d.clock.now()) }))) return;
  let percent = 0;
  let written = 0;
  const timer = setInterval(() => {
    if (percent === written) return;
    written = percent;
    setRepoVerificationProgress(d.db, id, percent).catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'verify progress update failed'));
  }, d.progressEveryMs ?? 500);
  try {
    const set = asRepositorySet(d.repo);
    const target = { name: run.target, isDefault: run.target === set.defaultName };
    const v = await verifyRepository(set.get(run.target), {
      expectedSnapshots: () => committedSnapshotIdsOn(d.db, target),
      markBad: run.mark_bad,
      ...(run.read_data_subset !== null ? { readDataSubset: run.read_data_subset } : {}),
      onProgress: (p) => (percent = Math.min(99, Math.floor((p.packsDone * 100) / Math.max(1, p.packsTotal)))),
      signal,
    });
    await recordVerifyResult(d.db, v, d.clock.now());
    const out = verifyOutcome(v, d.clock.now());
    await transitionRepoVerification(d.db, id, ['running'], out.status, out.extra);
    log.info({ verification: id, target: run.target, ok: v.ok, problems: out.extra.problem_count }, 'repo verify finished');
  } catch (e) {
    if (signal.aborted) throw e; // the worker stops: onLost records the run as not finished
    log.warn({ verification: id, err: errorMessage(e) }, 'repo verify failed');
    await transitionRepoVerification(d.db, id, ['running'], 'error', { error_msg: `Verify failed: ${errorMessage(e)}`.slice(0, 1000), finished_at: toSecond(d.clock.now()) });
  } finally {
    clearInterval(timer);
  }
}

export function repoVerifyJobHandlers(d: RepoVerifyJobDeps): AnyJobHandler[] {
  return [
    {
      kind: REPO_JOBS.verify,
      run: (job, ctx) => runVerify(d, job.payload.verificationId, ctx.signal, ctx.log),
      // Nothing runs twice silently: a verify whose worker died is an error; starting another is safe.
      onLost: async (job, nowMs) => {
        await transitionRepoVerification(d.db, job.payload.verificationId, ['queued', 'running'], 'error', { error_msg: VERIFY_LOST_MESSAGE, finished_at: toSecond(nowMs) });
      },
    },
  ];
}
