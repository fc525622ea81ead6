/**
 * Small helpers shared by the service benchmark (bench/run.ts): process spawning with cleanup,
 * directory accounting (du / file counts), /proc RSS sampling and statistics.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const now = () => performance.now();

// ---------------------------------------------------------------------------------------------
// Cleanup registry: every child process and temp dir the bench creates is registered here and
// removed on normal exit, on failure and on SIGINT/SIGTERM.

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export function trackChild(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

export function trackDir(d: string): string {
  tempDirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  rmSync(d, { recursive: true, force: true });
  tempDirs.delete(d);
}

/** Synchronous: safe in process.on('exit'). */
export function cleanupAll(): void {
  for (const c of children) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  children.clear();
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}

let handlersInstalled = false;
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
      cleanupAll();
      process.exit(130);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  /** Peak resident set of the process (VmHWM, sampled from /proc every 20 ms), bytes; 0 if unseen. */
  peakRss: number;
}

/**
 * Writes back every dirty page (`sync`) before a timed step, so no step pays for an earlier
 * step's writeback (issue 13's rule; the sweep does the same). Measured on the libvirt case: an
 * incremental started 9 s after a full still found the full's repository being written back, and
 * libvirt's own fsyncs (checkpoint metadata, the scratch image) waited behind it.
 */
export async function flushDirtyPages(): Promise<void> {
  await run('sync', []);
}

/** Runs a command (no shell), capturing output; rejects on a non-zero exit unless allowFail. */
export function run(cmd: string, args: string[], opts: SpawnOptions & { allowFail?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const c = trackChild(spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    c.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    let peak = 0;
    const sample = () => {
      if (c.pid === undefined) return;
      const s = readProcStatus(c.pid);
      if (s) peak = Math.max(peak, s.hwm, s.rss);
    };
    const timer = setInterval(sample, 20);
    c.once('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    c.once('exit', (code, signal) => {
      clearInterval(timer);
      const r: RunResult = { code: code ?? (signal ? 128 : 1), stdout, stderr, seconds: (now() - t0) / 1000, peakRss: peak };
      if (r.code !== 0 && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.join(' ')} exited with ${code ?? signal}:\n${stderr.slice(-2000) || stdout.slice(-2000)}`));
      } else resolve(r);
    });
  });
}

/** Is `cmd` on PATH? (resolves with its --version first line, or null) */
export async function probe(cmd: string, args = ['--version']): Promise<string | null> {
  try {
    const r = await run(cmd, args, { allowFail: true });
    return r.code === 0 ? (r.stdout.trim().split('\n')[0] ?? cmd) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// /proc

export interface ProcStatus {
  /** VmRSS: current resident set of the whole process (all threads share it), bytes. */
  rss: number;
  /** VmHWM: peak resident set since start or since the last clear_refs 5, bytes. */
  hwm: number;
  threads: number;
}

export function readProcStatus(pid: number): ProcStatus | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), threads: Number(/^Threads:\s+(\d+)/m.exec(text)?.[1] ?? 0) };
}

/**
 * CPU seconds (user + system) a process has used so far, all threads, or thread `tid` alone (the
 * main thread: tid = pid), from /proc/<pid>[/task/<tid>]/stat (fields 14 and 15, in clock ticks
 * of 1/100 s on Linux); null once it is gone.
 */
export function cpuSeconds(pid: number, tid?: number): number | null {
  let text: string;
  try {
    text = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Busy and total CPU seconds of the whole machine since boot (all cores, /proc/stat), or null off Linux. */
export function machineCpuSeconds(): { busy: number; total: number } | null {
  let line: string;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  } catch {
    return null;
  }
  // cpu user nice system idle iowait irq softirq steal ...: idle and iowait are the idle time.
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0) / 100;
  return { busy: total - (f[3]! + f[4]!) / 100, total };
}

/** Resets VmHWM to the current RSS (Linux >= 4.0: "echo 5 > /proc/pid/clear_refs"). */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Samples a process's memory every `everyMs`: max of VmRSS polls and of VmHWM (which also
 * catches spikes between polls). Call mark() to start a new window, peak() to read it.
 */
export class RssSampler {
  private timer: NodeJS.Timeout;
  private max = 0;
  overall = 0;
  constructor(
    readonly pid: number,
    everyMs = 20,
  ) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }
  sample(): void {
    const s = readProcStatus(this.pid);
    if (!s) return;
    const v = Math.max(s.rss, s.hwm);
    this.max = Math.max(this.max, v);
    this.overall = Math.max(this.overall, v);
  }
  /** Starts a new window: resets the kernel's high-water mark, then our own max. */
  mark(): void {
    resetPeakRss(this.pid);
    this.max = 0;
    this.sample();
  }
  peak(): number {
    this.sample();
    return this.max;
  }
  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Directories

export interface DirStats {
  /** Sum of st_blocks * 512 over files and dirs: what `du -s -B1` prints. */
  allocated: number;
  /** Sum of file sizes: what `du -s -b` (apparent size) prints, directories excluded. */
  apparent: number;
  files: Set<string>;
}

export async function dirStats(root: string): Promise<DirStats> {
  const out: DirStats = { allocated: 0, apparent: 0, files: new Set() };
  const walk = async (dir: string, rel: string) => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const st = await lstat(dir).catch(() => null);
    if (st) out.allocated += st.blocks * 512;
    await Promise.all(
      entries.map(async (e) => {
        const p = join(dir, e.name);
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) return walk(p, r);
        const s = await lstat(p).catch(() => null);
        if (!s) return;
        out.allocated += s.blocks * 512;
        out.apparent += s.size;
        out.files.add(r);
      }),
    );
  };
  await walk(root, '');
  return out;
}

export function newFiles(before: DirStats, after: DirStats): number {
  let n = 0;
  for (const f of after.files) if (!before.files.has(f)) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting

export interface Summary {
  min: number;
  median: number;
  max: number;
  n: number;
  values: number[];
}

export function summarize(values: number[]): Summary | null {
  if (values.length === 0) return null;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const median = v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
  return { min: v[0] as number, median, max: v[v.length - 1] as number, n: v.length, values };
}

export function fmtNum(x: number, digits: number): string {
  return x.toFixed(digits);
}

export const MB = 1e6;
export const MiB = 2 ** 20;
