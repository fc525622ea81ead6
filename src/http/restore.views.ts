import type { Restore } from '../domain/restore.js';
import { redactPathsOrNull } from '../lib/redact.js';
import { WLM_VERSION } from '../domain/snapshot.js';
import { formatWireTime } from '../lib/time.js';

/** Wire shapes of workloadmgr-api §2.5: detail, and the list summary. */
function links(baseUrl: string, r: Restore) {
  return [
    { rel: 'self', href: `${baseUrl}/v1/${r.project_id}/restores/${r.id}` },
    { rel: 'bookmark', href: `${baseUrl}/${r.project_id}/restores/${r.id}` },
  ];
}

export function restoreSummary(baseUrl: string, r: Restore) {
  return {
    id: r.id,
    created_at: formatWireTime(r.created_at),
    status: r.status,
    restore_type: 'restore',
    snapshot_id: r.snapshot_id,
    workload_id: r.workload_id,
    links: links(baseUrl, r),
    name: r.name,
    description: r.description,
    host: r.host,
  };
}

export function restoreDetail(baseUrl: string, r: Restore) {
  return {
    id: r.id,
    created_at: formatWireTime(r.created_at),
    updated_at: formatWireTime(r.updated_at),
    finished_at: formatWireTime(r.finished_at),
    user_id: r.user_id,
    project_id: r.project_id,
    status: r.status,
    restore_type: 'restore',
    snapshot_id: r.snapshot_id,
    workload_id: r.workload_id,
    links: links(baseUrl, r),
    name: r.name,
    description: r.description,
    host: r.host,
    size: r.size,
    uploaded_size: r.uploaded_size,
    progress_percent: r.progress_percent,
    progress_msg: redactPathsOrNull(r.progress_msg),
    warning_msg: redactPathsOrNull(r.warning_msg),
    error_msg: redactPathsOrNull(r.error_msg),
    time_taken: r.time_taken,
    restore_options: { ...r.options, restore_type: r.kind },
    metadata: r.metadata.map((m) => ({
      created_at: formatWireTime(m.created_at),
      updated_at: formatWireTime(m.updated_at),
      deleted_at: null,
      deleted: false,
      version: WLM_VERSION,
      id: m.id,
      restore_id: r.id,
      key: m.key,
      value: m.value,
    })),
    instances: r.instances,
    networks: [],
    subnets: [],
    routers: [],
    flavors: [],
  };
}
