import type { Command } from 'commander';
import { addCommand, addFormatOptions, addWaitOptions, awaitOperation, handler, query, seg, type ClientIo, type Ctx } from './command.kit.js';
import { usageError } from './exit-codes.js';
import { operationFailure } from './progress.view.js';
import { parseLiteral } from './py-literal.parser.js';
import { formatList, formatShow, type OutputOptions } from './table.format.js';

/**
 * Restore commands (workloadmgr-api §7.3): snapshot-oneclick-restore, snapshot-selective-restore,
 * snapshot-inplace-restore (each with --wait), restore-list, restore-show, restore-delete,
 * restore-cancel. Requests follow §4.3.1: POST /workloads/{wid}/snapshots/{sid}/restores with
 * `{"restore": {"name", "description", "options": {...}}}`; the workload id is looked up from
 * the snapshot, as the workloadmgr client did.
 */

type Obj = Record<string, unknown>;
type RestoreKind = 'oneclick' | 'selective' | 'inplace';

/**
 * The options object of a `--filename` file: JSON or a Python dict literal (tempest writes
 * `str(dict)`), either the options themselves or wrapped in `{"restore": {"options": ...}}` /
 * `{"options": ...}`.
 */
export function readRestoreOptions(text: string, file: string): Obj {
  let v: unknown;
  try {
    v = parseLiteral(text);
  } catch (e) {
    throw usageError(`Cannot parse ${file} as JSON or a Python dict: ${e instanceof Error ? e.message : String(e)}`);
  }
  const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (isObj(v) && isObj(v.restore)) v = v.restore;
  if (isObj(v) && isObj(v.options) && !('openstack' in v)) v = v.options;
  if (!isObj(v)) throw usageError(`${file} must hold a dict of restore options`);
  return v;
}

/** The request body; the command decides restore_type, the flags win over the file's name/description. */
export function restoreBody(kind: RestoreKind, name: string | undefined, description: string | undefined, fileOptions: Obj = {}): Obj {
  const options: Obj = { ...fileOptions };
  options.type ??= 'openstack';
  options.restore_type = kind;
  options.oneclickrestore = kind === 'oneclick';
  if (kind === 'oneclick') {
    options.openstack ??= { instances: [], zone: '' };
    options.vmware ??= {};
    options.restore_options ??= {};
  }
  const n = name ?? (typeof options.name === 'string' ? options.name : undefined);
  const d = description ?? (typeof options.description === 'string' ? options.description : undefined);
  if (n !== undefined) options.name = n;
  if (d !== undefined) options.description = d;
  const restore: Obj = { options };
  if (n !== undefined) restore.name = n;
  if (d !== undefined) restore.description = d;
  return { restore };
}

/** Restore detail for tables: the embedded snapshot record is left to `-f json`. */
function restoreForShow(o: Obj, out: OutputOptions): Obj {
  if (out.format === 'json') return o;
  const { snapshot_details: _sd, ...rest } = o;
  return rest;
}

async function startRestore(c: Ctx, kind: RestoreKind): Promise<void> {
  const sid = c.args[0]!;
  let fileOptions: Obj = {};
  if (kind !== 'oneclick') {
    const file = c.opts.filename as string;
    let text: string;
    try {
      text = c.io.readFile(file);
    } catch (e) {
      throw usageError(`Cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
    fileOptions = readRestoreOptions(text, file);
  }
  const body = restoreBody(kind, c.opts.displayName as string | undefined, c.opts.displayDescription as string | undefined, fileOptions);
  const s = await c.session();
  const snap = (await s.request<{ snapshot: Obj }>('GET', `/snapshots/${seg(sid)}`)).snapshot;
  const wid = String(snap.workload_id);
  const r = await s.request<{ restore: Obj }>('POST', `/workloads/${seg(wid)}/snapshots/${seg(sid)}/restores`, body);
  const out = c.output();
  if (!c.opts.wait) {
    c.print(formatShow(restoreForShow(r.restore, out), out));
    return;
  }
  const id = String(r.restore.id);
  const final = await awaitOperation(c, 'Restore', id, `/restores/${seg(id)}`, 'restore');
  c.print(formatShow(restoreForShow(final, out), out));
  const failed = operationFailure('Restore', final);
  if (failed) throw failed;
}

export function registerRestoreCommands(program: Command, io: ClientIo): void {
  addFormatOptions(
    addWaitOptions(
      addCommand(program, io, 'snapshot-oneclick-restore', 'Restore every VM of a snapshot as new VMs.')
        .argument('<snapshot_id>', 'snapshot id')
        .requiredOption('--display-name <name>', 'restore name')
        .option('--display-description <description>', 'restore description'),
    ),
  ).action(handler(io, (c) => startRestore(c, 'oneclick')));

  addFormatOptions(
    addWaitOptions(
      addCommand(program, io, 'snapshot-selective-restore', 'Restore chosen VMs/disks of a snapshot with the options in a file.')
        .argument('<snapshot_id>', 'snapshot id')
        .requiredOption('--display-name <name>', 'restore name')
        .option('--display-description <description>', 'restore description')
        .requiredOption('--filename <file>', 'restore options (JSON or Python dict): {"openstack": {"instances": [...], "networks_mapping": {...}}, ...}'),
    ),
  ).action(handler(io, (c) => startRestore(c, 'selective')));

  addFormatOptions(
    addWaitOptions(
      addCommand(program, io, 'snapshot-inplace-restore', "Overwrite the original VMs' disks from a snapshot with the options in a file.")
        .argument('<snapshot_id>', 'snapshot id')
        .requiredOption('--display-name <name>', 'restore name')
        .option('--display-description <description>', 'restore description')
        .requiredOption('--filename <file>', "restore options (JSON or Python dict): {'openstack': {'instances': [...]}, 'restore_type': 'inplace', 'type': 'openstack'}"),
    ),
  ).action(handler(io, (c) => startRestore(c, 'inplace')));

  addFormatOptions(addCommand(program, io, 'restore-list', 'List restores.').option('--snapshot_id <snapshot_id>', 'only restores of this snapshot')).action(
    handler(io, async (c) => {
      const s = await c.session();
      const r = await s.request<{ restores?: Obj[] }>('GET', `/restores${query({ snapshot_id: c.opts.snapshot_id as string | undefined })}`);
      c.print(
        formatList(
          r.restores ?? [],
          [
            { header: 'ID', get: (x) => x.id },
            { header: 'Name', get: (x) => x.name },
            { header: 'Snapshot ID', get: (x) => x.snapshot_id },
            { header: 'Workload ID', get: (x) => x.workload_id },
            { header: 'Type', get: (x) => ((x.restore_options as Obj | undefined)?.restore_type as string | undefined) ?? x.restore_type },
            { header: 'Status', get: (x) => x.status },
            { header: 'Created At', get: (x) => x.created_at ?? '' },
          ],
          c.output(),
        ),
      );
    }),
  );

  addFormatOptions(addCommand(program, io, 'restore-show', 'Show details of a restore.').argument('<restore_id>', 'restore id')).action(
    handler(io, async (c) => {
      const s = await c.session();
      const r = await s.request<{ restore: Obj }>('GET', `/restores/${seg(c.args[0]!)}`);
      c.print(formatShow(restoreForShow(r.restore, c.output()), c.output()));
    }),
  );

  addCommand(program, io, 'restore-delete', 'Delete a restore record (restored VMs stay).')
    .argument('<restore_id>', 'restore id')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('DELETE', `/restores/${seg(c.args[0]!)}`);
      }),
    );

  addCommand(program, io, 'restore-cancel', 'Cancel a running restore.')
    .argument('<restore_id>', 'restore id')
    .action(
      handler(io, async (c) => {
        const s = await c.session();
        await s.request('GET', `/restores/${seg(c.args[0]!)}/cancel`);
      }),
    );
}
