import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { xmlAttr, type DomainDisk } from './domain-xml.js';
import { LibvirtError, type Virsh } from './virsh.js';

/**
 * Lifeboat's dirty bitmaps in a running domain's qcow2 disks. libvirt keeps no metadata for
 * them between backups (it would break Nova), and libvirt offers no way to list a running
 * domain's bitmaps without tainting it (`qemu-monitor-command`), so Lifeboat remembers every
 * bitmap it created and has not yet removed in a small per-domain ledger,
 * `<scratch dir>/<uuid>.bitmaps.json`. Each backup removes every ledger bitmap except the
 * trusted base before it begins: a bitmap of a broken chain (after a fallback, a full, a
 * deleted or failed snapshot, a dead worker) never stays recording in the qcow2.
 */
export class BitmapLedger {
  private readonly file: string;

  constructor(scratchDir: string, uuid: string) {
    this.file = path.join(scratchDir, `${uuid}.bitmaps.json`);
  }

  /**
   * The recorded bitmaps, and the one of the last committed backup (`base`: kept while a full
   * runs, so that a full that fails does not break the chain of the snapshot before it). An
   * unreadable or missing ledger is empty (nothing known to remove).
   */
  async read(): Promise<{ bitmaps: string[]; base: string | null }> {
    try {
      const v = JSON.parse(await readFile(this.file, 'utf8')) as { bitmaps?: unknown; base?: unknown };
      const bitmaps = Array.isArray(v.bitmaps) ? v.bitmaps.filter((x): x is string => typeof x === 'string') : [];
      return { bitmaps, base: typeof v.base === 'string' && bitmaps.includes(v.base) ? v.base : null };
    } catch {
      return { bitmaps: [], base: null };
    }
  }

  async add(name: string): Promise<void> {
    const l = await this.read();
    if (!l.bitmaps.includes(name)) await this.save({ ...l, bitmaps: [...l.bitmaps, name] });
  }

  async remove(name: string): Promise<void> {
    const l = await this.read();
    if (l.bitmaps.includes(name)) await this.save({ bitmaps: l.bitmaps.filter((n) => n !== name), base: l.base === name ? null : l.base });
  }

  /** `name` (already recorded) is the bitmap of the last committed backup. */
  async committed(name: string): Promise<void> {
    const l = await this.read();
    await this.save({ bitmaps: l.bitmaps.includes(name) ? l.bitmaps : [...l.bitmaps, name], base: name });
  }

  /** Written to a temp file and renamed: a crash leaves the old or the new list, never half. */
  private async save(l: { bitmaps: string[]; base: string | null }): Promise<void> {
    const tmp = `${this.file}.tmp`;
    await writeFile(tmp, JSON.stringify(l), { mode: 0o600 });
    await rename(tmp, this.file);
  }
}

/**
 * Removes bitmap `name` from every qcow2 disk of a running domain through libvirt: a minimal
 * checkpoint naming it is redefined (one disk at a time, so a disk that lacks it does not stop
 * the others) and deleted without `--metadata`, which makes libvirt remove the bitmap.
 * True when no disk has it any more (removed, or libvirt says it is not there).
 */
export async function removeBitmap(virsh: Virsh, uuid: string, name: string, disks: DomainDisk[], xmlDir: string, log: Logger): Promise<boolean> {
  let gone = true;
  for (const disk of disks.filter((d) => d.format === 'qcow2')) {
    const items = disks.map((d) => (d === disk ? `<disk name='${xmlAttr(d.target)}' checkpoint='bitmap' bitmap='${xmlAttr(name)}'/>` : `<disk name='${xmlAttr(d.target)}' checkpoint='no'/>`)).join('');
    const file = path.join(xmlDir, 'remove-bitmap.xml');
    // creationTime is required by --redefine; the value is irrelevant (deleted right away).
    await writeFile(file, `<domaincheckpoint><name>${xmlAttr(name)}</name><creationTime>1</creationTime><disks>${items}</disks></domaincheckpoint>`);
    try {
      await virsh.run(['checkpoint-create', uuid, file, '--redefine']);
    } catch (e) {
      log.warn({ domain: uuid, bitmap: name, err: errorMessage(e) }, 'cannot name a stale bitmap to libvirt');
      gone = false;
      continue;
    }
    try {
      await virsh.run(['checkpoint-delete', uuid, name]);
    } catch (e) {
      await virsh.run(['checkpoint-delete', uuid, name, '--metadata']).catch(() => undefined);
      if (!(e instanceof LibvirtError && /not found/i.test(e.detail))) {
        log.warn({ domain: uuid, bitmap: name, disk: disk.target, err: errorMessage(e) }, 'removing a stale bitmap failed');
        gone = false;
      }
    }
  }
  return gone;
}

/**
 * Removes every ledger bitmap (and `untrusted`, a base that failed its checks) except `keep`,
 * the trusted base of this backup, and `fresh`, the one this backup is about to create (already
 * recorded); with no base at all (a full), the last committed one stays until the full commits.
 * The ledger keeps those that could not be removed.
 */
export async function removeStaleBitmaps(o: { virsh: Virsh; uuid: string; disks: DomainDisk[]; ledger: BitmapLedger; keep: string | null; fresh?: string | null; untrusted: string | null; xmlDir: string; log: Logger }): Promise<string[]> {
  const ledger = await o.ledger.read();
  const keep = new Set([o.keep ?? (o.untrusted ? null : ledger.base), o.fresh ?? null]);
  const stale = [...new Set([...ledger.bitmaps, ...(o.untrusted ? [o.untrusted] : [])])].filter((n) => !keep.has(n));
  const removed: string[] = [];
  for (const name of stale) {
    if (await removeBitmap(o.virsh, o.uuid, name, o.disks, o.xmlDir, o.log)) {
      await o.ledger.remove(name);
      removed.push(name);
    } else {
      await o.ledger.add(name); // retried by the next backup
    }
  }
  if (removed.length > 0) o.log.info({ domain: o.uuid, bitmaps: removed }, 'removed dirty bitmaps of a broken or finished checkpoint chain');
  return removed;
}
