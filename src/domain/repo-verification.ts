import { toSecond } from '../lib/time.js';

/**
 * A `repo verify` run on one backup target (repository/verify.ts does the checking): queued
 * and running while a job or the CLI works, then `ok` (every referenced chunk present and
 * intact, as far as read), `damaged` (problems found; the snapshots they affect are listed and
 * carry a warning) or `error` (the verify could not run to the end; `error_msg` says why).
 */
export type RepoVerificationStatus = 'queued' | 'running' | 'ok' | 'damaged' | 'error';

export const RUNNING_VERIFICATION_STATES: readonly RepoVerificationStatus[] = ['queued', 'running'];

export interface RepoVerification {
  id: string;
  /** Backup target name (LIFEBOAT_TARGETS; `default` for a single target). */
  target: string;
  /** Share (0 < x ≤ 1) of the packs whose data is read; null: every pack (a complete verify). */
  read_data_subset: number | null;
  /** Bad copies get markers so the next backup stores them again. */
  mark_bad: boolean;
  /** Who started it: the admin API (a job) or `lifeboat repo verify`. */
  source: 'api' | 'cli';
  user_id: string | null;
  status: RepoVerificationStatus;
  progress_percent: number;
  snapshots: number;
  disks: number;
  packs_read: number;
  chunks_checked: number;
  bytes_read: number;
  /** Missing/corrupt chunks plus unreadable metadata objects. */
  problem_count: number;
  /** One line per problem (the first ones; problem_count has them all). */
  problems: string[];
  failed_snapshots: string[];
  error_msg: string | null;
  /** Epoch ms, not truncated (runs started in the same second keep their order); the others whole seconds. */
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/**
 * A new run's row: nothing counted yet. An API run starts `queued` (a job picks it up); a CLI
 * run starts `running` at `createdAt` (no job queues it).
 */
export function newRepoVerification(o: Pick<RepoVerification, 'id' | 'target' | 'read_data_subset' | 'mark_bad' | 'source' | 'user_id' | 'created_at'>): RepoVerification {
  const cli = o.source === 'cli';
  return {
    ...o,
    status: cli ? 'running' : 'queued',
    progress_percent: 0,
    snapshots: 0,
    disks: 0,
    packs_read: 0,
    chunks_checked: 0,
    bytes_read: 0,
    problem_count: 0,
    problems: [],
    failed_snapshots: [],
    error_msg: null,
    started_at: cli ? toSecond(o.created_at) : null,
    finished_at: null,
  };
}

/** At most this many problem lines are kept per run (the count is exact). */
export const MAX_PROBLEM_LINES = 50;
