import type { JobSchedule, Workload, WorkloadMember } from './workload.js';
import type { Snapshot, SnapshotInstance, SnapshotType } from './snapshot.js';
import { toSecond } from '../lib/time.js';

/**
 * What a snapshot's manifest on the backup target says about the snapshot and its workload
 * (the `meta` the snapshot job commits), and how a fresh database is rebuilt from it (import,
 * workloadmgr-api §4.12). The target is the source of truth for disaster recovery: every field
 * of the snapshot detail view and of the workload's detail view is either in here or derived
 * from the manifest's own numbers (sizes, times).
 *
 * Fields marked optional were added after the first manifests were written: readers take what
 * is there and fall back to the values a new record would get.
 */
export interface SnapshotManifestMeta {
  snapshot: {
    id: string;
    name: string;
    description: string;
    snapshot_type: SnapshotType;
    created_at: number;
    user_id: string;
    is_scheduled?: boolean;
    host?: string;
    warning_msg?: string | null;
    /** Epoch ms the job started: time_taken is measured from here to the manifest's commit. */
    started_at?: number;
    /** The snapshot's metadata records as key → value. */
    metadata?: Record<string, string>;
  };
  workload: {
    id: string;
    name: string;
    description: string;
    project_id: string;
    workload_type_id: string;
    metadata: Record<string, string>;
    user_id?: string;
    source_platform?: string;
    availability_zone?: string | null;
    jobschedule?: JobSchedule;
    created_at?: number;
    instances?: WorkloadMember[];
    /** The workload policy the workload follows (so a fresh install can recreate it). */
    policy?: ManifestPolicy | null;
    /** An encrypted workload (absent: plain); its manifest is sealed, so an import had its key. */
    encryption?: boolean;
    secret_uuid?: string | null;
  };
  instances: SnapshotInstance[];
  disks: { instanceId: string; device: string; size: number; format: string }[];
  checkpoints: unknown;
}

/** A workload policy as carried by a manifest: enough to recreate and assign it. */
export interface ManifestPolicy {
  id: string;
  name: string;
  description: string;
  /** policy field name → value (the four schedule fields). */
  fields: Record<string, string>;
}

/** One committed snapshot found on the target: the manifest's numbers plus its meta. */
export interface TargetSnapshot {
  snapshotId: string;
  /** The project whose chunk keys and packs hold the data (may differ from the workload's after a reassign). */
  storageProjectId: string;
  /** The backup target it was found on (LIFEBOAT_TARGETS name); null/absent: the default one. */
  target?: string | null;
  /** Epoch ms the writer began and the manifest was committed. */
  startedAt: number;
  committedAt: number;
  storedBytes: number;
  totalBytes: number;
  meta: SnapshotManifestMeta;
}

/** A snapshot the scan could not read (damaged manifest, foreign meta): skipped and reported. */
export interface UnreadableSnapshot {
  snapshot_id: string;
  reason: string;
}

/** Every committed snapshot on the target (oldest first), and those whose manifest could not be used. */
export interface TargetScan {
  snapshots: TargetSnapshot[];
  unreadable: UnreadableSnapshot[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';

/** Checks that a manifest's opaque meta is a snapshot job's meta; the reason it is not, else null. */
export function manifestMetaProblem(meta: unknown): string | null {
  if (!isObj(meta) || !isObj(meta.snapshot) || !isObj(meta.workload)) return 'the manifest carries no workload or snapshot description';
  const s = meta.snapshot;
  const w = meta.workload;
  if (!isStr(s.id) || !isStr(s.name) || !isStr(s.user_id) || typeof s.created_at !== 'number') return 'the snapshot description is incomplete';
  if (s.snapshot_type !== 'full' && s.snapshot_type !== 'incremental') return 'the snapshot type is unknown';
  if (!isStr(w.id) || !isStr(w.name) || !isStr(w.project_id) || !isStr(w.workload_type_id)) return 'the workload description is incomplete';
  if (!Array.isArray(meta.instances)) return 'the manifest lists no instances';
  return null;
}


/** The snapshot row an imported snapshot gets: `available`, measured as the manifest says. */
export function importedSnapshotRecord(t: TargetSnapshot, workload: { project_id: string; user_id: string }): Snapshot {
  const s = t.meta.snapshot;
  const finished = toSecond(t.committedAt);
  const started = s.started_at ?? t.startedAt;
  return {
    id: t.snapshotId,
    workload_id: t.meta.workload.id,
    project_id: workload.project_id,
    user_id: s.user_id,
    name: s.name,
    description: s.description,
    status: 'available',
    snapshot_type: s.snapshot_type,
    is_scheduled: s.is_scheduled ?? false,
    host: s.host ?? '',
    size: t.storedBytes,
    restore_size: t.totalBytes,
    uploaded_size: t.storedBytes,
    progress_percent: 100,
    progress_msg: 'Snapshot of workload is complete',
    warning_msg: s.warning_msg ?? null,
    error_msg: null,
    time_taken: Math.max(0, Math.round((t.committedAt - started) / 1000)),
    pinned: false,
    instances: t.meta.instances,
    // Where the import found it (every configured target is scanned); null: the default one.
    backup_target: t.target ?? null,
    created_at: s.created_at,
    updated_at: finished,
    finished_at: finished,
  };
}

/**
 * The workload an import creates from its newest snapshot's meta: `available`, its schedule
 * paused (two installs must never both run it), members as last snapshotted.
 */
export function importedWorkloadRecord(newest: TargetSnapshot, fallbackSchedule: JobSchedule, now: number): Workload {
  const w = newest.meta.workload;
  const members: WorkloadMember[] = w.instances ?? newest.meta.instances.map((i) => ({ id: i.id, name: i.name, metadata: {} }));
  return {
    id: w.id,
    project_id: w.project_id,
    user_id: w.user_id ?? newest.meta.snapshot.user_id,
    name: w.name,
    description: w.description,
    workload_type_id: w.workload_type_id,
    source_platform: w.source_platform ?? 'openstack',
    status: 'available',
    error_msg: null,
    availability_zone: w.availability_zone ?? null,
    jobschedule: { ...(w.jobschedule ?? fallbackSchedule), enabled: false },
    metadata: w.metadata,
    force_full: false,
    backup_target: newest.target ?? null, // where its newest snapshot was found (null: the default target)
    ...(w.encryption ? { encryption: true, secret_uuid: w.secret_uuid ?? null } : {}),
    created_at: w.created_at ?? newest.meta.snapshot.created_at,
    updated_at: now,
    instances: members,
  };
}
