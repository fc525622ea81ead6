import type { PolicyAssignment, WorkloadPolicy } from '../services/policy.service.js';
import { WLM_VERSION } from '../domain/snapshot.js';
import { formatWireTime } from '../lib/time.js';

/** Workload policy wire shapes (workloadmgr-api §2.7). */

function fieldValues(p: WorkloadPolicy) {
  return p.fields.map((f) => ({
    created_at: formatWireTime(f.created_at),
    updated_at: formatWireTime(f.updated_at),
    deleted_at: null,
    deleted: false,
    version: WLM_VERSION,
    id: f.id,
    policy_id: f.policy_id,
    policy_field_name: f.field_name,
    value: f.value,
  }));
}

export function policyAssignmentView(a: PolicyAssignment) {
  return {
    id: a.id,
    policy_id: a.policy_id,
    project_id: a.project_id,
    policy_name: a.policy_name,
    project_name: a.project_name,
    created_at: formatWireTime(a.created_at),
    version: WLM_VERSION,
  };
}

/** `policy_list` items and the create/update answers. */
export function policySummary(p: WorkloadPolicy) {
  return {
    id: p.id,
    created_at: formatWireTime(p.created_at),
    updated_at: formatWireTime(p.updated_at),
    status: p.status,
    name: p.name,
    description: p.description,
    metadata: Object.entries(p.metadata).map(([key, value]) => ({ key, value })),
    field_values: fieldValues(p),
  };
}

/** Show and assign answers: the summary plus owner and assignments. */
export function policyDetail(p: WorkloadPolicy) {
  return {
    ...policySummary(p),
    user_id: p.user_id,
    project_id: p.project_id,
    policy_assignments: p.assignments.map(policyAssignmentView),
  };
}
