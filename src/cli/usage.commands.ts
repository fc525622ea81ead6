import type { Command } from 'commander';
import { addCommand, addFormatOptions, handler, query, type ClientIo } from './command.kit.js';
import { formatList, formatShow } from './table.format.js';

/**
 * Admin usage and audit commands (workloadmgr-api §4.11): workload-get-storage-usage,
 * workload-get-tenants-usage (also the 5.x name get-tenants-usage), workload-get-auditlog
 * (`--time_in_minutes N`, or `--start_range MM-DD-YYYY [--end_range MM-DD-YYYY]`).
 */

type Obj = Record<string, unknown>;

export function registerUsageCommands(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'workload-get-storage-usage', 'Show the capacity and use of every backup target (admin).')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ storage_usage?: Obj[] }>('GET', '/workloads/metrics/storage_usage');
      const columns = ['storage_type', 'total_capacity_humanized', 'total_utilization_humanized', 'available_capacity_humanized', 'total_utilization_percent', 'full', 'incremental'];
      c.print(formatList(r.storage_usage ?? [], columns.map((k) => ({ header: k, get: (u: Obj) => u[k] })), c.output()));
    }),
  );

  for (const name of ['workload-get-tenants-usage', 'get-tenants-usage']) {
    addFormatOptions(addCommand(program, io, name, 'Show protected VMs and used capacity per project (admin).')).action(
      handler(io, async (c) => {
        const r = await (await c.session()).request<{ global_usage?: Obj; tenants_usage?: Obj }>('GET', '/workloads/metrics/tenants_usage');
        c.print(formatShow({ global_usage: r.global_usage ?? {}, tenants_usage: r.tenants_usage ?? {} }, c.output()));
      }),
    );
  }

  addFormatOptions(
    addCommand(program, io, 'workload-get-auditlog', 'Show the audit log (admin).')
      .option('--time_in_minutes <n>', 'the last N minutes')
      .option('--start_range <date>', 'first day, MM-DD-YYYY')
      .option('--end_range <date>', 'last day, MM-DD-YYYY'),
  ).action(
    handler(io, async (c) => {
      const o = c.opts as { time_in_minutes?: string; start_range?: string; end_range?: string };
      const noRange = o.time_in_minutes === undefined && o.start_range === undefined && o.end_range === undefined;
      const q = query({ time_in_minutes: noRange ? '1440' : o.time_in_minutes, start_range: o.start_range, end_range: o.end_range });
      const r = await (await c.session()).request<{ auditlog?: Obj[] }>('GET', `/workloads/audit/auditlog${q}`);
      const columns = ['Timestamp', 'UserName', 'ObjectName', 'ObjectId', 'Details', 'ProjectName'];
      c.print(formatList(r.auditlog ?? [], columns.map((k) => ({ header: k, get: (e: Obj) => e[k] })), c.output()));
    }),
  );
}
