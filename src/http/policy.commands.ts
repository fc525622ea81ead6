import { ValidationError } from '../lib/errors.js';
import { RETENTION_TYPES, parseInterval } from '../domain/jobschedule.js';
import {
  POLICY_FIELDS,
  type AssignPolicyCommand,
  type CreatePolicyCommand,
  type PolicyFieldName,
  type PolicyScheduleFields,
  type UpdatePolicyCommand,
} from '../services/policy.service.js';
import { optionalText, requireObject, stringMap } from './fields.js';
import { unwrap } from './query.js';

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
function fieldValues(v: unknown, all: boolean): Partial<PolicyScheduleFields> {
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

/** `{"workload_policy": {...}}` of POST /workload_policy → the create command (§4.6). */
export function parseCreatePolicy(body: unknown): CreatePolicyCommand {
  const b = unwrap(body, 'workload_policy');
  const name = optionalText(b.display_name ?? b.name, 'display_name');
  if (name === undefined || name.trim() === '') throw new ValidationError('Please provide policy name.');
  const d = optionalText(b.display_description ?? b.description, 'display_description');
  return {
    name,
    description: d === undefined || d.trim() === '' ? 'No description' : d,
    fields: fieldValues(b.field_values, true) as PolicyScheduleFields,
    metadata: stringMap(b.metadata, 'metadata'),
  };
}

/** `{"policy": {...}}` of PUT /workload_policy/{id}: name, description, any subset of the fields; blanks change nothing. */
export function parseUpdatePolicy(body: unknown): UpdatePolicyCommand {
  const b = unwrap(body, 'policy');
  const name = optionalText(b.display_name ?? b.name, 'display_name');
  const description = optionalText(b.display_description ?? b.description, 'display_description');
  return {
    ...(name !== undefined && name.trim() !== '' ? { name } : {}),
    ...(description !== undefined && description.trim() !== '' ? { description } : {}),
    fields: fieldValues(b.field_values, false),
  };
}

/** `{"policy": {"add_projects": [...], "remove_projects": [...]}}` of POST /workload_policy/{id}/assign. */
export function parseAssignPolicy(body: unknown): AssignPolicyCommand {
  const b = unwrap(body, 'policy');
  const addProjects = projectList(b.add_projects, 'add_projects');
  const removeProjects = projectList(b.remove_projects, 'remove_projects');
  if (addProjects.length === 0 && removeProjects.length === 0) throw new ValidationError("Please provide tenant_id's to assign/remove policy.");
  const both = addProjects.filter((x) => removeProjects.includes(x));
  if (both.length > 0) throw new ValidationError(`Cannot assign and remove the same project: ${both.join(', ')}`);
  return { addProjects, removeProjects };
}
