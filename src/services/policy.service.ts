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
import { RETENTION_TYPES, parseInterval } from '../domain/jobschedule.js';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid, newId } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import { optionalText, requireObject, stringMap } from './input.js';

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

const FIELD_LIST = `[${POLICY_FIELDS.map((f) => `'${f}'`).join(', ')}]`;

/**
 * Validates one policy field and returns its canonical string. Integers are normalized the way
 * the jobschedule parser does ("08" → "8"), so a workload's schedule equals the policy's values.
 */
export function policyFieldValue(name: PolicyFieldName, v: unknown): string {
  const asText = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : undefined;
  switch (name) {
    case 'interval':
      return parseInterval(v);
    case 'retention_policy_type':
      if (asText === undefined || !(RETENTION_TYPES as readonly string[]).includes(asText)) {
        throw new ValidationError(`Invalid retention_policy_type: expected one of ${RETENTION_TYPES.map((x) => `"${x}"`).join(', ')}`);
      }
      return asText;
    case 'retention_policy_value':
      if (asText === undefined || !/^\d+$/.test(asText) || Number(asText) < 1 || Number(asText) > 1_000_000) {
        throw new ValidationError(`Invalid retention_policy_value: expected an integer ≥ 1, got ${JSON.stringify(v)}`);
      }
      return String(Number(asText));
    case 'fullbackup_interval':
      if (asText === undefined || !/^-?\d+$/.test(asText) || Number(asText) < -1 || Number(asText) > 999) {
        throw new ValidationError(`Invalid fullbackup_interval: expected an integer from -1 to 999, got ${JSON.stringify(v)}`);
      }
      return String(Number(asText));
  }
}

/** `{"field": value}` → validated values; `all` requires the four fields. */
function parseFieldValues(v: unknown, all: boolean): Partial<PolicyScheduleFields> {
  if (v === undefined || v === null) {
    if (all) throw new ValidationError(`Please provide all of ${FIELD_LIST} as part of policy fields`);
    return {};
  }
  const o = requireObject(v, 'field_values');
  const out: Partial<PolicyScheduleFields> = {};
  for (const k of Object.keys(o)) {
    if (!(POLICY_FIELDS as readonly string[]).includes(k)) throw new ValidationError(`Please provide only ${FIELD_LIST} as part of policy fields`);
    out[k as PolicyFieldName] = policyFieldValue(k as PolicyFieldName, o[k]);
  }
  if (all && POLICY_FIELDS.some((f) => out[f] === undefined)) throw new ValidationError(`Please provide all of ${FIELD_LIST} as part of policy fields`);
  return out;
}

/** A project id as Keystone writes them (32 hex, or a UUID with dashes); anything else is refused. */
const PROJECT_ID_RE = /^[0-9a-zA-Z_-]{1,64}$/;

/** `["a", "b"]`, or the bare string tempest's cleanup sends. */
function projectList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  const items = typeof v === 'string' ? (v.trim() === '' ? [] : [v.trim()]) : v;
  if (!Array.isArray(items)) throw new ValidationError(`Invalid ${field}: expected a list of project ids`);
  if (items.length > 1000) throw new ValidationError(`Invalid ${field}: more than 1000 projects`);
  const out: string[] = [];
  for (const it of items) {
    if (typeof it !== 'string' || it.trim() === '') throw new ValidationError(`Invalid ${field}: expected a list of project ids`);
    if (!out.includes(it.trim())) out.push(it.trim());
  }
  return out;
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

  async create(ctx: RequestContext, body: Record<string, unknown>): Promise<WorkloadPolicy> {
    const name = optionalText(body.display_name ?? body.name, 'display_name');
    if (name === undefined || name.trim() === '') throw new ValidationError('Please provide policy name.');
    const d = optionalText(body.display_description ?? body.description, 'display_description');
    const description = d === undefined || d.trim() === '' ? 'No description' : d;
    const fields = parseFieldValues(body.field_values, true) as PolicyScheduleFields;
    const metadata = stringMap(body.metadata, 'metadata');
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
  async update(ctx: RequestContext, id: string, body: Record<string, unknown>): Promise<WorkloadPolicy> {
    const p = await this.get(ctx, id, true);
    const name = optionalText(body.display_name ?? body.name, 'display_name');
    const description = optionalText(body.display_description ?? body.description, 'display_description');
    const fields = parseFieldValues(body.field_values, false);
    await inTransaction(this.deps.db, async (tx) => {
      if (!(await lockPolicy(tx, p.id))) throw NotFoundError.of('Policy', id);
      if ((await workloadsUsingPolicy(tx, p.id)).length > 0) throw new ValidationError(`Can not update policy: ${p.id}. It's assigned to workloads.`);
      await updatePolicy(
        tx,
        p.id,
        {
          ...(name !== undefined && name.trim() !== '' ? { name } : {}),
          ...(description !== undefined && description.trim() !== '' ? { description } : {}),
          fields: Object.entries(fields).map(([n, value]) => ({ id: newId(), name: n, value })),
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
   * removing a project whose workloads use the policy is refused (400), as is an empty request.
   */
  async assign(ctx: RequestContext, id: string, body: Record<string, unknown>): Promise<AssignResult> {
    const p = await this.get(ctx, id, true);
    const add = projectList(body.add_projects, 'add_projects');
    const remove = projectList(body.remove_projects, 'remove_projects');
    if (add.length === 0 && remove.length === 0) throw new ValidationError("Please provide tenant_id's to assign/remove policy.");
    const both = add.filter((x) => remove.includes(x));
    if (both.length > 0) throw new ValidationError(`Cannot assign and remove the same project: ${both.join(', ')}`);
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
