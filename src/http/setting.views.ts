import type { SettingView } from '../services/setting.service.js';
import { WLM_VERSION } from '../domain/snapshot.js';
import { formatWireTime } from '../lib/time.js';

/** A setting record (workloadmgr-api §2.9); secret values arrive already masked. */
export function settingView(s: SettingView) {
  const r = s.row;
  return {
    name: r.name,
    value: s.value,
    description: r.description,
    category: r.category,
    type: r.type,
    is_public: r.is_public === 1,
    is_hidden: r.is_hidden === 1,
    metadata: JSON.parse(r.metadata) as Record<string, unknown>,
    project_id: r.project_id,
    user_id: r.user_id,
    created_at: formatWireTime(r.created_at),
    updated_at: formatWireTime(r.updated_at),
    deleted_at: null,
    deleted: false,
    version: WLM_VERSION,
    status: 'available',
  };
}
