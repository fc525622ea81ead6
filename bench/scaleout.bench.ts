/**
 * Scale-out benchmark (issue 14 targets), through the real service:
 *   1. full snapshot of one disk image to an S3 target (s3rver, or LIFEBOAT_TEST_S3) vs a
 *      directory target: seconds each, the ratio, and the service's peak RSS while uploading to S3;
 *   2. snapshot throughput of N workloads (one small disk each, all started at once) with one
 *      worker process vs two (an `all` process plus a `--role worker` one on the same SQLite
 *      store and directory target).
 *   npm run build && node dist/bench/scaleout.bench.js [--size MiB=2048] [--runs N=1] [--workloads N=20] [--wsize MiB=64]
 *     [--skip-s3] [--skip-workers] [--s3-buffer-mib N]
 * LIFEBOAT_BENCH_CPU_PROF=<dir> writes CPU profiles of the services and of s3rver there (.cpuprofile).
 * Each full snapshot reports wall time, the CPU seconds of the service process and of s3rver (a
 * JS server on the same cores) over it, and the service's peak RSS. Each throughput run reports
 * the CPU seconds of every service process and how many cores the whole machine was busy over
 * it: a run whose processes already use (nearly) every core cannot gain from a second worker,
 * and CPU-s per snapshot that stays flat from one worker to two shows the work scales.
 * The machine's load is printed before and after: numbers from a busy box are only indicative.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freshPrefix, startTestS3, testBackend, type TestS3 } from '../src/backend/s3/s3.testing.js';
import { cpuSeconds, machineCpuSeconds, MiB, now, readProcStatus, RssSampler, run, trackChild } from './lib.js';
import { prepareHome, Service } from './service.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The product brief's bench scripts: beside the checkout (../shared) or beside a worktree folder (../../shared).
const sharedBench = [resolve(repoRoot, '../shared/bench'), resolve(repoRoot, '../../shared/bench')].find((d) => existsSync(d)) ?? resolve(repoRoot, '../shared/bench');
const dataDir = join(repoRoot, 'bench-data');
const log = (s: string) => process.stdout.write(`${s}\n`);

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
  if (!(v > 0)) throw new Error(`--${name} must be a positive number`);
  return v;
}

/** bench-data/disk-<size>MiB.img from make-disk.sh (seed 42), built once and reused (as run.ts). */
async function image(sizeMiB: number): Promise<string> {
  mkdirSync(dataDir, { recursive: true });
  const img = join(dataDir, `disk-${sizeMiB}MiB.img`);
  if (existsSync(img) && statSync(img).size === sizeMiB * MiB) return img;
  const tmp = `${img}.building`;
  await run('bash', [join(sharedBench, 'make-disk.sh'), tmp, String(sizeMiB), '42']);
  renameSync(tmp, img);
  return img;
}

/** Seconds from the snapshot POST to `available`. */
async function fullSnapshot(svc: Service, wid: string): Promise<number> {
  const t = now();
  const r = await svc.expect('POST', `/workloads/${wid}?full=1`, { snapshot: { name: 'bench' } }, [200]);
  const s = await svc.pollStatus(`/snapshots/${r.json.snapshot.id}`, (j) => j.snapshot.status, ['available', 'error'], 3600_000, 100);
  if (s.snapshot.status !== 'available') throw new Error(`snapshot failed: ${s.snapshot.error_msg}`);
  return (now() - t) / 1000;
}

/** One full snapshot: wall seconds, CPU seconds of the service and of s3rver over it, peak RSS. */
interface FullRun {
  wall: number;
  ourCpu: number;
  serverCpu: number | null;
  /** CPU seconds of s3rver's main thread alone: its JS (HTTP, MD5, stream plumbing) runs there, one request after another. */
  serverMainCpu: number | null;
  peakRss: number;
  /** RSS of the idle service just before the snapshot. */
  startRss: number;
  load: number;
}

/** A fresh home and service on `target` ('fs': a directory; else the S3 server), one full snapshot. */
async function timedFull(img: string, s3: TestS3 | null, prefix: string): Promise<FullRun> {
  const home = mkdtempSync(join(tmpdir(), 'lifeboat-scaleout-bench-'));
  try {
    const disk = join(home, 'disk.img');
    await run('cp', ['--sparse=always', img, disk]);
    const h = prepareHome(home, disk);
    const env: Record<string, string> = s3
      ? { LIFEBOAT_TARGET: `s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(s3.endpoint)}${bufferArg()}`, AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey }
      : {};
    const svc = await Service.start(h, repoRoot, env, profileArgs(s3 ? 'service-s3' : 'service-fs'));
    try {
      const wid = await svc.createWorkload();
      const startRss = readProcStatus(svc.pid)?.rss ?? 0;
      const rss = new RssSampler(svc.pid);
      rss.mark();
      const load = loadavg()[0]!;
      const cpu0 = cpuSeconds(svc.pid) ?? 0;
      const srv0 = s3?.pid ? cpuSeconds(s3.pid) : null;
      const main0 = s3?.pid ? cpuSeconds(s3.pid, s3.pid) : null;
      const wall = await fullSnapshot(svc, wid);
      const ourCpu = (cpuSeconds(svc.pid) ?? 0) - cpu0;
      const serverCpu = s3?.pid && srv0 !== null ? (cpuSeconds(s3.pid) ?? 0) - srv0 : null;
      const serverMainCpu = s3?.pid && main0 !== null ? (cpuSeconds(s3.pid, s3.pid) ?? 0) - main0 : null;
      const peakRss = rss.peak();
      rss.stop();
      return { wall, ourCpu, serverCpu, serverMainCpu, peakRss, startRss, load };
    } finally {
      await svc.stop();
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** `--s3-buffer-mib N`: the S3 target's upload_buffer_mib (else its default). */
function bufferArg(): string {
  const i = process.argv.indexOf('--s3-buffer-mib');
  return i >= 0 ? `&upload_buffer_mib=${Number(process.argv[i + 1])}` : '';
}

/** With LIFEBOAT_BENCH_CPU_PROF=<dir>: node options writing a CPU profile of the process into <dir>/<name>. */
function profileArgs(name: string): string[] {
  const dir = process.env.LIFEBOAT_BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, name)}`] : [];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function describeRun(kind: string, r: FullRun): string {
  const server = r.serverCpu === null ? '' : `, s3rver CPU ${r.serverCpu.toFixed(1)} s (main thread ${(r.serverMainCpu ?? 0).toFixed(1)} s)`;
  return `  ${kind}: ${r.wall.toFixed(1)} s wall, service CPU ${r.ourCpu.toFixed(1)} s${server}, peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB (idle ${(r.startRss / MiB).toFixed(0)}) (load ${r.load.toFixed(1)})`;
}

/** `runs` rounds of fs then S3 (interleaved, so a burst of other load hits both); medians judged. */
async function s3VersusFs(sizeMiB: number, runs: number): Promise<void> {
  const img = await image(sizeMiB);
  const s3 = await startTestS3(profileArgs('s3rver'));
  const prefix = freshPrefix(s3, 'bench');
  const fs: FullRun[] = [];
  const s3runs: FullRun[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      fs.push(await timedFull(img, null, prefix));
      log(describeRun('fs', fs.at(-1)!));
      s3runs.push(await timedFull(img, s3, `${prefix}/r${i}`));
      log(describeRun('s3', s3runs.at(-1)!));
      await testBackend(s3, { prefix: `${prefix}/r${i}` }).cleanup();
    }
  } finally {
    await s3.close();
  }
  const ratio = median(s3runs.map((r) => r.wall)) / median(fs.map((r) => r.wall));
  const peakRss = Math.max(...s3runs.map((r) => r.peakRss));
  // What the S3 run cannot beat on this machine: the CPU of the service and of s3rver spread over
  // every core, and s3rver's main thread, which handles the bytes of every request one at a time.
  const fsWall = median(fs.map((r) => r.wall));
  const cpuFloor = median(s3runs.map((r) => (r.ourCpu + (r.serverCpu ?? 0)) / availableParallelism()));
  const serialFloor = median(s3runs.map((r) => r.serverMainCpu ?? 0));
  // An external server's CPU is not seen (no pid): no floor then.
  if (s3runs.every((r) => r.serverCpu !== null)) log(`S3 floor on ${availableParallelism()} cores (medians): (service + s3rver CPU) / cores ${cpuFloor.toFixed(1)} s = ${(cpuFloor / fsWall).toFixed(2)}× fs; s3rver main thread ${serialFloor.toFixed(1)} s = ${(serialFloor / fsWall).toFixed(2)}× fs`);
  log(`full snapshot of ${sizeMiB} MiB (median of ${runs}): fs ${median(fs.map((r) => r.wall)).toFixed(1)} s, s3rver ${median(s3runs.map((r) => r.wall)).toFixed(1)} s → S3/fs ${ratio.toFixed(2)}× (target ≤ 1.5×: ${ratio <= 1.5 ? 'met' : 'NOT met'}); worst peak RSS while uploading to S3 ${(peakRss / MiB).toFixed(0)} MiB (target ≤ 256: ${peakRss <= 256 * MiB ? 'met' : 'NOT met'})`);
}

/** Starts `serve --role worker` beside `svc` (same home, store, target); resolves once it runs. */
async function extraWorker(svc: Service): Promise<{ pid: number; stop: () => void }> {
  const child = trackChild(
    spawn(process.execPath, [join(repoRoot, 'dist/src/main.js'), 'serve', '--role', 'worker'], {
      env: { ...process.env, LIFEBOAT_HOME: svc.h.home, LIFEBOAT_LISTEN: '127.0.0.1:0', LIFEBOAT_DB: svc.h.dbUrl, LIFEBOAT_TARGET: `file://${svc.h.targetDir}`, LIFEBOAT_INVENTORY: join(svc.h.home, 'inventory.json'), LIFEBOAT_IDENTITY: join(svc.h.home, 'identity.json'), LIFEBOAT_NODE_NAME: 'bench-worker-2', LIFEBOAT_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  await new Promise<void>((res, rej) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('lifeboat worker running') && res());
    child.once('exit', (c) => rej(new Error(`extra worker exited (${c})`)));
  });
  return { pid: child.pid!, stop: () => child.kill('SIGTERM') };
}

/** One throughput run: snapshots per second, CPU seconds of each service process and of the whole machine over it. */
interface ThroughputRun {
  rate: number;
  wall: number;
  processCpu: number[];
  machineBusy: number | null;
  load: number;
}

function describeThroughput(workers: number, r: ThroughputRun, n: number): string {
  const per = r.processCpu.map((c) => `${c.toFixed(1)}`).join(' + ');
  const busy = r.machineBusy === null ? '' : `, machine busy ${(r.machineBusy / r.wall).toFixed(2)} of ${availableParallelism()} cores`;
  const total = r.processCpu.reduce((a, b) => a + b, 0);
  return `  ${workers} worker(s): ${r.rate.toFixed(2)}/s (${r.wall.toFixed(2)} s), service CPU ${per} s (${(total / n).toFixed(3)} CPU-s per snapshot, ${(total / r.wall).toFixed(2)} cores)${busy} (load ${r.load.toFixed(1)})`;
}

async function workerThroughput(workers: 1 | 2, n: number, wsizeMiB: number): Promise<ThroughputRun> {
  const img = await image(wsizeMiB);
  const home = mkdtempSync(join(tmpdir(), 'lifeboat-scaleout-bench-'));
  try {
    const h = prepareHome(home, join(home, 'disk0.img'));
    const vms = [];
    for (let i = 0; i < n; i++) {
      const disk = join(home, `disk${i}.img`);
      await run('cp', ['--sparse=always', img, disk]);
      vms.push({ id: randomUUID(), name: `vm${i}`, project_id: h.projectId, flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 }, disks: [{ device: '/dev/vda', path: disk, format: 'raw' }] });
    }
    writeFileSync(join(home, 'inventory.json'), JSON.stringify({ instances: vms }));
    const svc = await Service.start(h, repoRoot);
    const extra = workers === 2 ? await extraWorker(svc) : null;
    const pids = [svc.pid, ...(extra ? [extra.pid] : [])];
    try {
      const wids: string[] = [];
      for (const vm of vms) {
        const r = await svc.expect('POST', '/workloads', { workload: { name: vm.name, instances: [{ 'instance-id': vm.id }] } }, [202]);
        wids.push(r.json.workload.id as string);
      }
      for (const w of wids) await svc.pollStatus(`/workloads/${w}`, (j) => j.workload.status, ['available'], 60_000, 50);
      const load = loadavg()[0]!;
      const cpu0 = pids.map((p) => cpuSeconds(p) ?? 0);
      const m0 = machineCpuSeconds();
      const t = now();
      const sids = await Promise.all(wids.map(async (w) => (await svc.expect('POST', `/workloads/${w}?full=1`, { snapshot: { name: 'b' } }, [200])).json.snapshot.id as string));
      for (const s of sids) {
        const x = await svc.pollStatus(`/snapshots/${s}`, (j) => j.snapshot.status, ['available', 'error'], 3600_000, 100);
        if (x.snapshot.status !== 'available') throw new Error(`snapshot failed: ${x.snapshot.error_msg}`);
      }
      const wall = (now() - t) / 1000;
      const m1 = machineCpuSeconds();
      const processCpu = pids.map((p, i) => (cpuSeconds(p) ?? 0) - cpu0[i]!);
      return { rate: n / wall, wall, processCpu, machineBusy: m0 && m1 ? m1.busy - m0.busy : null, load };
    } finally {
      extra?.stop();
      await svc.stop();
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const size = arg('size', 2048);
  const n = arg('workloads', 20);
  const wsize = arg('wsize', 64);
  const runs = arg('runs', 1);
  log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  if (!process.argv.includes('--skip-s3')) await s3VersusFs(size, runs);
  if (!process.argv.includes('--skip-workers')) {
    // Interleaved rounds, as for S3 vs fs; medians judged.
    const ones: ThroughputRun[] = [];
    const twos: ThroughputRun[] = [];
    for (let i = 0; i < runs; i++) {
      ones.push(await workerThroughput(1, n, wsize));
      log(describeThroughput(1, ones.at(-1)!, n));
      twos.push(await workerThroughput(2, n, wsize));
      log(describeThroughput(2, twos.at(-1)!, n));
    }
    const one = median(ones.map((r) => r.rate));
    const two = median(twos.map((r) => r.rate));
    log(`${n} workloads × ${wsize} MiB, full snapshots started at once (median of ${runs}): 1 worker ${one.toFixed(2)}/s, 2 workers ${two.toFixed(2)}/s → ${(two / one).toFixed(2)}× (target ≥ 1.5×: ${two / one >= 1.5 ? 'met' : 'NOT met'})`);
  }
  log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
