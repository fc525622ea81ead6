import type { Instance } from './instance.js';

/** Workload states (workloadmgr-api §3.1) and the fixed workload types. */
export type WorkloadStatus = 'creating' | 'available' | 'locked' | 'locked_for_delete' | 'resetting' | 'deleting' | 'error' | 'deleted';

export const WORKLOAD_TYPES = [
  { id: 'f82ce76f-17fe-438b-aa37-7a023058e50d', name: 'Serial', description: 'Serial workload that snapshots VM in the order they are recieved' },
  { id: '2ddd528d-c9b4-4d7e-8722-cc395140255a', name: 'Parallel', description: 'Parallel workload that snapshots all VMs in parallel' },
] as const;

export const DEFAULT_WORKLOAD_TYPE_ID = WORKLOAD_TYPES[0].id;

/** Defaults of workloadmgr when a field is missing or blank. */
export const DEFAULT_WORKLOAD_NAME = 'workload';
export const DEFAULT_DESCRIPTION = 'no-description';

export interface WorkloadMember {
  id: string;
  name: string;
  metadata: Record<string, string>;
}

export interface Workload {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  workload_type_id: string;
  source_platform: string;
  status: WorkloadStatus;
  error_msg: string | null;
  availability_zone: string | null;
  jobschedule: JobSchedule;
  metadata: Record<string, string>;
  force_full: boolean;
  /** Name of the backup target its snapshots go to (chosen at create time); null: the default. */
  backup_target: string | null;
  /**
   * Encrypted workload (Trilio 5.x `encryption`): every object of its snapshots is sealed under
   * its own data key (repository README "Encrypted workloads"). Absent: false.
   */
  encryption?: boolean;
  /** The Barbican secret named at create (`secret_uuid`), recorded; null/absent: the default key source. */
  secret_uuid?: string | null;
  created_at: number;
  updated_at: number;
  instances: WorkloadMember[];
}

/**
 * The repository scope the workload's snapshots are stored under: its project (chunk ids keyed
 * per project, dedup inside it), or — encrypted — its own id, so its data key covers exactly its
 * data and dedup stays inside that key's scope.
 */
export function storageScope(w: Pick<Workload, 'id' | 'project_id' | 'encryption'>): string {
  return w.encryption ? w.id : w.project_id;
}

/**
 * Why a workload cannot protect this instance for its encryption: an unencrypted workload would
 * store the guest-visible (decrypted) data of a disk the cloud encrypts (an OpenStack volume of
 * an encrypted volume type) readable on the target. Trilio's rule, in its words; null when it can.
 */
export function encryptionConflict(w: Pick<Workload, 'encryption'>, inst: Pick<Instance, 'id' | 'disks'>): string | null {
  if (w.encryption) return null;
  const disk = inst.disks.find((d) => d.encrypted === true);
  return disk ? `Unencrypted workload cannot have instance ${inst.id} with encrypted Volume ${disk.volume_id ?? disk.device}` : null;
}

/** Stored job schedule (workloadmgr 4.x keys); values are stored as the strings users see. */
export interface JobSchedule {
  enabled: boolean;
  start_date: string;
  start_time: string;
  end_date: string;
  interval: string;
  retention_policy_type: string;
  retention_policy_value: string;
  fullbackup_interval: string;
  timezone: string;
}
