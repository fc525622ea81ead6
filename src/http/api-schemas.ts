/**
 * Query and body schemas of the routes, by `METHOD /route/template` (the template as Fastify
 * registers it, /v1 routes with their `/v1/:tenant_id` prefix). openapi.ts attaches them to
 * the routes at registration, Fastify validates every request with them (Ajv, no coercion,
 * no defaults, nothing removed), and /openapi.json is generated from the same route schemas,
 * so the document cannot drift from what the server checks.
 *
 * The command parsers (*.commands.ts) stay the judges of values (UUIDs, lengths, dates, the
 * legacy messages tests grep for): a schema here types what the parser requires to be of one
 * type and leaves untyped (description only) what the parser accepts in several forms (e.g.
 * `enabled` as a boolean or "True"). Unknown keys are allowed, as the legacy service ignored them.
 */
type Schema = Record<string, unknown>;

export interface RouteSchemaEntry {
  summary?: string;
  querystring?: Schema;
  body?: Schema;
  /** The body may be absent (no body, or an empty one). */
  bodyOptional?: boolean;
}

const V1 = '/v1/:tenant_id';
// Fields are nullable: the parsers take null as "not given" (tempest and clients send nulls).
const text = (description: string): Schema => ({ type: 'string', nullable: true, description });
const any = (description: string): Schema => ({ description });
const obj = (properties: Record<string, Schema>, description?: string): Schema => ({ type: 'object', nullable: true, properties, ...(description ? { description } : {}) });
/** `{"<key>": {...}}`, the legacy envelope of every body (`optional`: `{}` and no body are accepted too). */
const wrapped = (key: string, properties: Record<string, Schema>, description?: string, optional = false): Schema => ({
  type: 'object',
  ...(optional ? {} : { required: [key] }),
  properties: { [key]: obj(properties, description) },
});

/** A query parameter: a string, or a list when repeated (the last one counts). */
const q = (description: string): Schema => ({ anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }], description });
const query = (params: Record<string, string>): Schema => ({ type: 'object', properties: Object.fromEntries(Object.entries(params).map(([k, d]) => [k, q(d)])) });

const JOBSCHEDULE = obj(
  {
    enabled: any('boolean, or "True"/"False"/"1"/"0"'),
    start_date: text('MM/DD/YYYY (also MM/DD/YY, YYYY-MM-DD)'),
    start_time: text('HH:MM AM/PM (also HH:MM:SS)'),
    end_date: text('MM/DD/YYYY or "No End"'),
    interval: text('e.g. "24hr", "1 hrs"'),
    retention_policy_type: text('"Number of Snapshots to Keep" or "Number of days to retain Snapshots"'),
    retention_policy_value: any('number or numeric string'),
    fullbackup_interval: any('number or numeric string; -1: never, 0: always'),
    timezone: text('e.g. UTC'),
  },
  'Schedule (workloadmgr-api §2.3); missing keys keep their value (modify) or default (create)',
);
const INSTANCES: Schema = { type: 'array', nullable: true, items: obj({ 'instance-id': text('VM UUID') }), description: 'The VMs of the workload' };
const METADATA = obj({}, 'string → string');
const WORKLOAD_FIELDS = { name: text('name'), description: text('description'), instances: INSTANCES, jobschedule: JOBSCHEDULE, metadata: METADATA };

/** Paging of a list (Nova's words and checks); none given: the whole list. */
const PAGE = { limit: 'at most this many (a whole number; 0: no limit); a full page carries a `next` link', marker: 'start after the item with this id', offset: 'skip this many (after the marker)' };
const SNAPSHOT_LIST = query({ ...PAGE, workload_id: 'only this workload', host: 'only taken on this node', status: 'only in this status', date_from: 'YYYY-MM-DDTHH:MM:SS (UTC)', date_to: 'YYYY-MM-DDTHH:MM:SS (UTC)', all: 'admin: every project', get_instances: 'include the instances' });
const RESTORE = wrapped('restore', { name: text('name'), description: text('description'), options: obj({}, 'Restore options (workloadmgr-api §4.3.1): type, oneclickrestore, restore_type, openstack.instances, networks_mapping') });
const POLICY_FIELDS = obj({}, 'interval, retention_policy_type, retention_policy_value, fullbackup_interval');
const POLICY_BODY = { display_name: text('name'), display_description: text('description'), field_values: POLICY_FIELDS, metadata: METADATA };
const SETTINGS: Schema = {
  type: 'object',
  required: ['settings'],
  properties: { settings: { type: 'array', nullable: true, items: obj({ name: text('setting name'), value: any('string, number or boolean'), description: text('description'), category: text('category'), type: text('type'), is_public: any('boolean'), is_hidden: any('boolean'), metadata: obj({}) }) } },
};
const QUOTAS: Schema = {
  type: 'object',
  required: ['allowed_quotas'],
  properties: { allowed_quotas: { type: 'array', nullable: true, items: obj({ quota_type_id: text('quota type UUID'), allowed_value: any('number'), high_watermark: any('number'), project_id: text('project id') }) } },
};
const AUDIT = query({ time_in_minutes: 'the last N minutes (default 1440)', start_range: 'MM-DD-YYYY, first day (UTC) included', end_range: 'MM-DD-YYYY, last day (UTC) included' });

export const ROUTE_SCHEMAS: Readonly<Record<string, RouteSchemaEntry>> = {
  [`GET ${V1}/workloads`]: { querystring: query({ ...PAGE, all_workloads: 'admin: every project', project_id: 'admin: this project' }) },
  [`GET ${V1}/workloads/detail`]: { querystring: query({ ...PAGE, all_workloads: 'admin: every project', project_id: 'admin: this project' }) },
  [`POST ${V1}/workloads`]: {
    summary: 'Create a workload',
    body: wrapped('workload', {
      ...WORKLOAD_FIELDS,
      workload_type_id: text('workload type UUID (default Serial)'),
      source_platform: text('default openstack'),
      encryption: any('boolean (or "True"/"False"): snapshots sealed under the workload\'s own data key'),
      secret_uuid: text('Barbican secret UUID (with encryption): on OpenStack its 256-bit payload wraps the data key; elsewhere recorded'),
    }),
  },
  [`PUT ${V1}/workloads/:id`]: { summary: 'Modify a workload', body: wrapped('workload', WORKLOAD_FIELDS) },
  [`POST ${V1}/workloads/:wid`]: {
    summary: 'Take a snapshot',
    querystring: query({ full: '1/true: a full snapshot' }),
    body: wrapped('snapshot', { name: text('name'), description: text('description'), snapshot_type: text('"full" or "incremental" (overrides ?full)'), is_scheduled: any('boolean') }, undefined, true),
    bodyOptional: true,
  },
  [`GET ${V1}/snapshots`]: { querystring: SNAPSHOT_LIST },
  [`GET ${V1}/snapshots/detail`]: { querystring: SNAPSHOT_LIST },
  [`GET ${V1}/workloads/:wid/snapshots`]: { querystring: SNAPSHOT_LIST },
  [`GET ${V1}/workloads/:wid/snapshots/detail`]: { querystring: SNAPSHOT_LIST },
  [`POST ${V1}/workloads/:wid/snapshots/:sid/restores`]: { summary: 'Restore a snapshot', body: RESTORE },
  [`POST ${V1}/workloads/:wid/snapshots/:sid`]: { summary: 'Restore a snapshot (legacy path)', body: RESTORE },
  [`POST ${V1}/snapshots/:sid`]: { summary: 'Restore a snapshot (legacy path)', body: RESTORE },
  [`GET ${V1}/restores`]: { querystring: query({ ...PAGE, snapshot_id: 'only restores of this snapshot' }) },
  [`GET ${V1}/restores/detail`]: { querystring: query({ ...PAGE, snapshot_id: 'only restores of this snapshot' }) },
  [`POST ${V1}/workload_policy`]: { summary: 'Create a workload policy', body: wrapped('workload_policy', POLICY_BODY) },
  [`PUT ${V1}/workload_policy/:id`]: { summary: 'Update a workload policy', body: wrapped('policy', POLICY_BODY) },
  [`POST ${V1}/workload_policy/:id/assign`]: { summary: 'Assign a policy to projects', body: wrapped('policy', { add_projects: any('project ids: a list, or one id as a string'), remove_projects: any('project ids: a list, or one id as a string') }) },
  [`POST ${V1}/project_allowed_quotas/:id`]: { summary: "Set a project's quotas", body: QUOTAS },
  [`PUT ${V1}/update_allowed_quota/:id`]: { summary: 'Update one quota', body: wrapped('allowed_quotas', { allowed_value: any('number'), high_watermark: any('number'), project_id: text('project id'), quota_type_id: text('quota type UUID') }) },
  [`POST ${V1}/settings`]: { summary: 'Create or replace settings', body: SETTINGS },
  [`PUT ${V1}/settings`]: { summary: 'Update settings', body: SETTINGS },
  [`GET ${V1}/settings`]: { querystring: query({ get_hidden: 'include hidden settings' }) },
  [`GET ${V1}/workloads/audit/auditlog`]: { summary: 'Audit log (admin)', querystring: AUDIT },
  [`POST ${V1}/repo_verifications`]: {
    summary: 'Start a repo verify of a backup target (admin; a durable job)',
    body: wrapped(
      'repo_verification',
      { target: text('backup target name (default: the default target)'), read_data_subset: any('percentage of the packs whose data is read, e.g. "10%" (default: all)'), mark_bad: { type: 'boolean', nullable: true, description: 'mark bad copies so the next backup stores them again (default true)' } },
      undefined,
      true,
    ),
    bodyOptional: true,
  },
  [`GET ${V1}/repo_verifications`]: { summary: 'Recent repo verify runs, newest first (admin)', querystring: query({ limit: '1..100 (default 20)', target: 'only this backup target' }) },
  [`GET ${V1}/repo_verifications/:id`]: { summary: 'One repo verify run (admin)' },
};
