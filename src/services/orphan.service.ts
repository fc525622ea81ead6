import type { Db } from '../store/db.js';
import { listWorkloads } from '../store/workload.store.js';
import { knownWorkloadIds } from '../store/dr.store.js';
import type { Clock } from '../lib/clock.js';
import type { Workload } from '../domain/workload.js';
import type { IdentityLookup } from '../domain/identity-lookup.js';
import { defaultJobSchedule } from '../domain/jobschedule.js';
import { importedWorkloadRecord, type TargetScan, type TargetSnapshot } from '../domain/target-snapshot.js';
import { UnavailableError } from '../lib/errors.js';
import { toSecond } from '../lib/time.js';

export interface OrphanServiceDeps {
  db: Db;
  clock: Clock;
  identity: IdentityLookup;
  scanTarget: () => Promise<TargetScan>;
}

/** A workload whose project or owner the identity source no longer knows. */
export interface OrphanWorkload {
  workload: Workload;
  /** In this install's database (else only on the backup target). */
  inDatabase: boolean;
  reason: string;
}

/**
 * Orphaned workloads (workloadmgr-api §4.12, `GET /workloads/orphan_workloads/`): the workloads
 * of this install and those only on the backup target whose project or user no longer exists
 * in the identity source. An identity source that cannot answer is a 503, never "orphaned".
 */
export class OrphanService {
  constructor(private readonly deps: OrphanServiceDeps) {}

  async list(): Promise<OrphanWorkload[]> {
    const inDb = await listWorkloads(this.deps.db, { admin: true });
    const out: OrphanWorkload[] = [];
    for (const w of inDb) {
      const reason = await this.orphanReason(w);
      if (reason) out.push({ workload: w, inDatabase: true, reason });
    }
    for (const w of await this.targetOnly()) {
      const reason = await this.orphanReason(w);
      if (reason) out.push({ workload: w, inDatabase: false, reason });
    }
    return out;
  }

  /** Workloads that only the target knows, as their newest snapshot describes them. */
  private async targetOnly(): Promise<Workload[]> {
    const newest = new Map<string, TargetSnapshot>();
    for (const s of (await this.deps.scanTarget()).snapshots) newest.set(s.meta.workload.id, s);
    const known = await knownWorkloadIds(this.deps.db, [...newest.keys()]);
    const now = this.deps.clock.now();
    return [...newest.values()].filter((s) => !known.has(s.meta.workload.id)).map((s) => importedWorkloadRecord(s, defaultJobSchedule(now), toSecond(now)));
  }

  private async orphanReason(w: Workload): Promise<string | null> {
    const project = await this.deps.identity.projectExists(w.project_id);
    const user = await this.deps.identity.userExists(w.user_id);
    if (project === null || user === null) throw new UnavailableError('The identity service could not be reached; orphaned workloads cannot be determined');
    if (!project) return `Project ${w.project_id} no longer exists`;
    if (!user) return `User ${w.user_id} no longer exists`;
    return null;
  }
}
