import { inTransaction, type Db, type DbOrTx } from '../store/db.js';
import { insertWorkload, isMemberConflict } from '../store/workload.store.js';
import { insertSnapshot, setSnapshotMetadata } from '../store/snapshot.store.js';
import { knownSnapshotIds, knownWorkloadIds, setSnapshotCheckpoints } from '../store/dr.store.js';
import { addAssignments, getPolicy, insertPolicy, isAssigned } from '../store/policy.store.js';
import type { Clock } from '../lib/clock.js';
import type { Workload } from '../domain/workload.js';
import { defaultJobSchedule } from '../domain/jobschedule.js';
import {
  importedSnapshotRecord,
  importedWorkloadRecord,
  type ManifestPolicy,
  type TargetScan,
  type TargetSnapshot,
  type UnreadableSnapshot,
} from '../domain/target-snapshot.js';
import { errorMessage } from '../lib/errors.js';
import { newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import type { ProjectDirectory } from './policy.service.js';

export interface ImportServiceDeps {
  db: Db;
  clock: Clock;
  /** Reads every manifest on the backup target (jobs/target-catalog.ts). */
  scanTarget: () => Promise<TargetScan>;
  /** Project names for recreated policy assignments; absent: names stay empty. */
  projects?: ProjectDirectory;
}

/** A workload of the target that was not imported, and why. */
export interface ImportFailure {
  id: string;
  name: string | null;
  reason: string;
}

export interface ImportResult {
  imported: Workload[];
  failed: ImportFailure[];
  /** Snapshots left out because their manifest could not be read or used (damaged, no workload description). */
  skippedSnapshots: UnreadableSnapshot[];
}

/** The snapshots of one workload on the target, oldest first. */
interface TargetWorkload {
  id: string;
  snapshots: TargetSnapshot[];
  newest: TargetSnapshot;
}

function groupByWorkload(scan: TargetScan): Map<string, TargetWorkload> {
  const out = new Map<string, TargetWorkload>();
  for (const s of scan.snapshots) {
    const id = s.meta.workload.id;
    const g = out.get(id);
    if (g) {
      g.snapshots.push(s);
      g.newest = s;
    } else out.set(id, { id, snapshots: [s], newest: s });
  }
  return out;
}

/**
 * Import from the backup target (workloadmgr-api §4.12): a fresh install pointed at an existing
 * target lists and imports the workloads its manifests describe. Each workload is imported in
 * one transaction (workload, members, snapshots with their metadata and checkpoints, its policy
 * when this install lacks it); one that exists here is skipped with a reason, so importing
 * twice changes nothing. Schedules come in paused: the old install may still be running them.
 */
export class ImportService {
  constructor(private readonly deps: ImportServiceDeps) {}

  /** Workloads on the target this install does not have (optionally of one project), as they were last snapshotted. */
  async listImportable(projectId?: string): Promise<Workload[]> {
    const groups = [...groupByWorkload(await this.deps.scanTarget()).values()];
    const known = await knownWorkloadIds(this.deps.db, groups.map((g) => g.id));
    const now = toSecond(this.deps.clock.now());
    return groups
      .filter((g) => !known.has(g.id) && (!projectId || g.newest.meta.workload.project_id === projectId))
      .map((g) => importedWorkloadRecord(g.newest, defaultJobSchedule(this.deps.clock.now()), now));
  }

  /** Imports the named workloads (all of the target's when `ids` is empty). */
  async importWorkloads(ids: readonly string[]): Promise<ImportResult> {
    const scan = await this.deps.scanTarget();
    const groups = groupByWorkload(scan);
    const wanted = ids.length > 0 ? [...new Set(ids.map((i) => i.toLowerCase()))] : [...groups.keys()];
    const known = await knownWorkloadIds(this.deps.db, wanted);
    const result: ImportResult = { imported: [], failed: [], skippedSnapshots: [...scan.unreadable] };
    for (const id of wanted) {
      const g = groups.get(id);
      const seen = known.get(id);
      if (!g) result.failed.push({ id, name: null, reason: 'No snapshot of this workload was found on the backup target' });
      else if (seen) result.failed.push({ id, name: g.newest.meta.workload.name, reason: seen.deleted ? 'Workload was deleted in this installation' : 'Workload already exists in this installation' });
      else await this.importOne(g, result);
    }
    return result;
  }

  private async importOne(g: TargetWorkload, result: ImportResult): Promise<void> {
    const nowMs = this.deps.clock.now();
    const now = toSecond(nowMs);
    const w = importedWorkloadRecord(g.newest, defaultJobSchedule(nowMs), now);
    try {
      await inTransaction(this.deps.db, async (tx) => {
        await insertWorkload(tx, w);
        await this.importPolicy(tx, w, g.newest.meta.workload.policy ?? null, now);
        const present = await knownSnapshotIds(tx, g.snapshots.map((s) => s.snapshotId));
        for (const t of g.snapshots) {
          if (present.has(t.snapshotId)) continue;
          const s = importedSnapshotRecord(t, w);
          await insertSnapshot(tx, s);
          if (t.meta.checkpoints) await setSnapshotCheckpoints(tx, s.id, JSON.stringify(t.meta.checkpoints));
          await setSnapshotMetadata(tx, s.id, t.meta.snapshot.metadata ?? {}, s.finished_at ?? now);
        }
      });
      result.imported.push(w);
    } catch (e) {
      const reason = isMemberConflict(e) ? 'An instance of this workload already belongs to another workload' : `Import failed: ${errorMessage(e)}`;
      result.failed.push({ id: w.id, name: w.name, reason });
    }
  }

  /**
   * The workload's policy: recreated from the manifest when this install does not have it, and
   * assigned to the workload's project when it is not. The workload keeps `metadata.policy_id`.
   */
  private async importPolicy(tx: DbOrTx, w: Workload, p: ManifestPolicy | null, now: number): Promise<void> {
    if (!p || w.metadata.policy_id !== p.id) return;
    if (!(await getPolicy(tx, p.id))) {
      const fields = Object.entries(p.fields).map(([name, value]) => ({ id: newId(), name, value }));
      await insertPolicy(tx, { id: p.id, project_id: w.project_id, user_id: w.user_id, name: p.name, description: p.description, metadata: {}, fields, now });
    }
    if (await isAssigned(tx, p.id, w.project_id)) return;
    const name = (await this.deps.projects?.projectName(w.project_id)) ?? '';
    await addAssignments(tx, p.id, [{ id: w.project_id, assignmentId: newId(), name }], now);
  }
}
