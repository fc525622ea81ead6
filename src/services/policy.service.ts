import { inTransaction, type Db, type DbOrTx } from '../store/db.js';
import {
  addAssignments,
  assignmentsOfProject,
  deletePolicy,
  getPolicy,
  insertPolicy,
  isAssigned,
  listPolicies,
  lockPolicy,
  removeAssignments,
  updatePolicy,
  workloadsUsingPolicy,
  type PolicyAssignment,
  type WorkloadPolicy,
} from '../store/policy.store.js';
import type { Clock } from '../lib/clock.js';
import type { RequestContext } from '../domain/context.js';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid, newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';

export type { WorkloadPolicy, PolicyAssignment } from '../store/policy.store.js';

/** The four schedule fields a policy carries, in the order the legacy server listed them. */
export const POLICY_FIELDS = ['interval', 'retention_policy_type', 'retention_policy_value', 'fullbackup_interval'] as const;
export type PolicyFieldName = (typeof POLICY_FIELDS)[number];
/** The values a workload's jobschedule takes from its policy; strings, as on the wire. */
export type PolicyScheduleFields = Record<PolicyFieldName, string>;

/** Who a project id names; null when the directory does not know the project. */
export interface ProjectDirectory {
  projectName(projectId: string): Promise<string | null>;
}

export interface PolicyServiceDeps {
  db: Db;
  clock: Clock;
  /** Resolves project names and rejects unknown projects; absent: any well-formed id is taken. */
  projects?: ProjectDirectory;
}

/** A project id as Keystone writes them (32 hex, or a UUID with dashes); anything else is refused. */
const PROJECT_ID_RE = /^[0-9a-zA-Z_-]{1,64}$/;

/** A new policy, checked for shape by http/ (policy.commands.ts). */
export interface CreatePolicyCommand {
  name: string;
  description: string;
  fields: PolicyScheduleFields;
  metadata: Record<string, string>;
}

/** A policy change: name and description when present, and any subset of the fields. */
export interface UpdatePolicyCommand {
  name?: string;
  description?: string;
  fields: Partial<PolicyScheduleFields>;
}

/** Projects to assign and to unassign (at least one, none in both lists). */
export interface AssignPolicyCommand {
  addProjects: string[];
  removeProjects: string[];
}

function scheduleFieldsOf(p: WorkloadPolicy): PolicyScheduleFields {
  const get = (n: PolicyFieldName) => p.fields.find((f) => f.field_name === n)?.value ?? '';
  return { interval: get('interval'), retention_policy_type: get('retention_policy_type'), retention_policy_value: get('retention_policy_value'), fullbackup_interval: get('fullbackup_interval') };
}

/**
 * For workload create/modify with `metadata.policy_id`: the policy must exist and be assigned
 * to the workload's project (400 otherwise — an unusable id in a body is bad input, and a
 * policy of another project answers exactly like a missing one). Returns the canonical id and
 * the four field values to write into the workload's jobschedule. Call it inside the
 * transaction that writes the workload: it locks the policy row, so a concurrent policy
 * update/delete waits and then sees the workload as a user of the policy.
 */
export async function policyScheduleFields(db: DbOrTx, projectId: string, policyId: string): Promise<{ policy_id: string } & PolicyScheduleFields> {
  const bad = new ValidationError(`Invalid policy_id: policy ${policyId} is not available to this project`);
  if (!isUuid(policyId)) throw bad;
  const id = policyId.toLowerCase();
  if (!(await lockPolicy(db, id))) throw bad;
  if (!(await isAssigned(db, id, projectId))) throw bad;
  const p = await getPolicy(db, id);
  if (!p) throw bad;
  return { policy_id: id, ...scheduleFieldsOf(p) };
}

/**
 * Workload create: `metadata.policy_id` given → its fields (see policyScheduleFields); not given
 * while the project has policies assigned → 400 "Please provide policy id from available
 * policies: [...]" (legacy behaviour); otherwise null (the schedule is the request's own).
 */
export async function workloadPolicyOnCreate(db: DbOrTx, projectId: string, metadata: Record<string, string>): Promise<({ policy_id: string } & PolicyScheduleFields) | null> {
  const given = metadata.policy_id;
  if (given !== undefined && given.trim() !== '') return policyScheduleFields(db, projectId, given.trim());
  const available = await assignmentsOfProject(db, projectId);
  if (available.length > 0) {
    throw new ValidationError(`Please provide policy id from available policies: [${available.map((a) => `'${a.policy_id}'`).join(', ')}]`);
  }
  return null;
}

/**
 * Workload modify: null when the body's metadata does not name a policy (no change, or
 * `policy_id: ""` to detach); else the fields to write into the jobschedule.
 */
export async function workloadPolicyOnModify(db: DbOrTx, projectId: string, metadata: Record<string, string> | undefined): Promise<({ policy_id: string } & PolicyScheduleFields) | null> {
  const given = metadata?.policy_id;
  if (given === undefined || given.trim() === '') return null;
  return policyScheduleFields(db, projectId, given.trim());
}

export interface AssignResult {
  policy: WorkloadPolicy;
  failedIds: string[];
}

/**
 * Workload policy use cases. Who may do what is decided by the routes (policy rules); this
 * service only gets `seeAll` for reads: managers see every policy, a project only the policies
 * assigned to it (another policy answers like a missing one).
 */
export class PolicyService {
  constructor(private readonly deps: PolicyServiceDeps) {}

  private now(): number {
    return toSecond(this.deps.clock.now());
  }

  async list(ctx: RequestContext, seeAll: boolean): Promise<WorkloadPolicy[]> {
    return listPolicies(this.deps.db, seeAll ? {} : { assignedTo: ctx.projectId });
  }

  async get(ctx: RequestContext, id: string, seeAll: boolean): Promise<WorkloadPolicy> {
    const p = isUuid(id) ? await getPolicy(this.deps.db, id.toLowerCase()) : null;
    if (!p || (!seeAll && !p.assignments.some((a) => a.project_id === ctx.projectId))) throw NotFoundError.of('Policy', id);
    return p;
  }

  async create(ctx: RequestContext, cmd: CreatePolicyCommand): Promise<WorkloadPolicy> {
    const { name, description, fields, metadata } = cmd;
    const id = newId();
    await insertPolicy(this.deps.db, {
      id,
      project_id: ctx.projectId,
      user_id: ctx.userId,
      name,
      description,
      metadata,
      fields: POLICY_FIELDS.map((f) => ({ id: newId(), name: f, value: fields[f] })),
      now: this.now(),
    });
    return (await getPolicy(this.deps.db, id))!;
  }

  /** Changes name, description and any subset of the fields; refused while workloads use it. */
  async update(ctx: RequestContext, id: string, cmd: UpdatePolicyCommand): Promise<WorkloadPolicy> {
    const p = await this.get(ctx, id, true);
    await inTransaction(this.deps.db, async (tx) => {
      if (!(await lockPolicy(tx, p.id))) throw NotFoundError.of('Policy', id);
      if ((await workloadsUsingPolicy(tx, p.id)).length > 0) throw new ValidationError(`Can not update policy: ${p.id}. It's assigned to workloads.`);
      await updatePolicy(
        tx,
        p.id,
        {
          ...(cmd.name !== undefined ? { name: cmd.name } : {}),
          ...(cmd.description !== undefined ? { description: cmd.description } : {}),
          fields: Object.entries(cmd.fields).map(([n, value]) => ({ id: newId(), name: n, value })),
        },
        this.now(),
      );
    });
    return (await getPolicy(this.deps.db, p.id))!;
  }

  async delete(ctx: RequestContext, id: string): Promise<void> {
    const p = await this.get(ctx, id, true);
    await inTransaction(this.deps.db, async (tx) => {
      if (!(await lockPolicy(tx, p.id))) throw NotFoundError.of('Policy', id);
      if ((await workloadsUsingPolicy(tx, p.id)).length > 0) throw new ValidationError(`Can not delete policy: ${p.id}. It's assigned to workloads.`);
      await deletePolicy(tx, p.id);
    });
  }

  /**
   * Assigns/unassigns projects. Unknown projects (per the directory) come back in `failedIds`;
   * removing a project whose workloads use the policy is refused (400).
   */
  async assign(ctx: RequestContext, id: string, cmd: AssignPolicyCommand): Promise<AssignResult> {
    const p = await this.get(ctx, id, true);
    const { addProjects: add, removeProjects: remove } = cmd;
    const failedIds: string[] = [];
    const toAdd: { id: string; assignmentId: string; name: string }[] = [];
    for (const pid of add) {
      if (!PROJECT_ID_RE.test(pid)) {
        failedIds.push(pid);
        continue;
      }
      const name = this.deps.projects ? await this.deps.projects.projectName(pid) : '';
      if (name === null) failedIds.push(pid);
      else toAdd.push({ id: pid, assignmentId: newId(), name });
    }
    await inTransaction(this.deps.db, async (tx) => {
      if (!(await lockPolicy(tx, p.id))) throw NotFoundError.of('Policy', id);
      for (const pid of remove) {
        if ((await workloadsUsingPolicy(tx, p.id, pid)).length > 0) {
          throw new ValidationError(`Can not remove policy: ${p.id} from project ${pid}. It's assigned to workloads.`);
        }
      }
      await removeAssignments(tx, p.id, remove);
      await addAssignments(tx, p.id, toAdd, this.now());
    });
    return { policy: (await getPolicy(this.deps.db, p.id))!, failedIds };
  }

  /** Policies assigned to a project (the route checks the caller may look at that project). */
  async assignedTo(projectId: string): Promise<PolicyAssignment[]> {
    return assignmentsOfProject(this.deps.db, projectId);
  }
}
