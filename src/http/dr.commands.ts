import { ValidationError } from '../lib/errors.js';
import type { ReassignCommand } from '../services/reassign.service.js';
import { requireObject, uuidField } from './fields.js';

/** A Keystone project or user id (32 hex, a UUID, or a short name-like id); anything else is refused. */
const IDENTITY_ID_RE = /^[0-9a-zA-Z_-]{1,64}$/;

function identityId(v: unknown, field: string): string {
  if (typeof v !== 'string' || !IDENTITY_ID_RE.test(v)) throw new ValidationError(`Invalid ${field}: expected a project or user id`);
  return v;
}

function list(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ValidationError(`Invalid ${field}: expected a list`);
  if (v.length > 1000) throw new ValidationError(`Invalid ${field}: more than 1000 entries`);
  return v;
}

/** Body of POST /workloads/import_workloads: `{"workload_ids": [...]}`; absent or empty = all. */
export function parseImportWorkloads(body: unknown): string[] {
  if (body === undefined || body === null) return [];
  const b = requireObject(body, 'request body');
  return list(b.workload_ids, 'workload_ids').map((id) => uuidField(id, 'workload_ids'));
}

/**
 * Body of POST /workloads/reasign_workloads (F18): a JSON array of
 * `{"workload_ids"|"old_tenant_ids", "user_id", "new_tenant_id", "migrate_cloud"}`; exactly one
 * of the two id lists, and both target ids, in every element.
 */
export function parseReassignWorkloads(body: unknown): ReassignCommand[] {
  if (!Array.isArray(body) || body.length === 0) throw new ValidationError('Incorrect request body format: expected a non-empty list of reassignments');
  if (body.length > 100) throw new ValidationError('Incorrect request body format: more than 100 reassignments');
  return body.map((item) => {
    const o = requireObject(item, 'reassignment');
    const workloadIds = list(o.workload_ids, 'workload_ids').map((id) => uuidField(id, 'workload_ids'));
    const oldProjectIds = list(o.old_tenant_ids, 'old_tenant_ids').map((id) => identityId(id, 'old_tenant_ids'));
    if ((workloadIds.length > 0) === (oldProjectIds.length > 0)) throw new ValidationError('Please provide either workload_ids or old_tenant_ids (not both)');
    if (o.migrate_cloud !== undefined && o.migrate_cloud !== null && typeof o.migrate_cloud !== 'boolean') throw new ValidationError('Invalid migrate_cloud: expected true or false');
    return { workloadIds, oldProjectIds, newProjectId: identityId(o.new_tenant_id, 'new_tenant_id'), userId: identityId(o.user_id, 'user_id') };
  });
}
