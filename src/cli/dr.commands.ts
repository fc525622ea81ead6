import type { Command } from 'commander';
import { addCommand, addFormatOptions, boolText, collect, handler, query, type ClientIo } from './command.kit.js';
import { usageError } from './exit-codes.js';
import { formatList, type Column } from './table.format.js';

/**
 * Disaster-recovery commands (workloadmgr-api §4.12, §7.1; admin): workload-get-importworkloads-list,
 * workload-importworkloads, workload-get-orphaned-workloads-list, workload-reassign-workloads.
 * Tables list one row per workload with what happened to it; `-f json` prints the rows too.
 */

type Obj = Record<string, unknown>;

const WORKLOAD_COLUMNS: Column<Obj>[] = [
  { header: 'ID', get: (w) => w.id },
  { header: 'Name', get: (w) => w.name },
  { header: 'Project ID', get: (w) => w.project_id },
  { header: 'User ID', get: (w) => w.user_id },
  { header: 'Status', get: (w) => w.status },
];

/** Rows of an import/reassign answer: done ones with `Result: done`, failed ones with their reason. */
function resultRows(done: Obj[], failed: Obj[], doneText: string): Obj[] {
  return [...done.map((w) => ({ ...w, result: doneText })), ...failed.map((f) => ({ id: f.id, name: f.name ?? '', result: f.reason }))];
}

export function registerDrCommands(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'workload-get-importworkloads-list', 'List the workloads on the backup target this installation does not have (admin).').option(
      '--project_id <project_id>',
      'only workloads of this project',
    ),
  ).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ workloads?: Obj[] }>('GET', `/workloads/get_list/import_workloads${query({ project_id: c.opts.project_id as string | undefined })}`);
      c.print(formatList(r.workloads ?? [], WORKLOAD_COLUMNS, c.output()));
    }),
  );

  addFormatOptions(
    addCommand(program, io, 'workload-importworkloads', 'Import workloads and their snapshots from the backup target (admin); all when no id is given.').option(
      '--workloadids <workload_id>',
      'a workload to import (repeatable)',
      collect,
      [] as string[],
    ),
  ).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ workloads: { imported_workloads?: Obj[]; failed_workloads?: Obj[]; skipped_snapshots?: Obj[] } }>('POST', '/workloads/import_workloads', {
        workload_ids: c.opts.workloadids,
      });
      const w = r.workloads;
      for (const s of w.skipped_snapshots ?? []) c.io.stderr.write(`WARNING: snapshot ${String(s.snapshot_id)} was not imported: ${String(s.reason)}\n`);
      c.print(formatList(resultRows(w.imported_workloads ?? [], w.failed_workloads ?? [], 'imported'), [...WORKLOAD_COLUMNS, { header: 'Result', get: (x) => x.result }], c.output()));
    }),
  );

  addFormatOptions(
    addCommand(program, io, 'workload-get-orphaned-workloads-list', 'List workloads whose project or user no longer exists (admin).')
      .option('--migrate_cloud [bool]', 'accepted for compatibility (the identity source is always this cloud\'s)')
      .option('--generate_yaml [bool]', 'accepted for compatibility; not supported'),
  ).action(
    handler(io, async (c) => {
      if (c.opts.generate_yaml !== undefined && boolText(c.opts.generate_yaml, '--generate_yaml')) throw usageError('--generate_yaml True is not supported; use -f json');
      const r = await (await c.session()).request<{ workloads?: Obj[] }>('GET', '/workloads/orphan_workloads/');
      c.print(formatList(r.workloads ?? [], [...WORKLOAD_COLUMNS, { header: 'Reason', get: (w) => w.orphan_reason }], c.output()));
    }),
  );

  addFormatOptions(
    addCommand(program, io, 'workload-reassign-workloads', 'Move workloads with their snapshots to another project and user (admin).')
      .option('--workload_ids <workload_id>', 'a workload to move (repeatable)', collect, [] as string[])
      .option('--old_tenant_ids <project_id>', 'move every workload of this project (repeatable)', collect, [] as string[])
      .option('--new_tenant_id <project_id>', 'the project to move to')
      .option('--user_id <user_id>', 'the new owner (must have a role on the new project)')
      .option('--migrate_cloud [bool]', 'accepted for compatibility'),
  ).action(
    handler(io, async (c) => {
      const o = c.opts;
      if (typeof o.new_tenant_id !== 'string' || typeof o.user_id !== 'string') throw usageError('workload-reassign-workloads needs --new_tenant_id and --user_id');
      const body = [
        {
          workload_ids: o.workload_ids,
          old_tenant_ids: o.old_tenant_ids,
          new_tenant_id: o.new_tenant_id,
          user_id: o.user_id,
          migrate_cloud: o.migrate_cloud !== undefined && boolText(o.migrate_cloud, '--migrate_cloud'),
        },
      ];
      const r = await (await c.session()).request<{ workloads: { reassigned_workloads?: Obj[]; failed_workloads?: Obj[] } }>('POST', '/workloads/reasign_workloads', body);
      c.print(formatList(resultRows(r.workloads.reassigned_workloads ?? [], r.workloads.failed_workloads ?? [], 'reassigned'), [...WORKLOAD_COLUMNS, { header: 'Result', get: (x) => x.result }], c.output()));
    }),
  );
}
