import type { Db } from '../store/db.js';
import { getFileSearch, setFileSearchProgress, transitionFileSearch } from '../store/file-search.store.js';
import type { Repository } from '../repository/repository.js';
import { asRepositorySet, type RepositorySet } from '../repository/repository-set.js';
import { getSnapshot } from '../store/snapshot.store.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { CancelledError, errorMessage } from '../lib/errors.js';
import { toSecond } from '../lib/time.js';
import { searchSnapshots, toJsonResp } from '../recovery/search.js';
import { FILE_SEARCH_JOBS } from './kinds.js';
import { startTicker } from './progress-ticker.js';
import type { AnyJobHandler } from './runner.js';

export interface FileSearchJobDeps {
  db: Db;
  /** Every backup target (or the one of a single-target setup); each snapshot is read from its own. */
  repo: Repository | RepositorySet;
  clock: Clock;
  /** LIFEBOAT_HOME (NBD sockets) and the appliance settings of recovery/. */
  home: string;
  forceTcg: boolean;
  /** The appliance tag of this home (SnapshotMounts.tag), so restart reconciliation finds leftovers. */
  tag: string;
  progressEveryMs?: number;
}

export const SEARCH_LOST_MESSAGE = 'File search did not finish (the service stopped); search again';

/**
 * Runs one file search (F11): executing → searching → completed (json_resp) | error |
 * cancelled. Progress is the share of snapshots searched (the appliance launch counts as 10 %);
 * a `cancelling` row aborts the search between appliance commands.
 */
async function runSearch(d: FileSearchJobDeps, searchId: number, signal: AbortSignal, log: Logger): Promise<void> {
  const now = () => toSecond(d.clock.now());
  const s = await getFileSearch(d.db, null, searchId);
  if (!s || !(await transitionFileSearch(d.db, s.id, ['executing'], 'searching', now()))) return;
  let percent = 0;
  const ticker = startTicker({
    what: 'File search',
    everyMs: d.progressEveryMs ?? 500,
    log,
    isCancelling: async () => (await getFileSearch(d.db, null, s.id))?.status === 'cancelling',
    report: () => setFileSearchProgress(d.db, s.id, percent, now()),
  });
  const abort = AbortSignal.any([signal, ticker.cancelSignal]);
  try {
    const results = await searchSnapshots({
      repos: asRepositorySet(d.repo),
      home: d.home,
      forceTcg: d.forceTcg,
      tag: d.tag,
      snapshots: await Promise.all(s.snapshot_ids.map(async (id) => ({ id, target: (await getSnapshot(d.db, { admin: true }, id))?.backup_target ?? null }))),
      vmId: s.vm_id,
      pattern: s.filepath,
      signal: abort,
      logger: log,
      onProgress: (done, total) => (percent = Math.min(99, 10 + Math.floor((done * 89) / Math.max(1, total)))),
    });
    await transitionFileSearch(d.db, s.id, ['searching'], 'completed', now(), { json_resp: toJsonResp(results), progress_percent: 100 });
  } catch (e) {
    if (ticker.cancelled || abort.reason instanceof CancelledError) {
      await transitionFileSearch(d.db, s.id, ['searching', 'cancelling'], 'cancelled', now(), { error_msg: 'File search cancelled' });
      return;
    }
    if (signal.aborted) throw e; // the worker stops: the runner hands the job over
    log.warn({ searchId: s.id, err: errorMessage(e) }, 'file search failed');
    await transitionFileSearch(d.db, s.id, ['searching', 'cancelling'], 'error', now(), { error_msg: `File search failed: ${errorMessage(e)}`.slice(0, 1000) });
  } finally {
    ticker.stop();
  }
}

export function fileSearchJobHandlers(d: FileSearchJobDeps): AnyJobHandler[] {
  return [
    {
      kind: FILE_SEARCH_JOBS.run,
      run: (job, ctx) => runSearch(d, job.payload.searchId, ctx.signal, ctx.log),
      // The worker died: the search is an error (searching again is cheap and safe).
      onLost: async (job, nowMs) => {
        await transitionFileSearch(d.db, job.payload.searchId, ['executing', 'searching', 'cancelling'], 'error', toSecond(nowMs), { error_msg: SEARCH_LOST_MESSAGE });
      },
    },
  ];
}
