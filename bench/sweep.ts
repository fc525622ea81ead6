/**
 * The engine sweep (issue 13 item 1): every data mix and a size sweep, Lifeboat against restic
 * and borg in the same run, with the machine's limits beside them. See README.md, "Engine sweep".
 *
 * Environment (all optional):
 *   LIFEBOAT_BENCH_SIZES  GiB sizes of the sweep, default "1,4,16" (e.g. "1,4" to fit the time)
 *   LIFEBOAT_BENCH_MIXES  mixes run at the smallest size, default "text,random,db"
 *   LIFEBOAT_BENCH_SWEEP_MIX  the mix run at every size, default "db"
 *   LIFEBOAT_BENCH_PEERS  default "restic,borg" ("" = Lifeboat only)
 *   LIFEBOAT_BENCH_DIR    images, repositories and the JSON, default /var/tmp/lifeboat-bench
 *   LIFEBOAT_BENCH_ROUNDS       rounds of each scenario at the smallest size, default 3
 *   LIFEBOAT_BENCH_SIZE_ROUNDS  rounds of each larger scenario of the size sweep, default 1
 *
 * Per scenario (mix, size): image D0 and its mutation D1 (generated once, cached in the dir);
 * each tool in turn: full backup of D0, incremental of D1 (no CBT: every tool re-reads), restore
 * of the incremental, compared byte for byte with D1; before its restore the tool's repository
 * is dropped from the page cache (evictFromPageCache). Before every timed step `sync` flushes
 * dirty pages, so no tool pays for another's writeback; each step's time includes a `sync`
 * after it (a restore is only done when it is on disk; Lifeboat fsyncs itself, the peers don't).
 * Lifeboat's steps run without NODE_EXTRA_CA_CERTS (machine.ts, engineStepEnv: a start cost of
 * the sandbox's, not of the engine; the report prints Node's start with and without it).
 *
 * Before its rounds a scenario reads both images once (warmPageCache), so that every round of
 * every tool starts with them in the page cache (when they fit in half the memory).
 *
 * Rounds: a scenario runs every tool once per round, the tools' order rotated by one each round
 * (Lifeboat first in round 1, second in round 2, ...). On a VM with free page reporting (see
 * machine.ts) memory a process frees goes back to the host, and whoever touches memory next pays
 * a host fault per page: the tool that follows a big one pays for it. Rotating the order spreads
 * that cost; the report shows each step's median and range over the rounds.
 */
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { newHexId } from '../src/lib/ids.js';
import { cleanupAll, dirStats, installCleanupHandlers, probe, run } from './lib.js';
import { engineStepEnv, measureMachine, type MachineLimits } from './machine.js';
import { makeMixDisk, MIX_NAMES, mutateMixDisk, type MixName } from './mixes.js';
import { printSweep, type ScenarioResult, type StepResult, type StepName } from './sweep-report.js';

const GiB = 2 ** 30;
const GENERATOR_VERSION = '1';
const env = process.env;
const dir = env.LIFEBOAT_BENCH_DIR || '/var/tmp/lifeboat-bench';
const sizes = (env.LIFEBOAT_BENCH_SIZES ?? '1,4,16').split(',').filter(Boolean).map(Number);
const mixes = (env.LIFEBOAT_BENCH_MIXES ?? MIX_NAMES.join(',')).split(',').filter(Boolean) as MixName[];
const sweepMix = (env.LIFEBOAT_BENCH_SWEEP_MIX ?? 'db') as MixName;
const peers = (env.LIFEBOAT_BENCH_PEERS ?? 'restic,borg').split(',').filter(Boolean);
const positive = (name: string, dflt: string): number => {
  const n = Number(env[name] ?? dflt);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bad ${name} ${env[name]} (a whole number ≥ 1)`);
  return n;
};
const rounds = positive('LIFEBOAT_BENCH_ROUNDS', '3');
const sizeRounds = positive('LIFEBOAT_BENCH_SIZE_ROUNDS', '1');
const log = (s: string) => process.stderr.write(`${s}\n`);
const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

for (const m of [...mixes, sweepMix]) if (!MIX_NAMES.includes(m)) throw new Error(`unknown mix ${m} (known: ${MIX_NAMES.join(', ')})`);
if (sizes.some((s) => !(s > 0))) throw new Error(`bad LIFEBOAT_BENCH_SIZES ${env.LIFEBOAT_BENCH_SIZES}`);

/** Allocated (non-hole) bytes of a file. */
const dataBytes = (f: string) => statSync(f).blocks * 512;

/** D0 and D1 of a scenario, generated once (a marker file says the image is complete). */
async function images(mix: MixName, gib: number): Promise<{ d0: string; d1: string }> {
  const base = join(dir, 'images', `${mix}-${gib}G`);
  mkdirSync(join(dir, 'images'), { recursive: true });
  const d0 = `${base}.d0.img`;
  const d1 = `${base}.d1.img`;
  const done = `${base}.done`;
  if (existsSync(done) && readFileSync(done, 'utf8') === GENERATOR_VERSION && existsSync(d0) && existsSync(d1)) return { d0, d1 };
  rmSync(done, { force: true });
  const t0 = performance.now();
  await makeMixDisk(d0, mix, gib * GiB, 42);
  await run('cp', ['--sparse=always', d0, d1]);
  await mutateMixDisk(d1, mix, gib * GiB, 1);
  writeFileSync(done, GENERATOR_VERSION);
  log(`  generated ${mix} ${gib} GiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { d0, d1 };
}

/** sync; the command under /usr/bin/time; sync again (timed: part of the step). */
async function timed(tool: string, step: StepName, data: number, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<StepResult & { stdout: string }> {
  await run('sync', []);
  const l = load();
  const tf = join(dir, `time-${process.pid}.txt`);
  const r = await run('/usr/bin/time', ['-f', '%U %S %M', '-o', tf, cmd, ...args], { env: opts.env, cwd: opts.cwd });
  const s = await run('sync', []);
  const [user, sys, maxKb] = readFileSync(tf, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  rmSync(tf, { force: true });
  const res = { tool, step, seconds: r.seconds + s.seconds, syncSeconds: s.seconds, user: user!, sys: sys!, peakRss: maxKb! * 1024, dataBytes: data, load: l, stdout: r.stdout };
  log(`    ${tool} ${step}: ${res.seconds.toFixed(2)} s (sync ${s.seconds.toFixed(2)}), cpu ${user}+${sys} s, rss ${(res.peakRss / 2 ** 20).toFixed(0)} MiB, load ${l[0]}`);
  return res;
}

/** Makes `file` appear as <work>/disk.img for the duration of f (peers record the path). */
async function asDisk<T>(file: string, work: string, f: (disk: string) => Promise<T>): Promise<T> {
  const disk = join(work, 'disk.img');
  renameSync(file, disk);
  try {
    return await f(disk);
  } finally {
    renameSync(disk, file);
  }
}

/**
 * Drops every file under `root` (a tool's repository) from the page cache, before that tool's
 * restore: `dd iflag=nocache count=0` per file, which is posix_fadvise(DONTNEED) on the whole
 * file (the pages are clean: the step before ended with a sync). A restore reads backups taken
 * hours or days before, not pages its own backup has just left in memory, and the tools differ
 * there: restic and borg write their repositories through the page cache (after a 1 GiB full,
 * 647.6 of restic's 648.4 MB of pack files were resident), while Lifeboat writes packs O_DIRECT
 * and read them from the device (1 GiB random mix, engine-step, 4 pairs: 1.38-1.55 s with its
 * repository cached, 1.64-1.78 s without). Every tool now reads its repository from the device.
 */
async function evictFromPageCache(root: string): Promise<void> {
  for (const rel of readdirSync(root, { recursive: true, encoding: 'utf8' })) {
    const f = join(root, rel);
    if (statSync(f).isFile()) await run('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
  }
}

async function same(a: string, b: string): Promise<boolean> {
  return (await run('cmp', ['-s', a, b], { allowFail: true })).code === 0;
}

interface ToolRun {
  steps: StepResult[];
  repoAfterFull: number;
  restoredExact: boolean;
}

async function lifeboat(work: string, d0: string, d1: string): Promise<ToolRun> {
  const target = join(work, 'repo');
  const project = newHexId();
  const step = join(process.cwd(), 'dist/bench/engine-step.js');
  const opts = { env: engineStepEnv() };
  const full = await timed('lifeboat', 'full', dataBytes(d0), process.execPath, [step, 'backup', target, d0, project], opts);
  const repoAfterFull = (await dirStats(target)).allocated;
  const fullId = (JSON.parse(full.stdout) as { snapshotId: string }).snapshotId;
  const incr = await timed('lifeboat', 'incremental', dataBytes(d1), process.execPath, [step, 'backup', target, d1, project, fullId], opts);
  const incrId = (JSON.parse(incr.stdout) as { snapshotId: string }).snapshotId;
  const out = join(work, 'restored.img');
  await evictFromPageCache(target);
  const restore = await timed('lifeboat', 'restore', dataBytes(d1), process.execPath, [step, 'restore', target, incrId, out], opts);
  return { steps: [full, incr, restore], repoAfterFull, restoredExact: await same(out, d1) };
}

async function restic(work: string, d0: string, d1: string): Promise<ToolRun> {
  const e = { ...env, RESTIC_PASSWORD: 'lifeboat-bench', RESTIC_REPOSITORY: join(work, 'repo'), RESTIC_CACHE_DIR: join(work, 'cache') };
  await run('restic', ['init'], { env: e });
  const [n0, n1] = [dataBytes(d0), dataBytes(d1)];
  const full = await asDisk(d0, work, (disk) => timed('restic', 'full', n0, 'restic', ['backup', '--host', 'bench', disk], { env: e }));
  const repoAfterFull = (await dirStats(join(work, 'repo'))).allocated;
  const incr = await asDisk(d1, work, (disk) => timed('restic', 'incremental', n1, 'restic', ['backup', '--host', 'bench', disk], { env: e }));
  const out = join(work, 'out');
  await evictFromPageCache(join(work, 'repo'));
  const restore = await timed('restic', 'restore', n1, 'restic', ['restore', 'latest', '--target', out], { env: e });
  return { steps: [full, incr, restore], repoAfterFull, restoredExact: await same(join(out, work, 'disk.img'), d1) };
}

async function borg(work: string, d0: string, d1: string): Promise<ToolRun> {
  const repo = join(work, 'repo');
  const e = { ...env, BORG_BASE_DIR: join(work, 'base'), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
  await run('borg', ['init', '-e', 'none', repo], { env: e });
  const create = (label: string) => ['create', '--chunker-params', 'fixed,4194304', '--sparse', '-C', 'lz4', `${repo}::${label}`, 'disk.img'];
  const [n0, n1] = [dataBytes(d0), dataBytes(d1)];
  const full = await asDisk(d0, work, () => timed('borg', 'full', n0, 'borg', create('full'), { env: e, cwd: work }));
  const repoAfterFull = (await dirStats(repo)).allocated;
  const incr = await asDisk(d1, work, () => timed('borg', 'incremental', n1, 'borg', create('incr'), { env: e, cwd: work }));
  const out = join(work, 'out');
  mkdirSync(out, { recursive: true });
  await evictFromPageCache(repo);
  const restore = await timed('borg', 'restore', n1, 'borg', ['extract', '--sparse', `${repo}::incr`], { env: e, cwd: out });
  return { steps: [full, incr, restore], repoAfterFull, restoredExact: await same(join(out, 'disk.img'), d1) };
}

const TOOLS: Record<string, (work: string, d0: string, d1: string) => Promise<ToolRun>> = { lifeboat, restic, borg };

function withoutStdout(x: StepResult): StepResult {
  const { stdout: _, ...rest } = x as StepResult & { stdout?: string };
  return rest;
}

/** The tools in the order of round `r` (0-based): Lifeboat and the peers rotated by r. */
function roundOrder(r: number): string[] {
  const tools = ['lifeboat', ...peers];
  return tools.map((_, i) => tools[(i + r) % tools.length]!);
}

async function runTool(tool: string, d0: string, d1: string): Promise<ToolRun> {
  const work = join(dir, `work-${tool}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    return await TOOLS[tool]!(work, d0, d1);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Reads the images once, untimed, when both fit in half the memory: then round 1 finds them in
 * the page cache as every later round does. Without it the first tool of round 1 (Lifeboat,
 * by the rotation) read them from the device, minutes after the previous scenario pushed them
 * out, and the others found them cached: its first-round incrementals took 0.9-3.0 s against
 * 0.4-0.6 s in the later rounds (this VM's disk reads 0.05-1.3 GB/s depending on the host).
 */
async function warmPageCache(files: string[]): Promise<void> {
  const bytes = files.reduce((n, f) => n + dataBytes(f), 0);
  if (bytes > totalmem() / 2) {
    log(`  page cache: images not read ahead (${(bytes / GiB).toFixed(1)} GiB of data, more than half the memory)`);
    return;
  }
  for (const f of files) await run('dd', [`if=${f}`, 'of=/dev/null', 'bs=1M']);
  log(`  page cache: images read once before the rounds (${(bytes / GiB).toFixed(1)} GiB of data)`);
}

async function scenario(mix: MixName, gib: number, n: number): Promise<ScenarioResult> {
  log(`\n== ${mix} mix, ${gib} GiB, ${n} round(s)`);
  const { d0, d1 } = await images(mix, gib);
  await warmPageCache([d0, d1]);
  const result: ScenarioResult = { mix, gib, size: gib * GiB, dataBytes: dataBytes(d0), rounds: n, steps: [], repoAfterFull: {}, restoredExact: {} };
  for (let round = 0; round < n; round++) {
    const order = roundOrder(round);
    if (n > 1) log(`  round ${round + 1}: ${order.join(', ')}`);
    for (const tool of order) {
      const r = await runTool(tool, d0, d1);
      result.steps.push(...r.steps.map((x) => ({ ...withoutStdout(x), round })));
      result.repoAfterFull[tool] = r.repoAfterFull;
      result.restoredExact[tool] = (result.restoredExact[tool] ?? true) && r.restoredExact;
    }
  }
  return result;
}

async function main(): Promise<void> {
  if (env.LIFEBOAT_BENCH_SWEEP === '0') {
    log('engine sweep skipped (LIFEBOAT_BENCH_SWEEP=0)');
    return;
  }
  installCleanupHandlers();
  mkdirSync(dir, { recursive: true });
  for (const p of peers) {
    if (!TOOLS[p]) throw new Error(`unknown peer ${p}`);
    if (!(await probe(p, p === 'restic' ? ['version'] : ['--version']))) throw new Error(`${p} is not installed (LIFEBOAT_BENCH_PEERS="" runs Lifeboat alone)`);
  }
  const started = { at: new Date().toISOString(), load: load() };
  const plan: [MixName, number][] = mixes.map((m) => [m, Math.min(...sizes)]);
  for (const s of sizes) if (!plan.some(([m, g]) => m === sweepMix && g === s)) plan.push([sweepMix, s]);
  log('machine limits...');
  const machine: MachineLimits = await measureMachine(dir, load);
  const scenarios: ScenarioResult[] = [];
  const smallest = Math.min(...sizes);
  for (const [mix, gib] of plan) scenarios.push(await scenario(mix, gib, gib === smallest ? rounds : sizeRounds));
  const report = { started, finished: { at: new Date().toISOString(), load: load() }, machine, scenarios };
  writeFileSync(join(dir, 'sweep-last.json'), JSON.stringify(report, null, 1));
  printSweep(report);
  log(`\nJSON: ${join(dir, 'sweep-last.json')}`);
}

main()
  .catch((e: unknown) => {
    log(`sweep failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  })
  .finally(cleanupAll);
