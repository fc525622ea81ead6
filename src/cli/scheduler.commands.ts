import type { Command } from 'commander';
import { addCommand, addFormatOptions, handler, seg, type ClientIo } from './command.kit.js';
import { formatShow } from './table.format.js';

/**
 * Scheduler commands (workloadmgr-api §4.5, §4.1.9, §7.1): the global job scheduler
 * (get/enable/disable-global-job-scheduler, admin for changes) and one workload's schedule
 * (workload-pause, workload-resume).
 */
export function registerSchedulerCommands(program: Command, io: ClientIo): void {
  const globalCommand = (name: string, what: string, method: 'GET' | 'POST', path: string) =>
    addFormatOptions(addCommand(program, io, name, what)).action(
      handler(io, async (c) => {
        const r = await (await c.session()).request<{ global_job_scheduler: boolean }>(method, path);
        c.print(formatShow({ global_job_scheduler: r.global_job_scheduler }, c.output()));
      }),
    );
  globalCommand('get-global-job-scheduler', 'Show whether the global job scheduler runs.', 'GET', '/global_job_scheduler');
  globalCommand('enable-global-job-scheduler', 'Enable the global job scheduler (admin).', 'POST', '/global_job_scheduler/enable');
  globalCommand('disable-global-job-scheduler', 'Disable the global job scheduler (admin): no scheduled snapshot runs.', 'POST', '/global_job_scheduler/disable');

  for (const [name, verb, what] of [
    ['workload-pause', 'pause', 'Stop the scheduled snapshots of a workload.'],
    ['workload-resume', 'resume', 'Start the scheduled snapshots of a workload again.'],
  ] as const) {
    addCommand(program, io, name, what)
      .argument('<workload_id>', 'workload id')
      .action(
        handler(io, async (c) => {
          await (await c.session()).request('POST', `/workloads/${seg(c.args[0]!)}/${verb}`);
        }),
      );
  }
}
