import type { Command } from 'commander';
import { addCommand, addFormatOptions, handler, seg, type ClientIo } from './command.kit.js';
import { usageError } from './exit-codes.js';
import { formatList, formatShow, type Column } from './table.format.js';

/**
 * Project quota commands (workloadmgr-api §4.7, §7.4): project-quota-type-list/-show,
 * project-allowed-quota-create/-list/-show/-update/-delete. `-f json` of the type list has
 * `ID` and `Name` (tempest reads them).
 */

type Obj = Record<string, unknown>;

const QUOTA_COLUMNS: Column<Obj>[] = [
  { header: 'ID', get: (q) => q.id },
  { header: 'Project ID', get: (q) => q.project_id },
  { header: 'Quota Type ID', get: (q) => q.quota_type_id },
  { header: 'Quota Type Name', get: (q) => q.quota_type_name },
  { header: 'Allowed Value', get: (q) => q.allowed_value },
  { header: 'High Watermark', get: (q) => q.high_watermark },
];

/** A non-negative integer option value (the API takes numbers). */
function count(v: unknown, flag: string): number {
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw usageError(`${flag} expects a whole number >= 0, got '${String(v)}'`);
  return n;
}

function required(v: unknown, flag: string): string {
  if (typeof v !== 'string' || v === '') throw usageError(`${flag} is required`);
  return v;
}

export function registerQuotaCommands(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'project-quota-type-list', 'List project quota types.')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ quota_types?: Obj[] }>('GET', '/project_quota_types');
      const cols: Column<Obj>[] = [
        { header: 'ID', get: (t) => t.id },
        { header: 'Name', get: (t) => t.display_name },
        { header: 'Description', get: (t) => t.display_description },
      ];
      c.print(formatList(r.quota_types ?? [], cols, c.output()));
    }),
  );

  addFormatOptions(addCommand(program, io, 'project-quota-type-show', 'Show a project quota type.').argument('<quota_type_id>', 'quota type id')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ quota_type: Obj }>('GET', `/project_quota_types/${seg(c.args[0]!)}`);
      c.print(formatShow(r.quota_type, c.output()));
    }),
  );

  addFormatOptions(
    addCommand(program, io, 'project-allowed-quota-create', 'Set an allowed quota for a project (admin).')
      .option('--quota-type-id <id>', 'quota type')
      .option('--allowed-value <n>', 'hard limit')
      .option('--high-watermark <n>', 'warning threshold')
      .option('--project-id <project_id>', 'project'),
  ).action(
    handler(io, async (c) => {
      const project = required(c.opts.projectId, '--project-id');
      const q = {
        quota_type_id: required(c.opts.quotaTypeId, '--quota-type-id'),
        project_id: project,
        allowed_value: count(c.opts.allowedValue, '--allowed-value'),
        high_watermark: count(c.opts.highWatermark, '--high-watermark'),
      };
      const r = await (await c.session()).request<{ allowed_quotas?: Obj[] }>('POST', `/project_allowed_quotas/${seg(project)}`, { allowed_quotas: [q] });
      c.print(formatList(r.allowed_quotas ?? [], QUOTA_COLUMNS, c.output()));
    }),
  );

  addFormatOptions(addCommand(program, io, 'project-allowed-quota-list', 'List the allowed quotas of a project.').argument('<project_id>', 'project id')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ allowed_quotas?: Obj[] }>('GET', `/project_allowed_quotas/${seg(c.args[0]!)}`);
      c.print(formatList(r.allowed_quotas ?? [], QUOTA_COLUMNS, c.output()));
    }),
  );

  addFormatOptions(addCommand(program, io, 'project-allowed-quota-show', 'Show an allowed quota.').argument('<quota_id>', 'allowed quota id')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ allowed_quotas: Obj }>('GET', `/project_allowed_quota/${seg(c.args[0]!)}`);
      c.print(formatShow(r.allowed_quotas, c.output()));
    }),
  );

  addFormatOptions(
    addCommand(program, io, 'project-allowed-quota-update', 'Change an allowed quota (admin).')
      .argument('<quota_id>', 'allowed quota id')
      .option('--allowed-value <n>', 'hard limit')
      .option('--high-watermark <n>', 'warning threshold')
      .option('--project-id <project_id>', 'project'),
  ).action(
    handler(io, async (c) => {
      const q: Obj = { project_id: required(c.opts.projectId, '--project-id') };
      if (c.opts.allowedValue !== undefined) q.allowed_value = count(c.opts.allowedValue, '--allowed-value');
      if (c.opts.highWatermark !== undefined) q.high_watermark = count(c.opts.highWatermark, '--high-watermark');
      const r = await (await c.session()).request<{ allowed_quotas?: Obj[] }>('PUT', `/update_allowed_quota/${seg(c.args[0]!)}`, { allowed_quotas: q });
      c.print(formatList(r.allowed_quotas ?? [], QUOTA_COLUMNS, c.output()));
    }),
  );

  addCommand(program, io, 'project-allowed-quota-delete', 'Delete an allowed quota (admin).')
    .argument('<quota_id>', 'allowed quota id')
    .action(
      handler(io, async (c) => {
        await (await c.session()).request('DELETE', `/project_allowed_quotas/${seg(c.args[0]!)}`);
      }),
    );
}
