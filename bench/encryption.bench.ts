/**
 * The cost of encryption (issue 17 item 4): full snapshot and restore of the bench disk through
 * the real service, a plain workload vs an encrypted one (`encryption: true`), alternating, each
 * in a fresh service. Reports wall time, CPU seconds of the service process (all its threads:
 * /proc/<pid>/stat utime + stime) per GB of disk, and its peak RSS per step.
 *
 *   node dist/bench/encryption.bench.js [--runs N (2)] [--image PATH (bench-data/disk-2048MiB.img)]
 *
 * `npm run bench` runs it after the main table (`--skip-encryption` there skips it).
 */
import { mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installCleanupHandlers, MB, MiB, now, removeDir, RssSampler, run, summarize, trackDir, type Summary } from './lib.js';
import { prepareHome, Service } from './service.js';

/** CPU seconds (user + system, every thread) the process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ = 100 on Linux
}

export interface EncStep {
  wall: number;
  cpu: number;
  peakRss: number;
}

export interface EncRun {
  encrypted: boolean;
  full: EncStep;
  restore: EncStep;
  identical: boolean;
  load: number;
}

async function oneRun(image: string, encrypted: boolean, repoRoot: string, log: (s: string) => void): Promise<EncRun> {
  const home = trackDir(mkdtempSync(join(tmpdir(), 'lifeboat-encbench-')));
  let svc: Service | null = null;
  let smp: RssSampler | null = null;
  try {
    mkdirSync(join(home, 'disks'));
    const disk = join(home, 'disks', 'vda.img');
    await run('cp', ['--sparse=always', image, disk]);
    const h = prepareHome(home, disk);
    const s = (svc = await Service.start(h, repoRoot));
    const sampler = (smp = new RssSampler(s.pid, 20));
    const wid = await s.createWorkload(encrypted ? { encryption: true } : {});
    const step = async (x: Service, xs: RssSampler, post: () => Promise<string>, poll: (id: string) => Promise<string>): Promise<EncStep> => {
      xs.mark();
      const c0 = cpuSeconds(x.pid);
      const t0 = now();
      const status = await poll(await post());
      if (status !== 'available') throw new Error(`ended ${status}:\n${x.logTail()}`);
      return { wall: (now() - t0) / 1000, cpu: cpuSeconds(x.pid) - c0, peakRss: xs.peak() };
    };
    const full = await step(
      s,
      sampler,
      async () => (await s.expect('POST', `/workloads/${wid}?full=1`, { snapshot: { name: 'full' } }, [200, 202])).json.snapshot.id as string,
      async (id) => (await s.pollStatus(`/snapshots/${id}`, (j) => j.snapshot.status, ['available', 'error'], 30 * 60_000)).snapshot.status as string,
    );
    const snaps = (await s.expect('GET', '/snapshots', undefined, [200])).json.snapshots as { id: string }[];
    // The restore runs in a fresh service: its peak RSS is its own, not what the full left behind.
    sampler.stop();
    await s.stop();
    const s2 = (svc = await Service.start(h, repoRoot));
    const sampler2 = (smp = new RssSampler(s2.pid, 20));
    const body = { restore: { name: 'r', description: 'bench', options: { type: 'openstack', oneclickrestore: true, openstack: {} } } };
    const restore = await step(
      s2,
      sampler2,
      async () => (await s2.expect('POST', `/workloads/${wid}/snapshots/${snaps[0]!.id}/restores`, body, [200, 202])).json.restore.id as string,
      async (id) => (await s2.pollStatus(`/restores/${id}`, (j) => j.restore.status, ['available', 'error'], 30 * 60_000)).restore.status as string,
    );
    const restored = (await run('find', [join(home, 'instances'), '-name', '*.raw'])).stdout.trim().split('\n').filter(Boolean);
    const identical = restored.length === 1 && (await run('cmp', ['-s', image, restored[0]!], { allowFail: true })).code === 0;
    const r: EncRun = { encrypted, full, restore, identical, load: loadavg()[0]! };
    const gb = statSync(image).size / 1e9;
    const fmt = (x: EncStep) => `${x.wall.toFixed(2)} s, ${(x.cpu / gb).toFixed(2)} CPU-s/GB, peak RSS ${(x.peakRss / MiB).toFixed(0)} MiB`;
    log(`  ${encrypted ? 'encrypted' : 'plain    '}  full ${fmt(full)} | restore ${fmt(restore)} | ${identical ? 'identical' : 'NOT IDENTICAL'} | load ${r.load.toFixed(1)}`);
    return r;
  } finally {
    smp?.stop();
    await svc?.stop();
    removeDir(home);
  }
}

export interface EncryptionBenchResult {
  runs: EncRun[];
  summary: Record<'plain' | 'encrypted', { fullCpuPerGB: Summary | null; restoreCpuPerGB: Summary | null; fullWall: Summary | null; restoreWall: Summary | null; fullRss: Summary | null; restoreRss: Summary | null }>;
}

/** `runs` pairs of (plain, encrypted) full + restore of `image`. */
export async function encryptionBench(image: string, runs: number, repoRoot: string, log: (s: string) => void): Promise<EncryptionBenchResult> {
  log(`\nencryption cost: full + restore of ${(statSync(image).size / MB).toFixed(0)} MB, plain vs encrypted, ${runs} run(s) each`);
  const all: EncRun[] = [];
  for (let i = 0; i < runs; i++) for (const enc of [false, true]) all.push(await oneRun(image, enc, repoRoot, log));
  const gb = statSync(image).size / 1e9;
  const of = (enc: boolean) => {
    const rs = all.filter((r) => r.encrypted === enc);
    return {
      fullCpuPerGB: summarize(rs.map((r) => r.full.cpu / gb)),
      restoreCpuPerGB: summarize(rs.map((r) => r.restore.cpu / gb)),
      fullWall: summarize(rs.map((r) => r.full.wall)),
      restoreWall: summarize(rs.map((r) => r.restore.wall)),
      fullRss: summarize(rs.map((r) => r.full.peakRss)),
      restoreRss: summarize(rs.map((r) => r.restore.peakRss)),
    };
  };
  const failed = all.filter((r) => !r.identical).length;
  if (failed > 0) throw new Error(`${failed} restore(s) were not byte-identical to the source image`);
  return { runs: all, summary: { plain: of(false), encrypted: of(true) } };
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const argv = process.argv.slice(2);
  let runs = 2;
  let image = join(repoRoot, 'bench-data', 'disk-2048MiB.img');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--image') image = resolve(argv[++i]!);
    else throw new Error(`unknown argument ${argv[i]} (--runs N, --image PATH)`);
  }
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const r = await encryptionBench(image, runs, repoRoot, log);
  const m = (s: Summary | null, scale = 1, d = 2) => (s ? `${(s.median / scale).toFixed(d)} (${(s.min / scale).toFixed(d)}–${(s.max / scale).toFixed(d)})` : '–');
  for (const k of ['plain', 'encrypted'] as const) {
    const x = r.summary[k];
    log(`${k.padEnd(9)} full ${m(x.fullWall)} s, ${m(x.fullCpuPerGB)} CPU-s/GB, RSS ${m(x.fullRss, MiB, 0)} MiB | restore ${m(x.restoreWall)} s, ${m(x.restoreCpuPerGB)} CPU-s/GB, RSS ${m(x.restoreRss, MiB, 0)} MiB`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
