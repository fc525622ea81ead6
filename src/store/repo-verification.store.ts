import type { RepoVerification, RepoVerificationStatus } from '../domain/repo-verification.js';
import type { DbOrTx } from './db.js';
import type { RepoVerificationsTable } from './schema.js';

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

function toVerification(r: RepoVerificationsTable): RepoVerification {
  return {
    ...r,
    read_data_subset: num(r.read_data_subset),
    mark_bad: Number(r.mark_bad) === 1,
    source: r.source === 'cli' ? 'cli' : 'api',
    status: r.status as RepoVerificationStatus,
    progress_percent: Number(r.progress_percent),
    snapshots: Number(r.snapshots),
    disks: Number(r.disks),
    packs_read: Number(r.packs_read),
    chunks_checked: Number(r.chunks_checked),
    bytes_read: Number(r.bytes_read),
    problem_count: Number(r.problem_count),
    problems: JSON.parse(r.problems) as string[],
    failed_snapshots: JSON.parse(r.failed_snapshots) as string[],
    created_at: Number(r.created_at),
    started_at: num(r.started_at),
    finished_at: num(r.finished_at),
  };
}

function toRow(v: RepoVerification): RepoVerificationsTable {
  return { ...v, mark_bad: v.mark_bad ? 1 : 0, problems: JSON.stringify(v.problems), failed_snapshots: JSON.stringify(v.failed_snapshots) };
}

export async function insertRepoVerification(db: DbOrTx, v: RepoVerification): Promise<void> {
  await db.insertInto('repo_verifications').values(toRow(v)).execute();
}

export async function getRepoVerification(db: DbOrTx, id: string): Promise<RepoVerification | null> {
  const r = await db.selectFrom('repo_verifications').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toVerification(r) : null;
}

/** The newest runs first (all targets, or one). */
export async function listRepoVerifications(db: DbOrTx, o: { limit: number; target?: string }): Promise<RepoVerification[]> {
  let q = db.selectFrom('repo_verifications').selectAll();
  if (o.target !== undefined) q = q.where('target', '=', o.target);
  const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(o.limit).execute();
  return rows.map(toVerification);
}

/**
 * Ids of the service's runs (source `api`) of `target` not finished yet: one at a time per
 * target. CLI runs do not count: a CLI killed midway leaves its row `running` (no job, no
 * reconciler owns it), which must not block the service.
 */
export async function runningVerificationsOf(db: DbOrTx, target: string): Promise<string[]> {
  const rows = await db.selectFrom('repo_verifications').select('id').where('target', '=', target).where('source', '=', 'api').where('status', 'in', ['queued', 'running']).execute();
  return rows.map((r) => r.id);
}

type Outcome = Partial<Omit<RepoVerificationsTable, 'id' | 'target' | 'source' | 'created_at' | 'status'>>;

/** Conditional state change; false when the run is not in one of `from`. */
export async function transitionRepoVerification(db: DbOrTx, id: string, from: RepoVerificationStatus[], to: RepoVerificationStatus, extra: Outcome = {}): Promise<boolean> {
  const r = await db.updateTable('repo_verifications').set({ ...extra, status: to }).where('id', '=', id).where('status', 'in', from).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function setRepoVerificationProgress(db: DbOrTx, id: string, percent: number): Promise<void> {
  await db.updateTable('repo_verifications').set({ progress_percent: percent }).where('id', '=', id).where('status', '=', 'running').execute();
}
