import { ValidationError } from '../lib/errors.js';
import { QUOTA_TYPES } from '../domain/quota.js';
import type { QuotaLimit, UpdateQuotaCommand } from '../services/quota.service.js';
import { requireObject } from './fields.js';
import { unwrap } from './query.js';

/** A non-negative integer, given as a JSON number or a digit string (CLI arguments). */
function quotaNumber(v: unknown, field: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new ValidationError(`Invalid ${field}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * `{"allowed_quotas": [{"quota_type_id", "allowed_value", "high_watermark"}, ...]}` of POST
 * /project_allowed_quotas/{project_id} → one limit per type (a missing watermark is the limit).
 */
export function parseCreateQuotas(body: unknown, projectId: string): QuotaLimit[] {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('allowed_quotas' in body)) throw new ValidationError('Incorrect request body format');
  const list = (body as { allowed_quotas: unknown }).allowed_quotas;
  if (!Array.isArray(list)) throw new ValidationError('Invalid allowed_quotas: expected a list of {"quota_type_id", "allowed_value", "high_watermark"}');
  if (list.length === 0 || list.length > QUOTA_TYPES.length) throw new ValidationError(`Invalid allowed_quotas: expected 1 to ${QUOTA_TYPES.length} items`);
  const items: QuotaLimit[] = [];
  for (const raw of list) {
    const o = requireObject(raw, 'allowed_quotas item');
    const typeId = typeof o.quota_type_id === 'string' ? o.quota_type_id.toLowerCase() : '';
    if (!QUOTA_TYPES.some((q) => q.id === typeId)) throw new ValidationError(`Invalid quota_type_id: ${JSON.stringify(o.quota_type_id)} is not a quota type`);
    if (items.some((i) => i.typeId === typeId)) throw new ValidationError(`Invalid allowed_quotas: quota type ${typeId} is listed twice`);
    if (o.project_id !== undefined && o.project_id !== null && o.project_id !== projectId) {
      throw new ValidationError(`Invalid project_id: ${JSON.stringify(o.project_id)} does not match the project in the URL`);
    }
    const allowed = quotaNumber(o.allowed_value, 'allowed_value');
    const high = o.high_watermark === undefined || o.high_watermark === null ? allowed : quotaNumber(o.high_watermark, 'high_watermark');
    items.push({ typeId, allowed, high });
  }
  return items;
}

/** `{"allowed_quotas": {...}}` of PUT /update_allowed_quota/{id}: new limit and/or watermark. */
export function parseUpdateQuota(body: unknown): UpdateQuotaCommand {
  const b = unwrap(body, 'allowed_quotas');
  if (b.allowed_value === undefined && b.high_watermark === undefined) throw new ValidationError('Please provide allowed_value or high_watermark');
  return {
    ...(b.allowed_value !== undefined ? { allowed: quotaNumber(b.allowed_value, 'allowed_value') } : {}),
    ...(b.high_watermark !== undefined ? { high: quotaNumber(b.high_watermark, 'high_watermark') } : {}),
    // Echoed identity fields must name this quota; the service compares them.
    ...(b.project_id !== undefined && b.project_id !== null ? { projectId: String(b.project_id) } : {}),
    ...(b.quota_type_id !== undefined && b.quota_type_id !== null ? { quotaTypeId: String(b.quota_type_id).toLowerCase() } : {}),
  };
}
