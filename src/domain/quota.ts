/** The built-in quota types with the fixed ids of TrilioVault 4.1 (workloadmgr-api §2.8). */
export const QUOTA_TYPE_IDS = {
  workloads: '1c5d4290-2e08-11ea-889c-7440bb00b67d',
  snapshots: 'b7273a06-2e08-11ea-889c-7440bb00b67d',
  vms: 'be323f58-2e08-11ea-889c-7440bb00b67d',
  volumes: 'c61324d0-2e08-11ea-889c-7440bb00b67d',
  storage: 'f02dd7a6-2e08-11ea-889c-7440bb00b67d',
} as const;

export interface QuotaType {
  id: string;
  display_name: string;
  display_description: string;
}

export const QUOTA_TYPES: readonly QuotaType[] = Object.freeze([
  { id: QUOTA_TYPE_IDS.workloads, display_name: 'Workloads', display_description: 'Total number of workload creation allowed per project' },
  { id: QUOTA_TYPE_IDS.snapshots, display_name: 'Snapshots', display_description: 'Total number of snapshot creation allowed per project' },
  { id: QUOTA_TYPE_IDS.vms, display_name: 'VMs', display_description: 'Total number of VMs allowed per project' },
  { id: QUOTA_TYPE_IDS.volumes, display_name: 'Volumes', display_description: 'Total number of volume attachments allowed per project' },
  { id: QUOTA_TYPE_IDS.storage, display_name: 'Storage', display_description: 'Total storage (in Bytes) allowed per project' },
]);
