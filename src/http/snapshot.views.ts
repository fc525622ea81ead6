import type { Snapshot, SnapshotMetadataRecord, Task } from '../domain/snapshot.js';
import { redactPaths, redactPathsOrNull } from '../lib/redact.js';
import { WLM_VERSION } from '../domain/snapshot.js';
import { formatWireTime, toSecond } from '../lib/time.js';

/** Wire shapes of the GUIDE (snapshots-api.md): summary (8 keys) and detail. */
export function snapshotSummary(s: Snapshot, withInstances = false) {
  const base = {
    id: s.id,
    created_at: formatWireTime(toSecond(s.created_at)),
    status: s.status,
    snapshot_type: s.snapshot_type,
    workload_id: s.workload_id,
    name: s.name,
    description: s.description,
    host: s.host,
  };
  if (!withInstances) return base;
  // ?get_instances: id, name, status, metadata, flavor, nics, vdisks (no security_group)
  return { ...base, instances: s.instances.map(({ security_group: _sg, ...rest }) => rest) };
}

/** Metadata values pass through redactPaths: `backup_media_target` must not show a tenant the target's directory. */
export function metadataRecordView(m: SnapshotMetadataRecord) {
  return {
    created_at: formatWireTime(m.created_at),
    updated_at: formatWireTime(m.updated_at),
    deleted_at: null,
    deleted: false,
    version: WLM_VERSION,
    id: m.id,
    snapshot_id: m.snapshot_id,
    key: m.key,
    value: typeof m.value === 'string' ? redactPaths(m.value) : m.value,
  };
}

export function snapshotDetail(s: Snapshot, metadata: SnapshotMetadataRecord[]) {
  return {
    id: s.id,
    created_at: formatWireTime(toSecond(s.created_at)),
    updated_at: formatWireTime(s.updated_at),
    finished_at: formatWireTime(s.finished_at),
    user_id: s.user_id,
    project_id: s.project_id,
    status: s.status,
    snapshot_type: s.snapshot_type,
    workload_id: s.workload_id,
    instances: s.instances,
    name: s.name,
    description: s.description,
    host: s.host,
    size: s.size,
    restore_size: s.restore_size,
    uploaded_size: Math.min(s.uploaded_size, s.size),
    progress_percent: s.progress_percent,
    progress_msg: redactPathsOrNull(s.progress_msg),
    warning_msg: redactPathsOrNull(s.warning_msg),
    error_msg: redactPathsOrNull(s.error_msg),
    time_taken: s.time_taken,
    pinned: s.pinned,
    metadata: metadata.map(metadataRecordView),
    restores_info: '',
  };
}

export function taskView(t: Task) {
  return {
    id: t.id,
    display_name: t.display_name,
    status: t.status,
    status_messages: t.status_messages,
    project_id: t.project_id,
    created_at: formatWireTime(t.created_at),
    updated_at: formatWireTime(t.updated_at),
    finished_at: formatWireTime(t.finished_at),
  };
}
