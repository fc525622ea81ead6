import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';
import type { Repository } from '../repository/repository.js';
import type { RepositorySet } from '../repository/repository-set.js';
import { DiskExport } from './disk-export.js';
import { fileSystemsOn, listFileSystems, mountReadOnly, snapshotDisks, type FoundFileSystem, type SnapshotDisk } from './filesystems.js';
import { Appliance, applianceDrive, quoteArg } from './guestfish.js';
import { ExtSearcher, extOnlyLayout } from './ext-search.js';

/** The stat record of a match (workloadmgr-api §2.6), numbers only. */
export type StatRecord = Record<'dev' | 'ino' | 'mode' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'size' | 'blksize' | 'blocks' | 'atime' | 'mtime' | 'ctime', number>;

export interface FileSystemMatches {
  /** The VM's device name (`/dev/vda1`, `/dev/vgdata/lvdata`). */
  device: string;
  matches: { path: string; stat: StatRecord }[];
}

/** Per snapshot: its file systems, or the vendor's text when the VM is not in it. */
export interface SnapshotMatches {
  snapshotId: string;
  result: FileSystemMatches[] | 'Snapshot VM deleted';
}

/** A snapshot to search and the backup target it recorded (null: the default target). */
export interface SearchedSnapshot {
  id: string;
  target: string | null;
}

export interface SearchOptions {
  /** Every configured backup target; each snapshot is read from its own. */
  repos: RepositorySet;
  /** LIFEBOAT_HOME (sockets under `<home>/nbd`). */
  home: string;
  forceTcg: boolean;
  /** Appliance tag (SnapshotMounts.tag): restart reconciliation finds leftovers by it. */
  tag: string;
  /** Snapshots to search, in the order results are wanted. */
  snapshots: SearchedSnapshot[];
  vmId: string;
  /** Absolute glob (`*`, `?`, `[...]`) matched inside every file system. */
  pattern: string;
  signal?: AbortSignal;
  /** Search ext file systems in the appliance too (comparison runs of the bench and tests). */
  applianceOnly?: boolean;
  /** Snapshots done of all. */
  onProgress?: (done: number, total: number) => void;
  logger?: Logger;
}

const STAT_FIELDS: [keyof StatRecord, string][] = [
  ['dev', 'st_dev'],
  ['ino', 'st_ino'],
  ['mode', 'st_mode'],
  ['nlink', 'st_nlink'],
  ['uid', 'st_uid'],
  ['gid', 'st_gid'],
  ['rdev', 'st_rdev'],
  ['size', 'st_size'],
  ['blksize', 'st_blksize'],
  ['blocks', 'st_blocks'],
  ['atime', 'st_atime_sec'],
  ['mtime', 'st_mtime_sec'],
  ['ctime', 'st_ctime_sec'],
];

/** guestfish `lstatns` output (`st_size: 123` lines) → stat record. */
export function parseStat(lines: string[]): StatRecord {
  const kv = new Map<string, number>();
  for (const l of lines) {
    const m = /^(\w+): (-?\d+)$/.exec(l.trim());
    if (m) kv.set(m[1]!, Number(m[2]));
  }
  return Object.fromEntries(STAT_FIELDS.map(([k, src]) => [k, kv.get(src) ?? 0])) as StatRecord;
}

interface PlannedSnapshot {
  index: number;
  snapshotId: string;
  disks: SnapshotDisk[];
  exports: DiskExport[];
}

/**
 * Searches `pattern` in every file system of the VM's disks in each snapshot. Every disk of
 * every snapshot is exported over NBD from the repository. A snapshot whose disks hold only
 * ext2/3/4 file systems (on GPT/MBR partitions or the whole disk) is searched without the
 * appliance (ext-search.ts: debugfs over nbdfuse, milliseconds per file system); the others
 * are searched in ONE appliance launch for all of them (searchInAppliance). Aborting the
 * signal stops between commands.
 */
export async function searchSnapshots(o: SearchOptions): Promise<SnapshotMatches[]> {
  const log = o.logger ?? silentLogger;
  const plan: PlannedSnapshot[] = [];
  const repos: Repository[] = [];
  for (const [index, s] of o.snapshots.entries()) {
    const repo = o.repos.get(s.target);
    const disks = snapshotDisks(await repo.readManifest(s.id)).filter((d) => d.instanceId === o.vmId);
    plan.push({ index, snapshotId: s.id, disks, exports: [] });
    repos.push(repo);
  }
  const results: SnapshotMatches[] = plan.map((p) => ({ snapshotId: p.snapshotId, result: p.disks.length ? [] : 'Snapshot VM deleted' }));
  if (!plan.some((p) => p.disks.length > 0)) return results;
  mkdirSync(join(o.home, 'nbd'), { recursive: true, mode: 0o700 });
  const run = randomBytes(4).toString('hex');
  const ext = new ExtSearcher({ mountRoot: join(o.home, 'mounts'), run, tag: o.tag });
  let done = 0;
  const finished = (p: PlannedSnapshot, result: FileSystemMatches[], t: number) => {
    results[p.index]!.result = result;
    log.debug({ snapshotId: p.snapshotId, ms: Date.now() - t }, 'file search: snapshot searched');
    o.onProgress?.(++done, plan.length);
  };
  try {
    let n = 0;
    for (const p of plan) {
      for (const d of p.disks) {
        o.signal?.throwIfAborted();
        p.exports.push(await DiskExport.start({ repo: repos[p.index]!, snapshotId: p.snapshotId, diskKey: d.diskKey, socketPath: join(o.home, 'nbd', `search-${run}-${n++}.sock`), logger: log }));
      }
    }
    const forAppliance: PlannedSnapshot[] = [];
    for (const p of plan.filter((x) => x.disks.length > 0)) {
      o.signal?.throwIfAborted();
      const t = Date.now();
      const layout = o.applianceOnly ? null : await extOnlyLayout(p.disks, p.exports);
      if (layout) finished(p, await ext.search(layout, o.pattern, o.signal), t);
      else forAppliance.push(p);
    }
    if (forAppliance.length > 0) await searchInAppliance(o, forAppliance, log, finished);
    o.signal?.throwIfAborted();
    return results;
  } finally {
    await ext.close();
    await Promise.all(plan.flatMap((p) => p.exports).map((e) => e.close().catch(() => undefined)));
  }
}

/**
 * The snapshots that need the appliance (LVM, XFS, anything not ext), in ONE launch: their
 * disks are its drives. One `list-filesystems` serves every snapshot without LVM; a snapshot
 * with LVM is searched with only its drives visible to LVM (lvm-set-filter) and its volume
 * groups active, so the same volume group in ten snapshots never collides; XFS mounts with
 * `nouuid`.
 */
async function searchInAppliance(o: SearchOptions, plan: PlannedSnapshot[], log: Logger, finished: (p: PlannedSnapshot, r: FileSystemMatches[], t: number) => void): Promise<void> {
  o.signal?.throwIfAborted();
  const drives = plan.flatMap((p) => p.exports.map((e) => e.socketPath));
  const t0 = Date.now();
  const app = await Appliance.launch({ drives, forceTcg: o.forceTcg, logger: log, tag: o.tag, signal: o.signal });
  try {
    log.debug({ drives: drives.length, ms: Date.now() - t0 }, 'file search: appliance launched');
    // Volume groups auto-activated at launch (the same VG in many snapshots) are deactivated,
    // then activated one snapshot at a time. (list-filesystems shows no physical volumes, only
    // the logical volumes activated at launch.)
    const listing = await listFileSystems(app);
    const lvm = listing.some(([dev]) => !/^\/dev\/sd[a-z]+\d*$/.test(dev));
    if (lvm) await app.run('vg-activate-all false');
    let firstDrive = 0;
    for (const p of plan) {
      o.signal?.throwIfAborted();
      const t = Date.now();
      finished(p, lvm ? await searchWithLvm(app, p.disks, firstDrive, o.pattern, log) : await searchIn(app, fileSystemsOn(listing, p.disks, firstDrive, false), o.pattern, log), t);
      firstDrive += p.disks.length;
    }
  } finally {
    await app.close().catch(() => undefined);
  }
}

/** A snapshot with LVM: only its drives visible to LVM while its volume groups are active. */
async function searchWithLvm(app: Appliance, disks: SnapshotDisk[], firstDrive: number, pattern: string, log: Logger): Promise<FileSystemMatches[]> {
  const devices = disks.map((_, k) => applianceDrive(firstDrive + k));
  await app.run(`lvm-set-filter ${quoteArg(devices.join(' '))}`);
  await app.run('vg-activate-all true');
  try {
    return await searchIn(app, fileSystemsOn(await listFileSystems(app), disks, firstDrive, true), pattern, log);
  } finally {
    await app.run('vg-activate-all false').catch(() => undefined);
  }
}

/** Mounts each file system read-only at / in turn and expands the glob in it. */
async function searchIn(app: Appliance, filesystems: FoundFileSystem[], pattern: string, log: Logger): Promise<FileSystemMatches[]> {
  const out: FileSystemMatches[] = [];
  for (const fs of filesystems) {
    try {
      await mountReadOnly(app, fs, '/');
    } catch (e) {
      log.warn({ device: fs.guestDevice, err: errorMessage(e) }, 'file system not mountable; skipped by the search');
      continue;
    }
    try {
      const paths = (await app.run(`glob-expand ${quoteArg(pattern)}`)).filter((l) => l.startsWith('/'));
      const matches: FileSystemMatches['matches'] = [];
      for (const path of paths) matches.push({ path, stat: parseStat(await app.run(`lstatns ${quoteArg(path)}`)) });
      out.push({ device: fs.guestDevice, matches });
    } finally {
      await app.run('umount-all');
    }
  }
  return out;
}

/**
 * The vendor's `json_resp` text (§2.6): one element per snapshot mapping its id to one object
 * per file system — the device key first (its matched paths), then one key per path with its
 * stat record. JSON of strings and numbers only, so Python's eval reads it too.
 */
export function toJsonResp(results: SnapshotMatches[]): string {
  return JSON.stringify(
    results.map((r) => ({
      [r.snapshotId]:
        r.result === 'Snapshot VM deleted'
          ? r.result
          : r.result.map((fs) => {
              const o: Record<string, unknown> = { [fs.device]: fs.matches.map((m) => m.path) };
              for (const m of fs.matches) o[m.path] = m.stat;
              return o;
            }),
    })),
  );
}
