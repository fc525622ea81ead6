import { ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import { DEFAULT_DESCRIPTION, DEFAULT_WORKLOAD_NAME, DEFAULT_WORKLOAD_TYPE_ID, WORKLOAD_TYPES } from '../domain/workload.js';
import { parseJobScheduleChanges } from '../domain/jobschedule.js';
import type { CreateWorkloadCommand, ModifyWorkloadCommand } from '../services/workload.service.js';
import { instanceIdList, optionalText, stringMap, textOrDefault } from './fields.js';
import { unwrap } from './query.js';

/** `{"workload": {...}}` of POST /workloads → the create command (workloadmgr-api §4.1.3). */
export function parseCreateWorkload(body: unknown): CreateWorkloadCommand {
  const b = unwrap(body, 'workload');
  const name = textOrDefault(b.name, 'name', DEFAULT_WORKLOAD_NAME);
  const description = textOrDefault(b.description, 'description', DEFAULT_DESCRIPTION);
  const typeId = b.workload_type_id === undefined || b.workload_type_id === null || b.workload_type_id === '' ? DEFAULT_WORKLOAD_TYPE_ID : b.workload_type_id;
  const type = WORKLOAD_TYPES.find((t) => t.id === typeId);
  if (!type) throw new ValidationError('Invalid workload type');
  const sourcePlatform = textOrDefault(b.source_platform, 'source_platform', 'openstack');
  if (b.instances === undefined) throw new ValidationError('Invalid instances: the instances list is required');
  return {
    name,
    description,
    workloadTypeId: type.id,
    sourcePlatform,
    instanceIds: instanceIdList(b.instances),
    jobschedule: parseJobScheduleChanges(b.jobschedule),
    metadata: stringMap(b.metadata, 'metadata'),
    ...backupTargetChoice(b.backup_target_types),
    ...encryptionChoice(b.encryption, b.secret_uuid),
  };
}

/**
 * workloadmgr 5.x `encryption` (a boolean; the CLI's "True"/"False" strings too) and
 * `secret_uuid` (the Barbican secret's UUID, only with encryption: on OpenStack the KEK, checked by
 * the workload service; elsewhere recorded). Anything else → 400.
 */
function encryptionChoice(enc: unknown, secret: unknown): { encryption?: boolean; secretUuid?: string } {
  let encryption = false;
  if (typeof enc === 'boolean') encryption = enc;
  else if (typeof enc === 'string' && /^(true|false)$/i.test(enc)) encryption = enc.toLowerCase() === 'true';
  else if (enc !== undefined && enc !== null) throw new ValidationError('Invalid encryption: expected true or false');
  if (secret === undefined || secret === null || secret === '') return encryption ? { encryption } : {};
  if (typeof secret !== 'string' || !isUuid(secret)) throw new ValidationError('Invalid secret_uuid: expected the UUID of a secret');
  if (!encryption) throw new ValidationError('Invalid secret_uuid: only an encrypted workload (encryption true) takes a secret');
  return { encryption, secretUuid: secret.toLowerCase() };
}

/**
 * workloadmgr 5.x `backup_target_types`: the name of the backup target (type) the workload's
 * snapshots go to; absent, null or '' → the default. Whether the name exists is the service's
 * check (it knows the configured targets).
 */
function backupTargetChoice(v: unknown): { backupTarget?: string } {
  if (v === undefined || v === null || v === '') return {};
  if (typeof v !== 'string') throw new ValidationError('Invalid backup_target_types: expected the name of a backup target type');
  return { backupTarget: v.trim() };
}

/**
 * `{"workload": {...}}` of PUT /workloads/{id} → the modify command: only what the body names
 * changes; a blank name or description is no change (legacy).
 */
export function parseModifyWorkload(body: unknown): ModifyWorkloadCommand {
  const b = unwrap(body, 'workload');
  const name = optionalText(b.name, 'name');
  const description = optionalText(b.description, 'description');
  return {
    ...(name !== undefined && name.trim() !== '' ? { name } : {}),
    ...(description !== undefined && description.trim() !== '' ? { description } : {}),
    jobschedule: parseJobScheduleChanges(b.jobschedule),
    ...(b.metadata !== undefined ? { metadata: stringMap(b.metadata, 'metadata') } : {}),
    ...(b.instances !== undefined ? { instanceIds: instanceIdList(b.instances) } : {}),
  };
}
