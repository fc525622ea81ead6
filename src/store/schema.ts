/**
 * Row types of every table, as Kysely sees them. Timestamps are epoch milliseconds (integers),
 * booleans are 0/1 integers and structured values are JSON text, so SQLite and PostgreSQL
 * store and return identical values.
 */

export interface TokensTable {
  id_hash: string; // sha256 of the token; the token itself is never stored
  user_id: string;
  user_name: string;
  project_id: string;
  project_name: string;
  roles: string; // JSON [{id,name}]
  methods: string; // JSON ["password"]
  audit_id: string;
  issued_at: number;
  expires_at: number;
  revoked: number;
}

export interface WorkloadsTable {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  workload_type_id: string;
  source_platform: string;
  status: string;
  error_msg: string | null;
  availability_zone: string | null;
  jobschedule: string; // JSON object of stored schedule keys
  metadata: string; // JSON string→string
  /** 1 when the next snapshot must be full whatever was asked (first snapshot, after reset). */
  force_full: number;
  /** The chosen backup target's name; null: the default (0007). */
  backup_target: string | null;
  /** 1: an encrypted workload (0010). */
  encryption: number;
  secret_uuid: string | null;
  created_at: number;
  updated_at: number;
  deleted: number;
  deleted_at: number | null;
}

/** Membership of an instance in a workload; instance_id is unique, so a VM is in one workload. */
export interface WorkloadInstancesTable {
  workload_id: string;
  instance_id: string;
  project_id: string;
  name: string;
  metadata: string; // JSON string→string
  position: number;
}

export interface SnapshotsTable {
  id: string;
  workload_id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  status: string;
  snapshot_type: string;
  is_scheduled: number;
  host: string;
  size: number;
  restore_size: number;
  uploaded_size: number;
  progress_percent: number;
  progress_msg: string | null;
  warning_msg: string | null;
  error_msg: string | null;
  time_taken: number;
  pinned: number;
  instances: string; // JSON: the snapshot-time instance view (flavor, nics, vdisks...)
  /** JSON {instanceId: {name, state?}}: platform checkpoints for the next incremental (0006). */
  checkpoints: string | null;
  /** The backup target the snapshot is written to; null: the default (0007). */
  backup_target: string | null;
  created_at: number;
  updated_at: number | null;
  finished_at: number | null;
  deleted: number;
  deleted_at: number | null;
}

export interface SnapshotMetadataTable {
  id: string;
  snapshot_id: string;
  key: string;
  value: string;
  created_at: number;
  updated_at: number | null;
}

/** Durable job queue: rows written in the same transaction as the state change they serve. */
export interface JobsTable {
  id: string;
  kind: string;
  payload: string; // JSON
  resource_id: string;
  status: string; // queued | running | done | failed
  lease_owner: string | null;
  lease_expires_at: number | null;
  attempts: number;
  error: string | null;
  created_at: number;
  updated_at: number;
  /** Only the worker with this node name may claim the job; null: any worker (migration 0005). */
  target_node: string | null;
}

/** A running Lifeboat process (node registry, 0008); times are epoch ms. */
export interface NodesTable {
  id: string;
  node_name: string;
  role: string;
  pid: number;
  version: string;
  settings_key_id: string;
  status: string; // up | draining | stopped
  running_jobs: number;
  concurrency: number;
  loadavg: number;
  started_at: number;
  heartbeat_at: number;
}

export interface TasksTable {
  id: string;
  project_id: string;
  display_name: string;
  resource_id: string;
  status: string;
  status_messages: string; // JSON string[]
  created_at: number;
  updated_at: number | null;
  finished_at: number | null;
}

export interface RestoresTable {
  id: string;
  project_id: string;
  user_id: string;
  snapshot_id: string;
  workload_id: string;
  name: string;
  description: string;
  status: string;
  kind: string; // oneclick | selective | inplace
  options: string; // JSON: the posted options, verbatim
  host: string;
  size: number;
  uploaded_size: number;
  progress_percent: number;
  progress_msg: string | null;
  warning_msg: string | null;
  error_msg: string | null;
  time_taken: number;
  instances: string; // JSON [{id, name, status, metadata}] of restored VMs
  metadata: string; // JSON [{id, key, value, created_at, updated_at}]
  created_at: number;
  updated_at: number | null;
  finished_at: number | null;
  deleted: number;
  deleted_at: number | null;
}

/** Scheduler plan per workload (migration 0003); `next_run_at` is the claim token of a due run. */
/** File searches (migration 0009-file-searches). */
export interface FileSearchesTable {
  id: number;
  project_id: string;
  user_id: string;
  vm_id: string;
  workload_id: string;
  filepath: string;
  snapshot_ids: string; // JSON [id...]
  status: string; // executing | searching | completed | error | cancelling | cancelled
  progress_percent: number;
  error_msg: string | null;
  json_resp: string | null;
  created_at: number;
  updated_at: number | null;
  deleted_at: number | null;
}

/** One `repo verify` run (migration 0011); JSON text in `problems` and `failed_snapshots`. */
export interface RepoVerificationsTable {
  id: string;
  target: string;
  read_data_subset: number | null;
  mark_bad: number;
  source: string; // api | cli
  user_id: string | null;
  status: string; // queued | running | ok | damaged | error
  progress_percent: number;
  snapshots: number;
  disks: number;
  packs_read: number;
  chunks_checked: number;
  bytes_read: number;
  problem_count: number;
  problems: string;
  failed_snapshots: string;
  error_msg: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

export interface WorkloadScheduleStateTable {
  workload_id: string;
  schedule_key: string;
  next_run_at: number | null;
  last_due_at: number | null;
  last_snapshot_id: string | null;
  note: string | null;
  note_at: number | null;
  updated_at: number;
}

/** The global job scheduler switch: one row, id 'global' (migration 0003). */
export interface JobSchedulerGlobalTable {
  id: string;
  enabled: number;
  updated_by: string | null;
  updated_at: number;
}

/** Workload policies, their schedule fields and project assignments (migration 0004). */
export interface WorkloadPoliciesTable {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  status: string;
  metadata: string; // JSON string→string
  created_at: number;
  updated_at: number;
}

export interface WorkloadPolicyFieldsTable {
  id: string;
  policy_id: string;
  field_name: string;
  value: string;
  created_at: number;
  updated_at: number | null;
}

export interface WorkloadPolicyAssignmentsTable {
  id: string;
  policy_id: string;
  project_id: string;
  project_name: string;
  created_at: number;
}

/** At most one quota per (project, type): a unique index enforces it (migration 0004). */
export interface ProjectAllowedQuotasTable {
  id: string;
  project_id: string;
  quota_type_id: string;
  allowed_value: number;
  high_watermark: number;
  created_at: number;
  updated_at: number;
}

/** Per-project settings; secret values are sealed by setting.store.ts before they get here (migration 0004). */
export interface SettingsTable {
  project_id: string;
  name: string;
  value: string;
  secret: number;
  description: string;
  category: string;
  type: string;
  is_public: number;
  is_hidden: number;
  metadata: string; // JSON object
  user_id: string;
  created_at: number;
  updated_at: number | null;
}

/** One state-changing API request (migration 0007; store/audit.store.ts). */
export interface AuditLogTable {
  id: string;
  at: number;
  request_id: string;
  user_id: string;
  user_name: string;
  project_id: string;
  project_name: string;
  object_type: string;
  object_id: string | null;
  object_name: string | null;
  action: string;
  method: string;
  route: string;
  status_code: number;
}

/** One per-host child task of a snapshot (migration 0012); JSON text in `instance_ids` and `result`. */
export interface SnapshotPartsTable {
  id: string;
  snapshot_id: string;
  node: string;
  instance_ids: string;
  status: string; // queued | running | written | committed | done | failed
  result: string | null;
  error_msg: string | null;
  bytes_total: number | string | null;
  bytes_done: number | string;
  created_at: number;
  updated_at: number;
}

/** Every table, as Kysely sees it: the one type of `Db` (db.ts). A new migration's tables go here. */
export interface Database {
  tokens: TokensTable;
  workloads: WorkloadsTable;
  workload_instances: WorkloadInstancesTable;
  snapshots: SnapshotsTable;
  snapshot_metadata: SnapshotMetadataTable;
  jobs: JobsTable;
  nodes: NodesTable;
  tasks: TasksTable;
  restores: RestoresTable;
  file_searches: FileSearchesTable;
  repo_verifications: RepoVerificationsTable;
  snapshot_parts: SnapshotPartsTable;
  workload_schedule_state: WorkloadScheduleStateTable;
  job_scheduler_global: JobSchedulerGlobalTable;
  workload_policies: WorkloadPoliciesTable;
  workload_policy_fields: WorkloadPolicyFieldsTable;
  workload_policy_assignments: WorkloadPolicyAssignmentsTable;
  project_allowed_quotas: ProjectAllowedQuotasTable;
  settings: SettingsTable;
  audit_log: AuditLogTable;
}
