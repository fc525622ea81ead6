/**
 * restic and borg on the same image, configured as in shared/spec/engine-notes.md Part B:
 * restic repo v2 (the 0.14+ default, zstd "auto"), borg 1.2 `--chunker-params fixed,4194304
 * --sparse -C lz4` without encryption. Steps: full backup, incremental after the 1 % mutation
 * (both re-read the whole image: no CBT), restore of the full backup.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { dirStats, flushDirtyPages, run, type RunResult } from './lib.js';

export interface PeerResult {
  full: number;
  incr: number;
  restore: number;
  repoAfterFull: number;
  repoGrowth: number;
  repoGrowthApparent: number;
  /** Peak RSS of the tool process over its three steps, bytes (0 = not sampled). */
  peakRss: number;
}

export interface PeerTool {
  name: 'restic' | 'borg';
  version: string;
  /** Prepares an empty repo under `dir`. */
  init(dir: string): Promise<void>;
  backup(dir: string, image: string, label: string): Promise<RunResult>;
  restore(dir: string, label: string, outDir: string): Promise<RunResult>;
  repoDir(dir: string): string;
}

function resticEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, RESTIC_PASSWORD: 'lifeboat-bench', RESTIC_REPOSITORY: join(dir, 'repo'), RESTIC_CACHE_DIR: join(dir, 'cache') };
}

function borgEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, BORG_BASE_DIR: join(dir, 'base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
}

export function restic(version: string): PeerTool {
  const snaps = new Map<string, string>();
  return {
    name: 'restic',
    version,
    repoDir: (dir) => join(dir, 'repo'),
    async init(dir) {
      await run('restic', ['init'], { env: resticEnv(dir) });
    },
    async backup(dir, image, label) {
      const r = await run('restic', ['backup', '--json', '--host', 'bench', '--tag', label, image], { env: resticEnv(dir) });
      // Last JSON line is the summary with snapshot_id.
      for (const line of r.stdout.trim().split('\n').reverse()) {
        try {
          const j = JSON.parse(line) as { message_type?: string; snapshot_id?: string };
          if (j.message_type === 'summary' && j.snapshot_id) {
            snaps.set(`${dir}|${label}`, j.snapshot_id);
            break;
          }
        } catch {
          /* not JSON */
        }
      }
      return r;
    },
    async restore(dir, label, outDir) {
      const id = snaps.get(`${dir}|${label}`);
      if (!id) throw new Error(`restic: no snapshot id for ${label}`);
      return run('restic', ['restore', id, '--target', outDir], { env: resticEnv(dir) });
    },
  };
}

export function borg(version: string): PeerTool {
  return {
    name: 'borg',
    version,
    repoDir: (dir) => join(dir, 'repo'),
    async init(dir) {
      await run('borg', ['init', '-e', 'none', join(dir, 'repo')], { env: borgEnv(dir) });
    },
    async backup(dir, image, label) {
      // cwd = the image's directory, so the archive holds just "disk.img".
      const slash = image.lastIndexOf('/');
      return run('borg', ['create', '--chunker-params', 'fixed,4194304', '--sparse', '-C', 'lz4', `${join(dir, 'repo')}::${label}`, image.slice(slash + 1)], {
        env: borgEnv(dir),
        cwd: image.slice(0, slash),
      });
    },
    async restore(dir, label, outDir) {
      return run('borg', ['extract', '--sparse', `${join(dir, 'repo')}::${label}`], { env: borgEnv(dir), cwd: outDir });
    },
  };
}

/**
 * One peer run on `image` (a private sparse copy of the pristine disk): full, then `mutate()`
 * (the caller's 1 % change of the same file), incremental, restore of the full.
 * The tools run strictly one after the other, so their timings do not overlap.
 */
export async function runPeers(tools: PeerTool[], work: string, image: string, mutate: () => Promise<void>, log: (s: string) => void): Promise<Map<string, PeerResult>> {
  const res = new Map<string, PeerResult>();
  const dirs = new Map<string, string>();
  const base = new Map<string, number>();
  for (const t of tools) {
    const d = join(work, t.name);
    mkdirSync(d, { recursive: true });
    dirs.set(t.name, d);
    await t.init(d);
    base.set(t.name, (await dirStats(t.repoDir(d))).allocated);
  }
  const partial = new Map<string, Partial<PeerResult>>();
  const afterFull = new Map<string, { allocated: number; apparent: number }>();
  for (const t of tools) {
    const d = dirs.get(t.name) as string;
    await flushDirtyPages();
    const r = await t.backup(d, image, 'full');
    const s = await dirStats(t.repoDir(d));
    afterFull.set(t.name, { allocated: s.allocated, apparent: s.apparent });
    partial.set(t.name, { full: r.seconds, repoAfterFull: s.allocated - (base.get(t.name) ?? 0), peakRss: r.peakRss });
    log(`    ${t.name} full: ${r.seconds.toFixed(2)} s`);
  }
  await mutate();
  for (const t of tools) {
    const d = dirs.get(t.name) as string;
    await flushDirtyPages();
    const r = await t.backup(d, image, 'incr');
    const s = await dirStats(t.repoDir(d));
    const p = partial.get(t.name) as Partial<PeerResult>;
    const a = afterFull.get(t.name) as { allocated: number; apparent: number };
    p.incr = r.seconds;
    p.repoGrowth = s.allocated - a.allocated;
    p.repoGrowthApparent = s.apparent - a.apparent;
    p.peakRss = Math.max(p.peakRss ?? 0, r.peakRss);
    log(`    ${t.name} incremental 1 %: ${r.seconds.toFixed(2)} s, repo +${(p.repoGrowth / 1e6).toFixed(1)} MB`);
  }
  for (const t of tools) {
    const d = dirs.get(t.name) as string;
    const out = join(d, 'restore');
    mkdirSync(out, { recursive: true });
    await flushDirtyPages();
    const r = await t.restore(d, 'full', out);
    const p = partial.get(t.name) as Partial<PeerResult>;
    p.restore = r.seconds;
    p.peakRss = Math.max(p.peakRss ?? 0, r.peakRss);
    log(`    ${t.name} restore full: ${r.seconds.toFixed(2)} s`);
    res.set(t.name, p as PeerResult);
  }
  return res;
}
