/** Snapshot states (workloadmgr-api §3.2) and the snapshot-time description of its VMs. */
import type { SecurityGroupRule } from './instance.js';

export type SnapshotStatus =
  | 'creating'
  | 'executing'
  | 'uploading'
  | 'available'
  | 'error'
  | 'cancelling'
  | 'cancelled'
  | 'deleting'
  | 'restoring'
  | 'mounting'
  | 'mounted';

export const RUNNING_SNAPSHOT_STATES: SnapshotStatus[] = ['creating', 'executing', 'uploading'];
export const DELETABLE_SNAPSHOT_STATES: SnapshotStatus[] = ['available', 'error', 'cancelled'];
export const FINAL_SNAPSHOT_STATES: SnapshotStatus[] = ['available', 'error', 'cancelled'];

export type SnapshotType = 'full' | 'incremental';

/** The TrilioVault build string every DB-backed record carries (tempest compares it). */
export const WLM_VERSION = '4.1.124';

export const DEFAULT_SNAPSHOT_NAME = 'Snapshot';
export const SNAPSHOT_LOST_MESSAGE = 'Snapshot did not finish successfully';

export interface Snapshot {
  id: string;
  workload_id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  status: SnapshotStatus;
  snapshot_type: SnapshotType;
  is_scheduled: boolean;
  host: string;
  size: number;
  restore_size: number;
  uploaded_size: number;
  progress_percent: number;
  progress_msg: string | null;
  warning_msg: string | null;
  error_msg: string | null;
  time_taken: number;
  pinned: boolean;
  instances: SnapshotInstance[];
  /** Name of the backup target holding its data; null: the default target (older snapshots). */
  backup_target: string | null;
  created_at: number;
  updated_at: number | null;
  finished_at: number | null;
}

export interface SnapshotMetadataRecord {
  id: string;
  snapshot_id: string;
  key: string;
  value: string;
  created_at: number;
  updated_at: number | null;
}

/** A VM as captured by a snapshot: the GUIDE's snapshot-instance object, values as on the wire. */
export interface SnapshotInstance {
  id: string;
  name: string;
  status: string;
  metadata: Record<string, string>;
  /** OpenStack adds the flavor's name, swap (MiB, as text) and extra specs. */
  flavor: { vcpus: string; ram: string; disk: string; ephemeral: string; name?: string; swap?: string; extra_specs?: Record<string, string> };
  /** OpenStack adds each group's id and rules (a restore recreates a group that is gone). */
  security_group: { name: string; security_group_type: string; id?: string; rules?: SecurityGroupRule[] }[];
  nics: {
    mac_address: string;
    ip_address: string;
    network: {
      id: string;
      name: string;
      cidr: string | null;
      network_type: string;
      subnet?: { id: string; name: string; cidr: string; ip_version: number; gateway_ip: string | null };
    };
  }[];
  vdisks: SnapshotVdisk[];
}

export interface SnapshotVdisk {
  label: null;
  resource_id: string;
  restore_size: number;
  vm_id: string;
  volume_mountpoint: string;
  availability_zone: string;
  metadata: Record<string, string>;
  volume_id?: string;
  volume_name?: string;
  volume_size?: string;
  volume_type?: string;
  image_id?: string;
  image_name?: string;
  hw_qemu_guest_agent?: string;
  /** OpenStack: the root image's own properties (given again to the restored image). */
  image_properties?: Record<string, string>;
}

export interface Task {
  id: string;
  project_id: string;
  display_name: string;
  resource_id: string;
  status: string;
  status_messages: string[];
  created_at: number;
  updated_at: number | null;
  finished_at: number | null;
}

/** Filters of the snapshot list (workloadmgr-api §4.2.1); dates are epoch ms, inclusive. */
export interface SnapshotFilter {
  workloadId?: string;
  host?: string;
  dateFrom?: number;
  dateTo?: number;
  status?: string;
}

/** A snapshot as it is created (status `creating`, nothing measured yet). */
export function newSnapshotRecord(f: {
  id: string;
  workload_id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  snapshot_type: SnapshotType;
  is_scheduled: boolean;
  backup_target: string | null;
  created_at: number;
}): Snapshot {
  return {
    ...f,
    status: 'creating',
    host: '',
    size: 0,
    restore_size: 0,
    uploaded_size: 0,
    progress_percent: 0,
    progress_msg: 'Snapshot operation is scheduled',
    warning_msg: null,
    error_msg: null,
    time_taken: 0,
    pinned: false,
    instances: [],
    updated_at: null,
    finished_at: null,
  };
}
