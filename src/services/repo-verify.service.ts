import type { Db } from '../store/db.js';
import { inTransaction } from '../store/db.js';
import { getRepoVerification, insertRepoVerification, listRepoVerifications, runningVerificationsOf } from '../store/repo-verification.store.js';
import { REPO_JOBS } from '../jobs/kinds.js';
import { enqueue } from '../jobs/queue.js';
import type { Clock } from '../lib/clock.js';
import { InvalidStateError, NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid, newId } from '../lib/ids.js';
import type { TargetCatalog } from '../lib/target.js';
import type { RequestContext } from '../domain/context.js';
import { newRepoVerification, type RepoVerification } from '../domain/repo-verification.js';

export interface RepoVerifyDeps {
  db: Db;
  clock: Clock;
  targets: TargetCatalog;
}

export interface StartVerifyCommand {
  /** Target name; undefined: the default target. */
  target?: string;
  /** 0 < x ≤ 1, or undefined for a complete verify. */
  readDataSubset?: number;
  markBad: boolean;
}

/**
 * `repo verify` as an admin use case (the route's policy is admin-only): a durable job per run,
 * one run per target at a time, and the history of runs (the job's and the CLI's).
 */
export class RepoVerifyService {
  constructor(private readonly d: RepoVerifyDeps) {}

  async start(ctx: RequestContext, cmd: StartVerifyCommand): Promise<RepoVerification> {
    const target = cmd.target ?? this.d.targets.defaultName;
    if (!this.d.targets.has(target)) throw new ValidationError(`No backup target named ${JSON.stringify(target.slice(0, 64))}; configured: ${this.d.targets.names.join(', ')}`);
    const now = this.d.clock.now();
    const run = newRepoVerification({
      id: newId(),
      target,
      read_data_subset: cmd.readDataSubset ?? null,
      mark_bad: cmd.markBad,
      source: 'api',
      user_id: ctx.userId,
      created_at: now,
    });
    return inTransaction(this.d.db, async (tx) => {
      // Checked inside the transaction so two admins clicking at once start one run (SQLite
      // serializes writers; on PostgreSQL the rare double start is two verifies, both harmless).
      if ((await runningVerificationsOf(tx, target)).length > 0) throw new InvalidStateError(`A verify of backup target ${target} is already running`);
      await insertRepoVerification(tx, run);
      await enqueue(tx, REPO_JOBS.verify, { verificationId: run.id }, { resourceId: run.id, now });
      return run;
    });
  }

  async list(o: { limit: number; target?: string }): Promise<RepoVerification[]> {
    if (o.target !== undefined && !this.d.targets.has(o.target)) throw new ValidationError(`No backup target named ${JSON.stringify(o.target.slice(0, 64))}; configured: ${this.d.targets.names.join(', ')}`);
    return listRepoVerifications(this.d.db, o);
  }

  async get(id: string): Promise<RepoVerification> {
    const v = isUuid(id.toLowerCase()) ? await getRepoVerification(this.d.db, id.toLowerCase()) : null;
    if (!v) throw NotFoundError.of('Repository verification', id);
    return v;
  }

  /** Configured targets (the start form's choices). */
  targetNames(): string[] {
    return this.d.targets.names;
  }
}
