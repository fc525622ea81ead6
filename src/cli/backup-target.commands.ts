import type { Command } from 'commander';
import { addCommand, addFormatOptions, handler, type ClientIo } from './command.kit.js';
import { formatList, humanBytes } from './table.format.js';

type Obj = Record<string, unknown>;

const bytes = (v: unknown) => (typeof v === 'number' ? humanBytes(v) : '-');

/** `backup-target-list` (admin): the configured targets with capacity and usage (GET /backup_targets). */
export function registerBackupTargetCommands(program: Command, io: ClientIo): void {
  addFormatOptions(addCommand(program, io, 'backup-target-list', 'List the backup targets (admin): type, default, status, capacity and usage.')).action(
    handler(io, async (c) => {
      const s = await c.session();
      const r = await s.request<{ backup_targets?: Obj[] }>('GET', '/backup_targets');
      c.print(
        formatList(
          r.backup_targets ?? [],
          [
            { header: 'Name', get: (t) => t.name },
            { header: 'Type', get: (t) => t.type },
            { header: 'Default', get: (t) => (t.is_default === 1 ? 'yes' : 'no') },
            { header: 'Status', get: (t) => t.status },
            { header: 'Capacity', get: (t) => bytes(t.capacity) },
            { header: 'Used', get: (t) => bytes(t.used) },
            { header: 'Location', get: (t) => t.description },
          ],
          c.output(),
        ),
      );
    }),
  );
}
