import type { Command } from 'commander';
import { addCommand, addFormatOptions, handler, seg, type ClientIo } from './command.kit.js';
import { formatList } from './table.format.js';

/**
 * File-level recovery commands (workloadmgr-api §7.2): snapshot-mount, snapshot-dismount,
 * snapshot-mounted-list. Bodies follow §4.2.7–4.2.9.
 */

type Obj = Record<string, unknown>;

export function registerFileRecoveryCommands(program: Command, io: ClientIo): void {
  addCommand(program, io, 'snapshot-mount', 'Mount a snapshot read-only (Lifeboat mounts it on its own host; mount_vm_id is recorded).')
    .argument('<snapshot_id>', 'snapshot id')
    .argument('<mount_vm_id>', 'instance id of the recovery VM')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('POST', `/snapshots/${seg(c.args[0]!)}/mount`, { mount: { mount_vm_id: c.args[1]!, options: {} } });
      }),
    );

  addCommand(program, io, 'snapshot-dismount', 'Dismount a mounted snapshot.')
    .argument('<snapshot_id>', 'snapshot id')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('POST', `/snapshots/${seg(c.args[0]!)}/dismount`);
      }),
    );

  addFormatOptions(
    addCommand(program, io, 'snapshot-mounted-list', 'List mounted snapshots.').option('--workloadid <workload_id>', 'only snapshots of this workload'),
  ).action(
    handler(io, async (c) => {
      const wid = typeof c.opts.workloadid === 'string' ? c.opts.workloadid : undefined;
      const s = await c.session();
      const r = await s.request<{ mounted_snapshots?: Obj[] }>('GET', wid ? `/workloads/${seg(wid)}/snapshots/mounted/list` : '/snapshots/mounted/list');
      c.print(
        formatList(
          r.mounted_snapshots ?? [],
          [
            { header: 'Snapshot ID', get: (x) => x.snapshot_id },
            { header: 'Snapshot Name', get: (x) => x.snapshot_name },
            { header: 'Workload ID', get: (x) => x.workload_id },
            { header: 'Mount URL', get: (x) => x.mounturl },
            { header: 'Status', get: (x) => x.status },
          ],
          c.output(),
        ),
      );
    }),
  );
}

/** filepath-search: starts a search (§4.4.1) and, unless --no-wait, polls it to the end and prints json_resp. */
export function registerFileSearchCommand(program: Command, io: ClientIo): void {
  addCommand(program, io, 'filepath-search', 'Search a file path (glob) in the snapshots of a VM.')
    .argument('<vm_id>', 'VM id')
    .argument('<filepath>', 'absolute path; * and ? allowed')
    .option('--snapshotids <snapshot_id>', 'search only these snapshots (repeat or comma-separate)', (v: string, prev: string[] = []) => [...prev, ...v.split(',')], [] as string[])
    .option('--start <n>', 'skip the n newest snapshots', '0')
    .option('--end <n>', 'search at most n snapshots', '0')
    .option('--date_from <YYYY-MM-DDTHH:MM:SS>', 'created at or after (UTC)', '')
    .option('--date_to <YYYY-MM-DDTHH:MM:SS>', 'created at or before (UTC)', '')
    .option('--no-wait', 'print the search record at once instead of waiting for the result')
    .action(
      handler(io, async (c) => {
        const o = c.opts;
        const s = await c.session();
        const body = { file_search: { vm_id: c.args[0]!, filepath: c.args[1]!, snapshot_ids: o.snapshotids, start: Number(o.start), end: Number(o.end), date_from: o.date_from, date_to: o.date_to } };
        let r = (await s.request<{ file_search: Obj }>('POST', '/search', body)).file_search;
        while (o.wait !== false && (r.status === 'executing' || r.status === 'searching' || r.status === 'cancelling')) {
          await new Promise((res) => setTimeout(res, 2000));
          r = (await s.request<{ file_search: Obj }>('GET', `/search/${seg(String(r.id))}`)).file_search;
        }
        c.print(o.wait === false ? JSON.stringify(r) : String(r.json_resp ?? JSON.stringify(r)));
        if (r.status === 'error') throw new Error(String(r.error_msg));
      }),
    );
}
