import { inTransaction, type Db } from '../store/db.js';
import { getWorkload, listWorkloads } from '../store/workload.store.js';
import { moveWorkload } from '../store/dr.store.js';
import type { Clock } from '../lib/clock.js';
import type { Workload } from '../domain/workload.js';
import type { IdentityLookup } from '../domain/identity-lookup.js';
import { InvalidStateError, UnavailableError, ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';

export interface ReassignServiceDeps {
  db: Db;
  clock: Clock;
  identity: IdentityLookup;
}

/** One element of the body of POST /workloads/reasign_workloads (F18), checked for shape by http/. */
export interface ReassignCommand {
  /** Either these workloads… */
  workloadIds: string[];
  /** …or every workload of these projects. */
  oldProjectIds: string[];
  newProjectId: string;
  userId: string;
}

export interface ReassignFailure {
  id: string;
  reason: string;
}

export interface ReassignResult {
  reassigned: Workload[];
  failed: ReassignFailure[];
}

/**
 * Reassign (workloadmgr-api §4.12, flow F18): moves workloads, with their snapshots and
 * restores, to another project and owner. Every target project and user is checked against the
 * identity source before anything changes (400); then all moves of the request run in one
 * transaction, so a workload that cannot move (busy) leaves every workload where it was and the
 * 400 names it. Workload ids that do not exist are reported in `failed`, not fatal.
 *
 * Backup data is not rewritten: each snapshot keeps its data where it was stored (the manifest
 * names the storage project, and restores read from there), so restores work before and after.
 * Deduplication is per project: the first snapshot after a move stores its data anew under the
 * new project's keys (jobs/snapshot.job.ts reads every disk in full when the base is foreign).
 */
export class ReassignService {
  constructor(private readonly deps: ReassignServiceDeps) {}

  async reassign(cmds: ReassignCommand[]): Promise<ReassignResult> {
    for (const c of cmds) await this.checkTarget(c);
    const failed: ReassignFailure[] = [];
    const moves: { workload: Workload; to: ReassignCommand }[] = [];
    for (const c of cmds) {
      for (const id of c.workloadIds) {
        const w = isUuid(id) ? await getWorkload(this.deps.db, { admin: true }, id.toLowerCase()) : null;
        if (w) moves.push({ workload: w, to: c });
        else failed.push({ id, reason: `Workload ${id} could not be found` });
      }
      for (const p of c.oldProjectIds) for (const w of await listWorkloads(this.deps.db, { admin: true }, { projectId: p })) moves.push({ workload: w, to: c });
    }
    const now = toSecond(this.deps.clock.now());
    await inTransaction(this.deps.db, async (tx) => {
      for (const m of moves) {
        const ok = await moveWorkload(tx, m.workload.id, { projectId: m.to.newProjectId, userId: m.to.userId }, now);
        if (!ok) throw new InvalidStateError(`Workload ${m.workload.id} (${m.workload.name}) must be 'available' or 'error' to be reassigned; no workload was reassigned`);
      }
    });
    const reassigned: Workload[] = [];
    for (const m of moves) {
      const w = await getWorkload(this.deps.db, { admin: true }, m.workload.id);
      if (w && !reassigned.some((x) => x.id === w.id)) reassigned.push(w);
    }
    return { reassigned, failed };
  }

  /** The new project and user must exist and the user must hold a role there. */
  private async checkTarget(c: ReassignCommand): Promise<void> {
    const id = this.deps.identity;
    const [project, user] = [await id.projectExists(c.newProjectId), await id.userExists(c.userId)];
    if (project === null || user === null) throw new UnavailableError('The identity service could not be reached; nothing was reassigned');
    if (!project) throw new ValidationError(`Invalid new_tenant_id: project ${c.newProjectId} does not exist`);
    if (!user) throw new ValidationError(`Invalid user_id: user ${c.userId} does not exist`);
    const member = await id.userInProject(c.userId, c.newProjectId);
    if (member === null) throw new UnavailableError('The identity service could not be reached; nothing was reassigned');
    if (!member) throw new ValidationError(`Invalid user_id: user ${c.userId} has no role on project ${c.newProjectId}`);
  }
}
