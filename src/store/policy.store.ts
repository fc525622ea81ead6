import { sql } from 'kysely';
import type { DbOrTx } from './db.js';
import type { WorkloadPoliciesTable, WorkloadPolicyAssignmentsTable, WorkloadPolicyFieldsTable } from './schema.js';

/**
 * Workload policies (workloadmgr-api §2.7): a named set of the four schedule fields, assigned
 * to projects. Which workloads use a policy is read from `workloads.metadata.policy_id`, so
 * workload create/modify/delete need no extra bookkeeping here.
 */
export type PolicyFieldRecord = WorkloadPolicyFieldsTable;
export type PolicyAssignment = WorkloadPolicyAssignmentsTable & { policy_name: string };

export interface WorkloadPolicy {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  status: string;
  metadata: Record<string, string>;
  created_at: number;
  updated_at: number;
  fields: PolicyFieldRecord[];
  assignments: PolicyAssignment[];
}

export interface NewPolicy {
  id: string;
  project_id: string;
  user_id: string;
  name: string;
  description: string;
  metadata: Record<string, string>;
  /** field name → value; one record each, ids from `newFieldId`. */
  fields: { id: string; name: string; value: string }[];
  now: number;
}

export async function insertPolicy(db: DbOrTx, p: NewPolicy): Promise<void> {
  await db
    .insertInto('workload_policies')
    .values({ id: p.id, project_id: p.project_id, user_id: p.user_id, name: p.name, description: p.description, status: 'available', metadata: JSON.stringify(p.metadata), created_at: p.now, updated_at: p.now })
    .execute();
  if (p.fields.length > 0) {
    await db
      .insertInto('workload_policy_fields')
      .values(p.fields.map((f) => ({ id: f.id, policy_id: p.id, field_name: f.name, value: f.value, created_at: p.now, updated_at: null })))
      .execute();
  }
}

async function hydrate(db: DbOrTx, rows: WorkloadPoliciesTable[]): Promise<WorkloadPolicy[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const fields = await db.selectFrom('workload_policy_fields').selectAll().where('policy_id', 'in', ids).orderBy('field_name').execute();
  const assigns = await db.selectFrom('workload_policy_assignments').selectAll().where('policy_id', 'in', ids).orderBy('created_at').orderBy('project_id').execute();
  return rows.map((r) => ({
    id: r.id,
    project_id: r.project_id,
    user_id: r.user_id,
    name: r.name,
    description: r.description,
    status: r.status,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    created_at: r.created_at,
    updated_at: r.updated_at,
    fields: fields.filter((f) => f.policy_id === r.id),
    assignments: assigns.filter((a) => a.policy_id === r.id).map((a) => ({ ...a, policy_name: r.name })),
  }));
}

export async function getPolicy(db: DbOrTx, id: string): Promise<WorkloadPolicy | null> {
  const r = await db.selectFrom('workload_policies').selectAll().where('id', '=', id).executeTakeFirst();
  if (!r) return null;
  const [p] = await hydrate(db, [r]);
  return p ?? null;
}

/** All policies, or only those assigned to `assignedTo`; oldest first. */
export async function listPolicies(db: DbOrTx, filter: { assignedTo?: string } = {}): Promise<WorkloadPolicy[]> {
  let q = db.selectFrom('workload_policies').selectAll('workload_policies');
  if (filter.assignedTo !== undefined) {
    const project = filter.assignedTo;
    q = q.where('id', 'in', (eb) => eb.selectFrom('workload_policy_assignments').select('policy_id').where('project_id', '=', project));
  }
  return hydrate(db, await q.orderBy('created_at').orderBy('id').execute());
}

/**
 * Takes the policy's row lock (PostgreSQL) / the write lock (SQLite) for the rest of the
 * transaction, so "is it in use?" checks and adoption by a workload cannot interleave.
 * Returns false when the policy does not exist.
 */
export async function lockPolicy(db: DbOrTx, id: string): Promise<boolean> {
  const res = await db
    .updateTable('workload_policies')
    .set((eb) => ({ updated_at: eb.ref('updated_at') }))
    .where('id', '=', id)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function updatePolicy(db: DbOrTx, id: string, change: { name?: string; description?: string; fields: { id: string; name: string; value: string }[] }, now: number): Promise<void> {
  await db
    .updateTable('workload_policies')
    .set({ updated_at: now, ...(change.name !== undefined ? { name: change.name } : {}), ...(change.description !== undefined ? { description: change.description } : {}) })
    .where('id', '=', id)
    .execute();
  for (const f of change.fields) {
    const res = await db.updateTable('workload_policy_fields').set({ value: f.value, updated_at: now }).where('policy_id', '=', id).where('field_name', '=', f.name).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) {
      await db.insertInto('workload_policy_fields').values({ id: f.id, policy_id: id, field_name: f.name, value: f.value, created_at: now, updated_at: null }).execute();
    }
  }
}

/** Removes the policy with its fields and project assignments. */
export async function deletePolicy(db: DbOrTx, id: string): Promise<void> {
  await db.deleteFrom('workload_policy_assignments').where('policy_id', '=', id).execute();
  await db.deleteFrom('workload_policy_fields').where('policy_id', '=', id).execute();
  await db.deleteFrom('workload_policies').where('id', '=', id).execute();
}

/** Adds assignments; pairs that already exist are left as they are. */
export async function addAssignments(db: DbOrTx, policyId: string, projects: { id: string; assignmentId: string; name: string }[], now: number): Promise<void> {
  for (const p of projects) {
    const exists = await db.selectFrom('workload_policy_assignments').select('id').where('policy_id', '=', policyId).where('project_id', '=', p.id).executeTakeFirst();
    if (exists) continue;
    await db.insertInto('workload_policy_assignments').values({ id: p.assignmentId, policy_id: policyId, project_id: p.id, project_name: p.name, created_at: now }).execute();
  }
}

export async function removeAssignments(db: DbOrTx, policyId: string, projectIds: string[]): Promise<void> {
  if (projectIds.length === 0) return;
  await db.deleteFrom('workload_policy_assignments').where('policy_id', '=', policyId).where('project_id', 'in', projectIds).execute();
}

export async function isAssigned(db: DbOrTx, policyId: string, projectId: string): Promise<boolean> {
  const r = await db.selectFrom('workload_policy_assignments').select('id').where('policy_id', '=', policyId).where('project_id', '=', projectId).executeTakeFirst();
  return r !== undefined;
}

/** Assignments of one project, with the policy names; oldest first. */
export async function assignmentsOfProject(db: DbOrTx, projectId: string): Promise<PolicyAssignment[]> {
  const rows = await db
    .selectFrom('workload_policy_assignments as a')
    .innerJoin('workload_policies as p', 'p.id', 'a.policy_id')
    .select(['a.id', 'a.policy_id', 'a.project_id', 'a.project_name', 'a.created_at', 'p.name as policy_name'])
    .where('a.project_id', '=', projectId)
    .orderBy('a.created_at')
    .orderBy('a.policy_id')
    .execute();
  return rows;
}

/**
 * Live workloads whose metadata names this policy (optionally only in one project). The LIKE
 * narrows the scan on both dialects; the JSON is then checked exactly.
 */
export async function workloadsUsingPolicy(db: DbOrTx, policyId: string, projectId?: string): Promise<{ id: string; project_id: string }[]> {
  const id = policyId.toLowerCase();
  let q = db
    .selectFrom('workloads')
    .select(['id', 'project_id', 'metadata'])
    .where('deleted', '=', 0)
    .where(sql<string>`lower(metadata)`, 'like', `%${id}%`);
  if (projectId !== undefined) q = q.where('project_id', '=', projectId);
  const rows = await q.execute();
  return rows
    .filter((r) => {
      const m = JSON.parse(r.metadata) as Record<string, unknown>;
      return typeof m.policy_id === 'string' && m.policy_id.toLowerCase() === id;
    })
    .map((r) => ({ id: r.id, project_id: r.project_id }));
}
