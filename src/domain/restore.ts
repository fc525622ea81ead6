/** Restore states (workloadmgr-api §3.3) and the parsed restore request. */
export type RestoreStatus = 'restoring' | 'executing' | 'available' | 'error' | 'cancelling' | 'cancelled';
export type RestoreKind = 'oneclick' | 'selective' | 'inplace';

export const RUNNING_RESTORE_STATES: RestoreStatus[] = ['restoring', 'executing'];
export const DELETABLE_RESTORE_STATES: RestoreStatus[] = ['available', 'error', 'cancelled'];
export const RESTORE_LOST_MESSAGE = 'Restore did not finish successfully';

export interface RestoredInstance {
  id: string;
  name: string;
  status: string;
  metadata: Record<string, string>;
}

export interface RestoreMetadataRecord {
  id: string;
  key: string;
  value: string;
  created_at: number;
  updated_at: number | null;
}

export interface Restore {
  id: string;
  project_id: string;
  user_id: string;
  snapshot_id: string;
  workload_id: string;
  name: string;
  description: string;
  status: RestoreStatus;
  kind: RestoreKind;
  options: Record<string, unknown>;
  host: string;
  size: number;
  uploaded_size: number;
  progress_percent: number;
  progress_msg: string | null;
  warning_msg: string | null;
  error_msg: string | null;
  time_taken: number;
  instances: RestoredInstance[];
  metadata: RestoreMetadataRecord[];
  created_at: number;
  updated_at: number | null;
  finished_at: number | null;
}

/** What to restore for one instance of the snapshot (validated against the snapshot). */
export interface RestorePlanInstance {
  /** The instance id in the snapshot. */
  id: string;
  /** Name for the new instance (one-click/selective); ignored in place. */
  name: string;
  availability_zone: string;
  /** Devices to restore (all of the instance's disks when the request named none). */
  devices: string[];
  /** Network id → replacement network (selective networks_mapping). */
  networkMap: Record<string, { id: string; name: string; subnet?: { id: string } }>;
  /** Device → the volume type asked for (`vdisks[].new_volume_type`); libvirt: `raw` or `qcow2`. */
  volumeTypes?: Record<string, string>;
  /** Device → the availability zone asked for its new volume (`vdisks[].availability_zone`; OpenStack only). */
  volumeZones?: Record<string, string>;
  /**
   * Lifeboat's `power_on` option (per instance, or for all in `options`): start the restored
   * instance or not. Absent: a new instance starts when its source was running at snapshot
   * time; an instance restored in place starts again when it was running.
   */
  powerOn?: boolean;
}

export interface RestorePlan {
  kind: RestoreKind;
  instances: RestorePlanInstance[];
}
