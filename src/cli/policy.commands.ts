import type { Command } from 'commander';
import { addCommand, addFormatOptions, collect, handler, keyValue, seg, type ClientIo } from './command.kit.js';
import { usageError } from './exit-codes.js';
import { formatList, formatShow } from './table.format.js';

/**
 * Workload policy commands (workloadmgr-api §4.6, §7.4): policy-list/-show/-create/-update/
 * -assign/-delete, list-assigned-policies, policy-field-list. `--policy-fields key=value` is
 * repeatable, as in the workloadmgr client.
 */

type Obj = Record<string, unknown>;

function policyFields(items: string[] | undefined): Obj | undefined {
  if (!items || items.length === 0) return undefined;
  return Object.fromEntries(items.map((s) => keyValue(s, '--policy-fields')));
}

/** field_values as `{name: value}` for tables (the API gives records). */
function forShow(p: Obj): Obj {
  const fv = Array.isArray(p.field_values) ? (p.field_values as Obj[]) : [];
  return { ...p, field_values: Object.fromEntries(fv.map((f) => [String(f.policy_field_name), f.value])) };
}

function registerPolicyList(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'policy-list', 'List workload policies.')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ policy_list?: Obj[] }>('GET', '/workload_policy/');
      c.print(
        formatList(
          r.policy_list ?? [],
          [
            { header: 'ID', get: (p) => p.id },
            { header: 'Name', get: (p) => p.name },
            { header: 'Description', get: (p) => p.description },
            { header: 'Status', get: (p) => p.status },
          ],
          c.output(),
        ),
      );
    }),
  );
}

function registerPolicyShow(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'policy-show', 'Show a workload policy.').argument('<policy_id>', 'policy id')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ policy: Obj }>('GET', `/workload_policy/${seg(c.args[0]!)}`);
      c.print(formatShow(forShow(r.policy), c.output()));
    }),
  );
}

function registerPolicyCreate(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'policy-create', 'Create a workload policy (admin).')
      .argument('<display_name>', 'policy name')
      .option('--display-description <description>', 'policy description')
      .option('--policy-fields <key=value>', 'interval, retention_policy_type, retention_policy_value, fullbackup_interval (repeatable)', collect, [] as string[])
      .option('--metadata <key=value>', 'metadata entry (repeatable)', collect, [] as string[]),
  ).action(
    handler(io, async (c) => {
      const fields = policyFields(c.opts.policyFields as string[]);
      if (!fields) throw usageError('policy-create needs --policy-fields key=value for interval, retention_policy_type, retention_policy_value and fullbackup_interval');
      const metadata = Object.fromEntries((c.opts.metadata as string[]).map((s) => keyValue(s, '--metadata')));
      const body = { workload_policy: { display_name: c.args[0], display_description: c.opts.displayDescription ?? 'No description', field_values: fields, metadata } };
      const r = await (await c.session()).request<{ policy: Obj }>('POST', '/workload_policy/', body);
      c.print(formatShow(forShow(r.policy), c.output()));
    }),
  );
}

function registerPolicyUpdate(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'policy-update', 'Change a workload policy no workload uses (admin).')
      .argument('<policy_id>', 'policy id')
      .option('--display-name <name>', 'new name')
      .option('--display-description <description>', 'new description')
      .option('--policy-fields <key=value>', 'fields to change (repeatable)', collect, [] as string[]),
  ).action(
    handler(io, async (c) => {
      const p: Obj = {};
      if (typeof c.opts.displayName === 'string') p.display_name = c.opts.displayName;
      if (typeof c.opts.displayDescription === 'string') p.display_description = c.opts.displayDescription;
      const fields = policyFields(c.opts.policyFields as string[]);
      if (fields) p.field_values = fields;
      if (Object.keys(p).length === 0) throw usageError('Nothing to update: give --display-name, --display-description or --policy-fields');
      const r = await (await c.session()).request<{ policy: Obj }>('PUT', `/workload_policy/${seg(c.args[0]!)}`, { policy: p });
      c.print(formatShow(forShow(r.policy), c.output()));
    }),
  );
}

function registerPolicyAssign(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'policy-assign', 'Assign a policy to projects, or remove it from them (admin).')
      .argument('<policy_id>', 'policy id')
      .option('--add_project <project_id>', 'project to assign (repeatable)', collect, [] as string[])
      .option('--remove_project <project_id>', 'project to unassign (repeatable)', collect, [] as string[]),
  ).action(
    handler(io, async (c) => {
      const add = c.opts.add_project as string[];
      const remove = c.opts.remove_project as string[];
      if (add.length === 0 && remove.length === 0) throw usageError('policy-assign needs --add_project or --remove_project');
      const r = await (await c.session()).request<{ policy: Obj; failed_ids?: string[] }>('POST', `/workload_policy/${seg(c.args[0]!)}/assign`, { policy: { add_projects: add, remove_projects: remove } });
      c.print(formatShow({ ...forShow(r.policy), failed_ids: r.failed_ids ?? [] }, c.output()));
    }),
  );
}

function registerPolicyDelete(program: Command, io: ClientIo): void {
  addCommand(program, io, 'policy-delete', 'Delete a workload policy no workload uses (admin).')
    .argument('<policy_id>', 'policy id')
    .action(
      handler(io, async (c) => {
        await (await c.session()).request('DELETE', `/workload_policy/${seg(c.args[0]!)}`);
      }),
    );
}

function registerListAssignedPolicies(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'list-assigned-policies', 'List the policies assigned to a project.').argument('<project_id>', 'project id')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ policies?: Obj[] }>('GET', `/workload_policy/assigned/${seg(c.args[0]!)}`);
      c.print(
        formatList(
          r.policies ?? [],
          [
            { header: 'Policy ID', get: (p) => p.policy_id },
            { header: 'Policy Name', get: (p) => p.policy_name },
            { header: 'Project ID', get: (p) => p.project_id },
            { header: 'Project Name', get: (p) => p.project_name },
          ],
          c.output(),
        ),
      );
    }),
  );
}

function registerPolicyFieldList(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'policy-field-list', 'List the fields a policy sets.')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ policy_field_list?: Obj[] }>('GET', '/policy_field/');
      c.print(
        formatList(
          r.policy_field_list ?? [],
          [
            { header: 'ID', get: (f) => f.id },
            { header: 'Name', get: (f) => f.name },
            { header: 'Type', get: (f) => f.type },
          ],
          c.output(),
        ),
      );
    }),
  );
}

export function registerPolicyCommands(program: Command, io: ClientIo): void {
  registerPolicyList(program, io);
  registerPolicyShow(program, io);
  registerPolicyCreate(program, io);
  registerPolicyUpdate(program, io);
  registerPolicyAssign(program, io);
  registerPolicyDelete(program, io);
  registerListAssignedPolicies(program, io);
  registerPolicyFieldList(program, io);
}
