import type { Workload } from '../domain/workload.js';
import { redactPathsOrNull } from '../lib/redact.js';
import { formatWireTime } from '../lib/time.js';

/** Wire shapes of workloadmgr-api §2.1 (summary) and §2.2 (detail). */
export function workloadLinks(baseUrl: string, w: Workload) {
  return [
    { rel: 'self', href: `${baseUrl}/v1/${w.project_id}/workloads/${w.id}` },
    { rel: 'bookmark', href: `${baseUrl}/${w.project_id}/workloads/${w.id}` },
  ];
}

export function workloadSummary(baseUrl: string, w: Workload) {
  return {
    project_id: w.project_id,
    user_id: w.user_id,
    id: w.id,
    name: w.name,
    snapshots_info: '',
    description: w.description,
    workload_type_id: w.workload_type_id,
    status: w.status,
    created_at: formatWireTime(w.created_at),
    updated_at: formatWireTime(w.updated_at),
    scheduler_trust: null,
    links: workloadLinks(baseUrl, w),
  };
}

export interface WorkloadDetailExtras {
  storageUsage: { usage: number; full: { snap_count: number; usage: number }; incremental: { snap_count: number; usage: number } };
  globalJobScheduler: boolean;
  /** Seconds until the next scheduled run; null when the schedule is off or ended. */
  nextRunSeconds: number | null;
  /** OpenStack: the trust scheduled runs act through (null elsewhere: the field is left out). */
  schedulerTrust?: unknown;
  isAdmin: boolean;
  /** The workload's backup target name (workloadmgr 5.x `backup_target_types`). */
  backupTarget: string | null;
}

export function workloadDetail(baseUrl: string, w: Workload, x: WorkloadDetailExtras) {
  const { enabled: _stored, ...schedule } = w.jobschedule;
  // `enabled` is whether the scheduler will run this workload; nextrun only while enabled.
  const enabled = w.jobschedule.enabled && x.globalJobScheduler && x.nextRunSeconds !== null;
  const metadata = { ...w.metadata };
  if (!x.isAdmin) delete metadata.backup_media_target;
  return {
    id: w.id,
    name: w.name,
    description: w.description,
    created_at: formatWireTime(w.created_at),
    updated_at: formatWireTime(w.updated_at),
    user_id: w.user_id,
    project_id: w.project_id,
    availability_zone: w.availability_zone,
    workload_type_id: w.workload_type_id,
    backup_target_types: x.backupTarget,
    status: w.status,
    error_msg: redactPathsOrNull(w.error_msg),
    interval: null,
    // Only where scheduled runs act through a trust (OpenStack): §2.2's field list otherwise.
    ...(x.schedulerTrust ? { scheduler_trust: x.schedulerTrust } : {}),
    storage_usage: x.storageUsage,
    instances: w.instances.map((m) => ({ id: m.id, name: m.name, metadata: m.metadata })),
    metadata,
    jobschedule: {
      enabled,
      ...schedule,
      global_jobscheduler: x.globalJobScheduler,
      ...(enabled ? { nextrun: x.nextRunSeconds } : {}),
    },
    // Trilio 5.x shows these on encrypted workloads; a plain workload's view is unchanged.
    ...(w.encryption ? { encryption: true, secret_uuid: w.secret_uuid ?? null } : {}),
    links: workloadLinks(baseUrl, w),
  };
}
