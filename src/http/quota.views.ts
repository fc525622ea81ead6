import type { AllowedQuota, QuotaType } from '../services/quota.service.js';
import { quotaTypeName } from '../services/quota.service.js';
import { WLM_VERSION } from '../domain/snapshot.js';

/** Quota wire shapes (workloadmgr-api §2.8). */

// The built-in types exist since the quota feature did; their records carry a fixed date.
const TYPES_CREATED = '2020-01-01T00:00:00.000000';

export function quotaTypeView(t: QuotaType) {
  return {
    created_at: TYPES_CREATED,
    updated_at: null,
    deleted_at: null,
    deleted: false,
    version: WLM_VERSION,
    id: t.id,
    display_name: t.display_name,
    display_description: t.display_description,
    status: 'available',
  };
}

/**
 * An allowed quota: exactly these seven keys (tempest compares the show answer with `==`);
 * list, create and update answers use the same record.
 */
export function allowedQuotaView(q: AllowedQuota) {
  return {
    id: q.id,
    project_id: q.project_id,
    quota_type_id: q.quota_type_id,
    allowed_value: q.allowed_value,
    high_watermark: q.high_watermark,
    version: WLM_VERSION,
    quota_type_name: quotaTypeName(q.quota_type_id),
  };
}
