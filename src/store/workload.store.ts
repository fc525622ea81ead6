import type { DbOrTx } from './db.js';
import type { PageWindow } from '../domain/page.js';
import { inWindow } from './page.js';
import type { WorkloadsTable } from './schema.js';
import type { JobSchedule, Workload, WorkloadMember, WorkloadStatus } from '../domain/workload.js';

/**
 * Workloads and their member VMs. Every read takes a project scope: `null` only when policy
 * granted admin; another project's workload is simply not found.
 */
export type Scope = { projectId: string } | { admin: true };

function toWorkload(r: WorkloadsTable, members: WorkloadMember[]): Workload {
  return {
    id: r.id,
    project_id: r.project_id,
    user_id: r.user_id,
    name: r.name,
    description: r.description,
    workload_type_id: r.workload_type_id,
    source_platform: r.source_platform,
    status: r.status as WorkloadStatus,
    error_msg: r.error_msg,
    availability_zone: r.availability_zone,
    jobschedule: JSON.parse(r.jobschedule) as JobSchedule,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    force_full: r.force_full === 1,
    backup_target: r.backup_target,
    // Only on encrypted workloads: a plain one reads back exactly as it was written.
    ...(r.encryption === 1 ? { encryption: true, secret_uuid: r.secret_uuid } : {}),
    created_at: r.created_at,
    updated_at: r.updated_at,
    instances: members,
  };
}

export async function insertWorkload(db: DbOrTx, w: Workload): Promise<void> {
  await db
    .insertInto('workloads')
    .values({
      id: w.id,
      project_id: w.project_id,
      user_id: w.user_id,
      name: w.name,
      description: w.description,
      workload_type_id: w.workload_type_id,
      source_platform: w.source_platform,
      status: w.status,
      error_msg: w.error_msg,
      availability_zone: w.availability_zone,
      jobschedule: JSON.stringify(w.jobschedule),
      metadata: JSON.stringify(w.metadata),
      force_full: w.force_full ? 1 : 0,
      backup_target: w.backup_target,
      encryption: w.encryption ? 1 : 0,
      secret_uuid: w.secret_uuid ?? null,
      created_at: w.created_at,
      updated_at: w.updated_at,
      deleted: 0,
      deleted_at: null,
    })
    .execute();
  await replaceMembers(db, w.id, w.project_id, w.instances);
}

/**
 * Replaces the member list. The unique index on instance_id makes a VM that is already in
 * another workload fail the insert (isMemberConflict), so the check cannot race.
 */
export async function replaceMembers(db: DbOrTx, workloadId: string, projectId: string, members: WorkloadMember[]): Promise<void> {
  await db.deleteFrom('workload_instances').where('workload_id', '=', workloadId).execute();
  if (members.length === 0) return;
  await db
    .insertInto('workload_instances')
    .values(
      members.map((m, i) => ({
        workload_id: workloadId,
        instance_id: m.id,
        project_id: projectId,
        name: m.name,
        metadata: JSON.stringify(m.metadata),
        position: i,
      })),
    )
    .execute();
}

/** True for the unique-violation error of workload_instances on SQLite and PostgreSQL. */
export function isMemberConflict(e: unknown): boolean {
  const err = e as { code?: string; message?: string; constraint?: string } | null | undefined;
  // Only this index: a duplicate workload id (also 23505 on PostgreSQL) is not a VM conflict.
  return (
    (err?.code === '23505' && err.constraint === 'workload_instances_instance') ||
    (err?.code === 'SQLITE_CONSTRAINT_UNIQUE' && /workload_instances\.instance_id/.test(err.message ?? ''))
  );
}

/** The workload (if any) that holds each of these instance ids. */
export async function findMemberships(db: DbOrTx, instanceIds: string[]): Promise<Map<string, string>> {
  if (instanceIds.length === 0) return new Map();
  const rows = await db.selectFrom('workload_instances').select(['instance_id', 'workload_id']).where('instance_id', 'in', instanceIds).execute();
  return new Map(rows.map((r) => [r.instance_id, r.workload_id]));
}

async function membersOf(db: DbOrTx, ids: string[]): Promise<Map<string, WorkloadMember[]>> {
  const out = new Map<string, WorkloadMember[]>();
  if (ids.length === 0) return out;
  const rows = await db.selectFrom('workload_instances').selectAll().where('workload_id', 'in', ids).orderBy('workload_id').orderBy('position').execute();
  for (const r of rows) {
    const list = out.get(r.workload_id) ?? [];
    list.push({ id: r.instance_id, name: r.name, metadata: JSON.parse(r.metadata) as Record<string, string> });
    out.set(r.workload_id, list);
  }
  return out;
}

export async function getWorkload(db: DbOrTx, scope: Scope, id: string): Promise<Workload | null> {
  let q = db.selectFrom('workloads').selectAll().where('id', '=', id).where('deleted', '=', 0);
  if ('projectId' in scope) q = q.where('project_id', '=', scope.projectId);
  const r = await q.executeTakeFirst();
  if (!r) return null;
  const m = await membersOf(db, [r.id]);
  return toWorkload(r, m.get(r.id) ?? []);
}

export async function listWorkloads(db: DbOrTx, scope: Scope, filter: { projectId?: string } = {}, w: PageWindow = {}): Promise<Workload[]> {
  let q = db.selectFrom('workloads').selectAll().where('deleted', '=', 0);
  if ('projectId' in scope) q = q.where('project_id', '=', scope.projectId);
  if (filter.projectId) q = q.where('project_id', '=', filter.projectId);
  const rows = await inWindow(q, w, 'desc').execute();
  const m = await membersOf(db, rows.map((r) => r.id));
  return rows.map((r) => toWorkload(r, m.get(r.id) ?? []));
}

export async function countWorkloads(db: DbOrTx, projectId: string): Promise<number> {
  const r = await db.selectFrom('workloads').select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', projectId).where('deleted', '=', 0).executeTakeFirstOrThrow();
  return Number(r.n);
}

/**
 * Conditional state change: moves the workload to `to` only if its status is one of `from`.
 * Returns false when another request got there first (or the workload is gone).
 */
export async function transitionWorkload(
  db: DbOrTx,
  id: string,
  projectScope: Scope,
  from: WorkloadStatus[] | 'any',
  to: WorkloadStatus,
  now: number,
  extra: Partial<Pick<WorkloadsTable, 'error_msg' | 'force_full'>> = {},
): Promise<boolean> {
  let q = db
    .updateTable('workloads')
    .set({ status: to, updated_at: now, ...extra })
    .where('id', '=', id)
    .where('deleted', '=', 0);
  if ('projectId' in projectScope) q = q.where('project_id', '=', projectScope.projectId);
  if (from !== 'any') q = q.where('status', 'in', from);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function updateWorkloadFields(
  db: DbOrTx,
  id: string,
  fields: Partial<{ name: string; description: string; jobschedule: JobSchedule; metadata: Record<string, string>; force_full: boolean }>,
  now: number,
): Promise<void> {
  const set: Partial<WorkloadsTable> = { updated_at: now };
  if (fields.name !== undefined) set.name = fields.name;
  if (fields.description !== undefined) set.description = fields.description;
  if (fields.jobschedule !== undefined) set.jobschedule = JSON.stringify(fields.jobschedule);
  if (fields.metadata !== undefined) set.metadata = JSON.stringify(fields.metadata);
  if (fields.force_full !== undefined) set.force_full = fields.force_full ? 1 : 0;
  await db.updateTable('workloads').set(set).where('id', '=', id).execute();
}

/** Marks the workload deleted and frees its VMs for other workloads. */
export async function markWorkloadDeleted(db: DbOrTx, id: string, now: number): Promise<void> {
  await db.updateTable('workloads').set({ status: 'deleted', deleted: 1, deleted_at: now, updated_at: now }).where('id', '=', id).execute();
  await db.deleteFrom('workload_instances').where('workload_id', '=', id).execute();
}
