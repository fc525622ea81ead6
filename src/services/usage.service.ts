import type { Platform } from '../platform/platform.js';
import type { Db } from '../store/db.js';
import { readUsage, type UsageData, type UsageSnapshot } from '../store/usage.store.js';
import type { ProjectDirectory } from './policy.service.js';

/**
 * The vendor's admin usage views (workloadmgr-api §4.11): storage per backup target, usage and
 * chargeback per project, protected VMs. Cloud-wide by nature, so the routes are admin-only;
 * this service computes from the store (workloads, their VMs, snapshot sizes), the platform
 * (how many VMs each project has) and the targets (capacity). Numbers are bytes.
 */

/** A backup target as the storage view needs it. `capacity`: null when the kind has none to report (S3). */
export interface TargetUsage {
  name: string;
  kind: string;
  /** Where it is, without secrets (lib/target.ts describeTarget). */
  description: string;
  online: boolean;
  capacity: { totalBytes: number; usedBytes: number } | null;
}

/** The projects to report on: the directory's list (embedded identity) besides those with workloads. */
export interface ProjectLister extends ProjectDirectory {
  listProjects(): Promise<{ id: string; name: string }[]>;
}

export interface UsageServiceDeps {
  db: Db;
  platform: Platform;
  projects?: ProjectLister;
  /** Every configured target; the first is the default, where snapshots without a recorded target live. */
  targets(): Promise<TargetUsage[]>;
}

export interface StorageUsage {
  target: TargetUsage;
  /** Bytes stored by the target's snapshots, split by type, and their counts. */
  full: { count: number; bytes: number };
  incremental: { count: number; bytes: number };
}

export interface ProjectUsage {
  projectId: string;
  projectName: string | null;
  totalVms: number;
  vmsProtected: number;
  /** VMs captured by the project's snapshots that are no longer in any workload. */
  passivelyProtected: number;
  usedBytes: number;
  workloads: {
    id: string;
    name: string;
    /** Bytes its snapshots stored. */
    bytes: number;
    vms: { id: string; name: string }[];
    snapshots: { id: string; name: string; bytes: number; createdAt: number }[];
  }[];
}

export interface ProtectedVm {
  id: string;
  name: string;
  projectId: string;
  workloadId: string;
}

const sum = (xs: readonly UsageSnapshot[]) => xs.reduce((a, s) => a + s.size, 0);

export class UsageService {
  constructor(private readonly d: UsageServiceDeps) {}

  /**
   * One entry per target. Snapshots do not record a target yet (one target per service), so
   * all of them count on the default target; the others report capacity only.
   */
  async storageUsage(): Promise<{ targets: StorageUsage[] }> {
    const [targets, data] = await Promise.all([this.d.targets(), readUsage(this.d.db)]);
    return {
      targets: targets.map((target, i) => {
        const mine = i === 0 ? data.snapshots : [];
        const full = mine.filter((s) => s.snapshot_type === 'full');
        const inc = mine.filter((s) => s.snapshot_type !== 'full');
        return { target, full: { count: full.length, bytes: sum(full) }, incremental: { count: inc.length, bytes: sum(inc) } };
      }),
    };
  }

  /** Usage of every project known to the directory or owning a workload, by project id. */
  async projectUsage(): Promise<ProjectUsage[]> {
    const data = await readUsage(this.d.db);
    const known = (await this.d.projects?.listProjects()) ?? [];
    const ids = [...new Set([...known.map((p) => p.id), ...data.workloads.map((w) => w.project_id)])];
    const names = new Map(known.map((p) => [p.id, p.name]));
    const out: ProjectUsage[] = [];
    for (const projectId of ids) {
      const totalVms = (await this.d.platform.listInstances(projectId)).length;
      const name = names.get(projectId) ?? (await this.d.projects?.projectName(projectId)) ?? null;
      out.push(projectOf(projectId, name, totalVms, data));
    }
    return out;
  }

  /** Every VM in a live workload, in workload order. */
  async protectedVms(): Promise<ProtectedVm[]> {
    const { members } = await readUsage(this.d.db);
    return members.map((m) => ({ id: m.instance_id, name: m.name, projectId: m.project_id, workloadId: m.workload_id }));
  }
}

function projectOf(projectId: string, projectName: string | null, totalVms: number, data: UsageData): ProjectUsage {
  const members = data.members.filter((m) => m.project_id === projectId);
  const snapshots = data.snapshots.filter((s) => s.project_id === projectId);
  const protectedIds = new Set(members.map((m) => m.instance_id));
  const captured = new Set(snapshots.flatMap((s) => s.instanceIds));
  const workloads = data.workloads
    .filter((w) => w.project_id === projectId)
    .map((w) => {
      const snaps = snapshots.filter((s) => s.workload_id === w.id);
      return {
        id: w.id,
        name: w.name,
        bytes: sum(snaps),
        vms: members.filter((m) => m.workload_id === w.id).map((m) => ({ id: m.instance_id, name: m.name })),
        snapshots: snaps.map((s) => ({ id: s.id, name: s.name, bytes: s.size, createdAt: s.created_at })),
      };
    });
  return {
    projectId,
    projectName,
    totalVms,
    vmsProtected: protectedIds.size,
    passivelyProtected: [...captured].filter((id) => !protectedIds.has(id)).length,
    usedBytes: sum(snapshots),
    workloads,
  };
}
