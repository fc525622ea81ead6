import type { Command } from 'commander';
import { addCommand, addFormatOptions, addWaitOptions, awaitOperation, boolText, handler, query, seg, type ClientIo } from './command.kit.js';
import { usageError } from './exit-codes.js';
import { operationFailure } from './progress.view.js';
import { formatList, formatShow, type OutputOptions } from './table.format.js';

/**
 * Snapshot commands (workloadmgr-api §7.2): workload-snapshot [--wait], snapshot-list,
 * snapshot-show [--output], snapshot-delete, snapshot-cancel. Bodies follow §4.2.
 */

type Obj = Record<string, unknown>;

/**
 * A snapshot detail for the Property/Value table: `metadata` (a long record list) is left to
 * `--output metadata` and `instances` shrinks to id/name/status (full detail under
 * `--output instances`). `-f json` keeps the whole object.
 */
export function snapshotForShow(o: Obj, out: OutputOptions): Obj {
  if (out.format === 'json') return o;
  const { metadata: _m, instances, ...rest } = o;
  const list = Array.isArray(instances) ? (instances as Obj[]).map((i) => ({ id: i.id, name: i.name, status: i.status })) : instances;
  return { ...rest, instances: list };
}

const OUTPUTS = ['metadata', 'instances', 'disks', 'networks'] as const;

function registerWorkloadSnapshot(program: Command, io: ClientIo): void {
  addFormatOptions(
    addWaitOptions(
      addCommand(program, io, 'workload-snapshot', 'Take a snapshot of a workload (incremental unless --full).')
        .argument('<workload_id>', 'workload id')
        .option('--full', 'take a full snapshot')
        .option('--display-name <name>', 'snapshot name')
        .option('--display-description <description>', 'snapshot description'),
    ),
  ).action(
    handler(io, async (c) => {
      const body: Obj = {};
      if (typeof c.opts.displayName === 'string') body.name = c.opts.displayName;
      if (typeof c.opts.displayDescription === 'string') body.description = c.opts.displayDescription;
      const s = await c.session();
      const r = await s.request<{ snapshot: Obj }>('POST', `/workloads/${seg(c.args[0]!)}${c.opts.full ? '?full=1' : ''}`, { snapshot: body });
      if (!c.opts.wait) {
        c.print(formatShow(r.snapshot, c.output()));
        return;
      }
      const id = String(r.snapshot.id);
      const final = await awaitOperation(c, 'Snapshot', id, `/snapshots/${seg(id)}`, 'snapshot');
      c.print(formatShow(snapshotForShow(final, c.output()), c.output()));
      const failed = operationFailure('Snapshot', final);
      if (failed) throw failed;
    }),
  );
}

function registerSnapshotList(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'snapshot-list', 'List snapshots (oldest first).')
      .option('--workload_id <workload_id>', 'only snapshots of this workload')
      .option('--host <host>', 'only snapshots taken by this node')
      .option('--tvault_node <host>', 'alias of --host')
      .option('--date_from <YYYY-MM-DDTHH:MM:SS>', 'created at or after (UTC)')
      .option('--date_to <YYYY-MM-DDTHH:MM:SS>', 'created at or before (UTC)')
      .option('--status <status>', 'only this status (available also matches mounted)')
      .option('--all [bool]', 'admin: snapshots of all projects'),
  ).action(
    handler(io, async (c) => {
      const o = c.opts;
      const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
      const q = query({
        workload_id: str(o.workload_id),
        host: str(o.host) ?? str(o.tvault_node),
        date_from: str(o.date_from),
        date_to: str(o.date_to),
        status: str(o.status),
        ...(o.all !== undefined && boolText(o.all, '--all') ? { all: 'True' } : {}),
      });
      const s = await c.session();
      const r = await s.request<{ snapshots?: Obj[] }>('GET', `/snapshots${q}`);
      c.print(
        formatList(
          r.snapshots ?? [],
          [
            { header: 'Created At', get: (x) => x.created_at },
            { header: 'Name', get: (x) => x.name },
            { header: 'ID', get: (x) => x.id },
            { header: 'Workload ID', get: (x) => x.workload_id },
            { header: 'Snapshot Type', get: (x) => x.snapshot_type },
            { header: 'Status', get: (x) => x.status },
            { header: 'Host', get: (x) => x.host },
          ],
          c.output(),
        ),
      );
    }),
  );
}

function registerSnapshotShow(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'snapshot-show', 'Show details of a snapshot.')
      .argument('<snapshot_id>', 'snapshot id')
      .option('--output <what>', `show instead: ${OUTPUTS.join(' | ')}`),
  ).action(
    handler(io, async (c) => {
      const what = c.opts.output as string | undefined;
      if (what !== undefined && !(OUTPUTS as readonly string[]).includes(what)) throw usageError(`--output must be one of ${OUTPUTS.join(', ')}, got '${what}'`);
      const s = await c.session();
      const snap = (await s.request<{ snapshot: Obj }>('GET', `/snapshots/${seg(c.args[0]!)}`)).snapshot;
      const out = c.output();
      const instances = Array.isArray(snap.instances) ? (snap.instances as Obj[]) : [];
      switch (what) {
        case 'metadata':
          c.print(
            formatList(
              Array.isArray(snap.metadata) ? (snap.metadata as Obj[]) : [],
              [
                { header: 'Key', get: (m) => m.key },
                { header: 'Value', get: (m) => m.value },
              ],
              out,
            ),
          );
          return;
        case 'instances':
          c.print(
            formatList(
              instances,
              [
                { header: 'ID', get: (i) => i.id },
                { header: 'Name', get: (i) => i.name },
                { header: 'Status', get: (i) => i.status },
                { header: 'Flavor', get: (i) => i.flavor },
                { header: 'Disks', get: (i) => (Array.isArray(i.vdisks) ? i.vdisks.length : 0) },
              ],
              out,
            ),
          );
          return;
        case 'disks':
          c.print(
            formatList(
              instances.flatMap((i) => (Array.isArray(i.vdisks) ? (i.vdisks as Obj[]) : []).map((d): Obj => ({ ...d, vm_id: d.vm_id ?? i.id }))),
              [
                { header: 'VM ID', get: (d) => d.vm_id },
                { header: 'Device', get: (d) => d.volume_mountpoint ?? d.label },
                { header: 'Volume ID', get: (d) => d.volume_id ?? null },
                { header: 'Image ID', get: (d) => d.image_id ?? null },
                { header: 'Restore Size', get: (d) => d.restore_size },
              ],
              out,
            ),
          );
          return;
        case 'networks':
          c.print(
            formatList(
              instances.flatMap((i) => (Array.isArray(i.nics) ? (i.nics as Obj[]) : []).map((n): Obj => ({ ...n, vm_id: i.id }))),
              [
                { header: 'VM ID', get: (n) => n.vm_id },
                { header: 'MAC Address', get: (n) => n.mac_address },
                { header: 'IP Address', get: (n) => n.ip_address },
                { header: 'Network', get: (n) => (n.network as Obj | undefined)?.name },
                { header: 'Subnet CIDR', get: (n) => ((n.network as Obj | undefined)?.subnet as Obj | undefined)?.cidr },
              ],
              out,
            ),
          );
          return;
        default:
          c.print(formatShow(snapshotForShow(snap, out), out));
      }
    }),
  );
}

function registerSnapshotDelete(program: Command, io: ClientIo): void {
  addCommand(program, io, 'snapshot-delete', 'Delete a snapshot (asynchronous).')
    .argument('<snapshot_id>', 'snapshot id')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('DELETE', `/snapshots/${seg(c.args[0]!)}`);
      }),
    );
}

function registerSnapshotCancel(program: Command, io: ClientIo): void {
  addCommand(program, io, 'snapshot-cancel', 'Cancel a running snapshot.')
    .argument('<snapshot_id>', 'snapshot id')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('GET', `/snapshots/${seg(c.args[0]!)}/cancel`);
      }),
    );
}

export function registerSnapshotCommands(program: Command, io: ClientIo): void {
  registerWorkloadSnapshot(program, io);
  registerSnapshotList(program, io);
  registerSnapshotShow(program, io);
  registerSnapshotDelete(program, io);
  registerSnapshotCancel(program, io);
}
