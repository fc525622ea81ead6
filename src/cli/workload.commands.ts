import type { Command } from 'commander';
import { addCommand, addFormatOptions, boolText, collect, handler, keyValue, query, seg, type ClientIo } from './command.kit.js';
import { usageError } from './exit-codes.js';
import { formatList, formatShow } from './table.format.js';

/**
 * Workload commands (workloadmgr-api §7.1): workload-list/-create/-show/-modify/-delete/
 * -unlock/-reset, workload-type-list/-show. Bodies follow §4.1; ids are positional and may
 * stand before or after the options.
 */

type Obj = Record<string, unknown>;

/** `--instance instance-id=<uuid>` (also `id=<uuid>` or a bare uuid) → `{"instance-id": uuid}`. */
export function instanceArg(s: string): { 'instance-id': string } {
  const parts = s.split(',').map((p) => p.trim());
  for (const p of parts) {
    if (!p.includes('=')) {
      if (p !== '') return { 'instance-id': p };
      continue;
    }
    const [k, v] = keyValue(p, '--instance');
    if ((k === 'instance-id' || k === 'instance_id' || k === 'id') && v !== '') return { 'instance-id': v };
  }
  throw usageError(`--instance expects instance-id=<instance uuid>, got '${s}'`);
}

function kvObject(items: string[] | undefined, flag: string): Obj | undefined {
  if (!items || items.length === 0) return undefined;
  return Object.fromEntries(items.map((s) => keyValue(s, flag)));
}

/** The `workload` request object shared by create and modify; only what was given. */
function workloadBody(o: Obj): Obj {
  const w: Obj = {};
  if (typeof o.displayName === 'string') w.name = o.displayName;
  if (typeof o.displayDescription === 'string') w.description = o.displayDescription;
  const inst = o.instance as string[] | undefined;
  if (inst && inst.length > 0) w.instances = inst.map(instanceArg);
  const js = kvObject(o.jobschedule as string[] | undefined, '--jobschedule');
  if (js) w.jobschedule = js;
  const md = kvObject(o.metadata as string[] | undefined, '--metadata') ?? {};
  if (typeof o.policyId === 'string') md.policy_id = o.policyId;
  if (Object.keys(md).length > 0) w.metadata = md;
  return w;
}

function addWorkloadFields(cmd: Command): Command {
  return cmd
    .option('--display-name <name>', 'workload name')
    .option('--display-description <description>', 'workload description')
    .option('--instance <instance-id=uuid>', 'a member VM: instance-id=<uuid> (repeatable; on modify the full new list)', collect, [] as string[])
    .option('--jobschedule <key=value>', 'schedule field, e.g. enabled=False, start_time="09:00 PM", interval="24hr" (repeatable)', collect, [] as string[])
    .option('--metadata <key=value>', 'metadata entry (repeatable)', collect, [] as string[])
    .option('--policy-id <policy_id>', 'apply this workload policy (metadata policy_id)');
}

function registerWorkloadList(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'workload-list', 'List workloads of the project.')
      .option('--all [bool]', 'admin: workloads of all projects')
      .option('--project_id <project_id>', 'admin: workloads of this project'),
  ).action(
    handler(io, async (c) => {
      const s = await c.session();
      const q = query({
        ...(c.opts.all !== undefined && boolText(c.opts.all, '--all') ? { all_workloads: 'True' } : {}),
        project_id: c.opts.project_id as string | undefined,
      });
      const r = await s.request<{ workloads?: Obj[] }>('GET', `/workloads${q}`);
      // Type names are a courtesy: without them the id is shown.
      let types = new Map<string, string>();
      try {
        const t = await s.request<{ workload_types?: Obj[] }>('GET', '/workload_types');
        types = new Map((t.workload_types ?? []).map((x) => [String(x.id), String(x.name)]));
      } catch {
        /* keep ids */
      }
      c.print(
        formatList(
          r.workloads ?? [],
          [
            { header: 'ID', get: (w) => w.id },
            { header: 'Name', get: (w) => w.name },
            { header: 'Workload Type', get: (w) => types.get(String(w.workload_type_id)) ?? w.workload_type_id },
            { header: 'Project ID', get: (w) => w.project_id },
            { header: 'Status', get: (w) => w.status },
            { header: 'Created At', get: (w) => w.created_at },
          ],
          c.output(),
        ),
      );
    }),
  );
}

function registerWorkloadCreate(program: Command, io: ClientIo): void {
  addFormatOptions(
    addWorkloadFields(addCommand(program, io, 'workload-create', 'Create a workload (a protected group of VMs).'))
      .option('--workload-type-id <id>', 'workload type (default: Serial)')
      .option('--source-platform <platform>', 'source platform', 'openstack')
      .option('--backup-target-type <name>', 'the backup target its snapshots go to (see backup-target-list; default: the default target)')
      .option('--encryption <bool>', 'encrypt its snapshots under its own key (True/False)')
      .option('--secret-uuid <uuid>', 'Barbican secret of an encrypted workload (recorded)'),
  ).action(
    handler(io, async (c) => {
      const w = workloadBody(c.opts);
      if (!w.instances) throw usageError('workload-create needs at least one --instance instance-id=<uuid>');
      if (typeof c.opts.workloadTypeId === 'string') w.workload_type_id = c.opts.workloadTypeId;
      w.source_platform = c.opts.sourcePlatform;
      if (typeof c.opts.backupTargetType === 'string') w.backup_target_types = c.opts.backupTargetType;
      if (c.opts.encryption !== undefined) w.encryption = boolText(c.opts.encryption, '--encryption');
      if (typeof c.opts.secretUuid === 'string') w.secret_uuid = c.opts.secretUuid;
      w.jobschedule ??= {};
      w.metadata ??= {};
      const s = await c.session();
      const r = await s.request<{ workload: Obj }>('POST', '/workloads', { workload: w });
      c.print(formatShow(r.workload, c.output()));
    }),
  );
}

function registerWorkloadShow(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'workload-show', 'Show details of a workload.').argument('<workload_id>', 'workload id')).action(
    handler(io, async (c) => {
      const s = await c.session();
      const r = await s.request<{ workload: Obj }>('GET', `/workloads/${seg(c.args[0]!)}`);
      c.print(formatShow(r.workload, c.output()));
    }),
  );
}

function registerWorkloadModify(program: Command, io: ClientIo): void {
  addWorkloadFields(addCommand(program, io, 'workload-modify', 'Change name, description, member VMs, schedule or metadata of a workload.'))
    .argument('<workload_id>', 'workload id')
    .action(
      handler(io, async (c) => {
        const w = workloadBody(c.opts);
        if (Object.keys(w).length === 0) throw usageError('Nothing to modify: give --display-name, --display-description, --instance, --jobschedule, --metadata or --policy-id');
        const s = await c.session();
        await s.request('PUT', `/workloads/${seg(c.args[0]!)}`, { workload: w });
      }),
    );
}

function registerWorkloadDelete(program: Command, io: ClientIo): void {
  addCommand(program, io, 'workload-delete', 'Delete a workload (it must have no snapshots).')
    .argument('<workload_id>', 'workload id')
    .option('--database_only [bool]', 'admin: remove only the database records')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        const q = c.opts.database_only !== undefined && boolText(c.opts.database_only, '--database_only') ? '?database_only=True' : '';
        await s.request('DELETE', `/workloads/${seg(c.args[0]!)}${q}`);
      }),
    );
}

function registerWorkloadUnlock(program: Command, io: ClientIo): void {
  addCommand(program, io, 'workload-unlock', 'Force a locked workload back to available.')
    .argument('<workload_id>', 'workload id')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('POST', `/workloads/${seg(c.args[0]!)}/unlock`);
      }),
    );
}

function registerWorkloadReset(program: Command, io: ClientIo): void {
  addCommand(program, io, 'workload-reset', 'Reset a workload (the next snapshot is full).')
    .argument('<workload_id>', 'workload id')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('POST', `/workloads/${seg(c.args[0]!)}/reset`);
      }),
    );
}

function registerWorkloadTypeList(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'workload-type-list', 'List workload types.')).action(
    handler(io, async (c) => {
      const s = await c.session();
      const r = await s.request<{ workload_types?: Obj[] }>('GET', '/workload_types');
      c.print(
        formatList(
          r.workload_types ?? [],
          [
            { header: 'ID', get: (t) => t.id },
            { header: 'Name', get: (t) => t.name },
            { header: 'Description', get: (t) => t.description },
            { header: 'Is Public', get: (t) => t.is_public },
          ],
          c.output(),
        ),
      );
    }),
  );
}

function registerWorkloadTypeShow(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'workload-type-show', 'Show a workload type.').argument('<workload_type_id>', 'workload type id')).action(
    handler(io, async (c) => {
      const s = await c.session();
      const r = await s.request<{ workload_type: Obj }>('GET', `/workload_types/${seg(c.args[0]!)}`);
      c.print(formatShow(r.workload_type, c.output()));
    }),
  );
}

export function registerWorkloadCommands(program: Command, io: ClientIo): void {
  registerWorkloadList(program, io);
  registerWorkloadCreate(program, io);
  registerWorkloadShow(program, io);
  registerWorkloadModify(program, io);
  registerWorkloadDelete(program, io);
  registerWorkloadUnlock(program, io);
  registerWorkloadReset(program, io);
  registerWorkloadTypeList(program, io);
  registerWorkloadTypeShow(program, io);
}
