import type { Command } from 'commander';
import { addCommand, addFormatOptions, boolText, handler, seg, type ClientIo } from './command.kit.js';
import { formatList, formatShow } from './table.format.js';

/**
 * Trust commands (workloadmgr-api §2.10, §4.9, tempest F22): trust-create `<role_name>`
 * (`--is_cloud_trust True|False`), trust-list, trust-show `<name>`, trust-delete `<name>`.
 * A trust is a hidden identity setting backed by a Keystone trust to Lifeboat's service user.
 */

type Obj = Record<string, unknown>;

/** The role a trust delegates: its metadata record `role_name` (a list of {key, value} on the wire). */
function roleOf(t: Obj): unknown {
  const md = t.metadata;
  return Array.isArray(md) ? (md as { key?: unknown; value?: unknown }[]).find((m) => m.key === 'role_name')?.value : undefined;
}

const TRUST_COLUMNS = [
  { header: 'TrustID', get: (t: Obj) => t.name },
  { header: 'Value', get: (t: Obj) => t.value },
  { header: 'Role', get: roleOf },
  { header: 'Project ID', get: (t: Obj) => t.project_id },
];

export function registerTrustCommands(program: Command, io: ClientIo): void {
  addFormatOptions(
    addCommand(program, io, 'trust-create', 'Delegate a role on your project to Lifeboat (a Keystone trust), for scheduled and long backups.')
      .argument('<role_name>', 'Keystone role to delegate, e.g. member')
      .option('--is_cloud_trust <bool>', 'a cloud-wide trust (True/False)', 'False'),
  ).action(
    handler(io, async (c) => {
      const body = { trusts: { role_name: c.args[0], is_cloud_trust: boolText(c.opts.is_cloud_trust, '--is_cloud_trust') } };
      const r = await (await c.session()).request<{ trust?: Obj[] }>('POST', '/trusts', body);
      c.print(formatList(r.trust ?? [], TRUST_COLUMNS, c.output()));
    }),
  );

  addFormatOptions(addCommand(program, io, 'trust-list', 'List the trusts of your project.')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ trust?: Obj[] }>('GET', '/trusts');
      c.print(formatList(r.trust ?? [], TRUST_COLUMNS, c.output()));
    }),
  );

  addFormatOptions(addCommand(program, io, 'trust-show', 'Show a trust.').argument('<name>', 'trust name (trust-<uuid>)')).action(
    handler(io, async (c) => {
      const r = await (await c.session()).request<{ trust: Obj }>('GET', `/trusts/${seg(c.args[0]!)}`);
      c.print(formatShow(r.trust, c.output()));
    }),
  );

  addCommand(program, io, 'trust-delete', 'Delete a trust (and its Keystone trust).')
    .argument('<name>', 'trust name (trust-<uuid>)')
    .action(
      handler(io, async (c) => {
        await (await c.session()).request('DELETE', `/trusts/${seg(c.args[0]!)}`);
      }),
    );
}
