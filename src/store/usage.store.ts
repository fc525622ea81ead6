import type { Db } from './db.js';

/**
 * Cloud-wide reads for the admin usage views (workloadmgr-api §4.11): every project, no tenant
 * scoping — callers are the admin-only routes. Deleted workloads and snapshots are left out.
 */

export interface UsageWorkload {
  id: string;
  project_id: string;
  name: string;
}

export interface UsageMember {
  workload_id: string;
  project_id: string;
  instance_id: string;
  name: string;
}

export interface UsageSnapshot {
  id: string;
  workload_id: string;
  project_id: string;
  name: string;
  status: string;
  snapshot_type: string;
  /** Bytes this snapshot added to the target (new compressed chunks). */
  size: number;
  created_at: number;
  /** Ids of the VMs the snapshot captured. */
  instanceIds: string[];
}

export interface UsageData {
  workloads: UsageWorkload[];
  members: UsageMember[];
  snapshots: UsageSnapshot[];
}

function instanceIdsOf(json: string): string[] {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v.flatMap((x) => (x && typeof x === 'object' && typeof (x as { id?: unknown }).id === 'string' ? [(x as { id: string }).id] : [])) : [];
  } catch {
    return [];
  }
}

/** Live workloads, their VMs and their snapshots, across every project. */
export async function readUsage(db: Db): Promise<UsageData> {
  const workloads = await db.selectFrom('workloads').select(['id', 'project_id', 'name']).where('deleted', '=', 0).orderBy('created_at').execute();
  const members = await db
    .selectFrom('workload_instances as wi')
    .innerJoin('workloads as w', 'w.id', 'wi.workload_id')
    .select(['wi.workload_id', 'wi.project_id', 'wi.instance_id', 'wi.name'])
    .where('w.deleted', '=', 0)
    .orderBy('wi.workload_id')
    .orderBy('wi.position')
    .execute();
  const rows = await db
    .selectFrom('snapshots')
    .select(['id', 'workload_id', 'project_id', 'name', 'status', 'snapshot_type', 'size', 'created_at', 'instances'])
    .where('deleted', '=', 0)
    .orderBy('created_at')
    .execute();
  const snapshots = rows.map(({ instances, ...s }) => ({ ...s, size: Number(s.size), created_at: Number(s.created_at), instanceIds: instanceIdsOf(instances) }));
  return { workloads, members, snapshots };
}
