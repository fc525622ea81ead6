import type { Command } from 'commander';
import { addCommand, addFormatOptions, boolText, collect, handler, keyValue, query, seg, type ClientIo, type Ctx } from './command.kit.js';
import { formatList, formatShow } from './table.format.js';

/**
 * Setting commands (workloadmgr-api §4.8, §7.4): setting-create/-update (`<name> <value>` plus
 * --description, --category, --type, --is-public, --is-hidden, --metadata), setting-show,
 * setting-list (--get_hidden), setting-delete.
 */

type Obj = Record<string, unknown>;

function withSettingOptions(cmd: Command): Command {
  return cmd
    .argument('<name>', 'setting name')
    .argument('<value>', 'setting value')
    .option('--description <description>', 'description')
    .option('--category <category>', 'category')
    .option('--type <type>', 'type')
    .option('--is-public [bool]', 'visible to every project (True/False)')
    .option('--is-hidden [bool]', 'hidden from plain listings (True/False)')
    .option('--metadata <key=value>', 'metadata entry (repeatable)', collect, [] as string[]);
}

function settingBody(c: Ctx): Obj {
  const o = c.opts;
  const s: Obj = { name: c.args[0], value: c.args[1] };
  if (typeof o.description === 'string') s.description = o.description;
  if (typeof o.category === 'string') s.category = o.category;
  if (typeof o.type === 'string') s.type = o.type;
  if (o.isPublic !== undefined) s.is_public = boolText(o.isPublic, '--is-public');
  if (o.isHidden !== undefined) s.is_hidden = boolText(o.isHidden, '--is-hidden');
  const md = o.metadata as string[];
  if (md.length > 0) s.metadata = Object.fromEntries(md.map((x) => keyValue(x, '--metadata')));
  return { settings: [s] };
}

export function registerSettingCommands(program: Command, io: ClientIo): void {
  for (const [name, method, what] of [
    ['setting-create', 'POST', 'Create a setting.'],
    ['setting-update', 'PUT', 'Update a setting.'],
  ] as const) {
    addFormatOptions(withSettingOptions(addCommand(program, io, name, what))).action(
      handler(io, async (c) => {
        const r = await (await c.session()).request<{ settings?: Obj[] }>(method, '/settings', settingBody(c));
        c.print(formatShow(r.settings?.[0] ?? {}, c.output()));
      }),
    );
  }

  addFormatOptions(
    addCommand(program, io, 'setting-show', 'Show a setting.')
      .argument('<name>', 'setting name')
      .option('--get_hidden [bool]', 'show a hidden setting too'),
  ).action(
    handler(io, async (c) => {
      const q = c.opts.get_hidden !== undefined && boolText(c.opts.get_hidden, '--get_hidden') ? query({ get_hidden: 'True' }) : '';
      const r = await (await c.session()).request<{ setting: Obj }>('GET', `/settings/${seg(c.args[0]!)}${q}`);
      c.print(formatShow(r.setting, c.output()));
    }),
  );

  addFormatOptions(addCommand(program, io, 'setting-list', 'List settings.').option('--get_hidden [bool]', 'include hidden settings')).action(
    handler(io, async (c) => {
      const q = c.opts.get_hidden !== undefined && boolText(c.opts.get_hidden, '--get_hidden') ? query({ get_hidden: 'true' }) : '';
      const r = await (await c.session()).request<{ settings?: Obj[] }>('GET', `/settings${q}`);
      c.print(
        formatList(
          r.settings ?? [],
          [
            { header: 'Name', get: (s) => s.name },
            { header: 'Value', get: (s) => s.value },
            { header: 'Category', get: (s) => s.category },
            { header: 'Is Public', get: (s) => s.is_public },
            { header: 'Is Hidden', get: (s) => s.is_hidden },
          ],
          c.output(),
        ),
      );
    }),
  );

  addCommand(program, io, 'setting-delete', 'Delete a setting.')
    .argument('<name>', 'setting name')
    .action(
      handler(io, async (c) => {
        await (await c.session()).request('DELETE', `/settings/${seg(c.args[0]!)}`);
      }),
    );
}
