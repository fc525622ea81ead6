/**
 * Scale-out benchmark (issue 14 targets), through the real service:
 *   1. full snapshot of one disk image to an S3 target (s3rver, or LIFEBOAT_TEST_S3) vs a
 *      directory target: seconds each, the ratio, and the service's peak RSS while uploading to S3;
 *   2. snapshot throughput of N workloads (one small disk each, all started at once) with one
 *      worker process vs two (an `all` process plus a `--role worker` one on the same SQLite
 *      store and directory target).
 *   npm run build && node dist/bench/scaleout.bench.js [--size MiB=2048] [--workloads N=20] [--wsize MiB=64]
 * The machine's load is printed before and after: numbers from a busy box are only indicative.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freshPrefix, startTestS3, testBackend } from '../src/backend/s3/s3.testing.js';
import { MiB, now, RssSampler, run, trackChild } from './lib.js';
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

async function s3VersusFs(sizeMiB: number): Promise<void> {
  const img = await image(sizeMiB);
  const s3 = await startTestS3();
  const prefix = freshPrefix(s3, 'bench');
  const results: Record<string, number> = {};
  let peakRss = 0;
  try {
    for (const kind of ['fs', 's3'] as const) {
      const home = mkdtempSync(join(tmpdir(), 'lifeboat-scaleout-bench-'));
      try {
        const disk = join(home, 'disk.img');
        await run('cp', ['--sparse=always', img, disk]);
        const h = prepareHome(home, disk);
        const env: Record<string, string> =
          kind === 's3'
            ? { LIFEBOAT_TARGET: `s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(s3.endpoint)}`, AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey }
            : {};
        const svc = await Service.start(h, repoRoot, env);
        try {
          const wid = await svc.createWorkload();
          const rss = new RssSampler(svc.pid);
          rss.mark();
          results[kind] = await fullSnapshot(svc, wid);
          if (kind === 's3') peakRss = rss.peak();
          rss.stop();
        } finally {
          await svc.stop();
        }
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    }
  } finally {
    await testBackend(s3, { prefix }).cleanup();
    await s3.close();
  }
  const ratio = results.s3! / results.fs!;
  log(`full snapshot of ${sizeMiB} MiB: fs ${results.fs!.toFixed(1)} s, s3rver ${results.s3!.toFixed(1)} s → S3/fs ${ratio.toFixed(2)}× (target ≤ 1.5×: ${ratio <= 1.5 ? 'met' : 'NOT met'}); peak RSS while uploading to S3 ${(peakRss / MiB).toFixed(0)} MiB (target ≤ 256: ${peakRss <= 256 * MiB ? 'met' : 'NOT met'})`);
}

/** Starts `serve --role worker` beside `svc` (same home, store, target); resolves once it runs. */
async function extraWorker(svc: Service): Promise<() => void> {
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
  return () => child.kill('SIGTERM');
}

async function workerThroughput(workers: 1 | 2, n: number, wsizeMiB: number): Promise<number> {
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
    const stopExtra = workers === 2 ? await extraWorker(svc) : () => undefined;
    try {
      const wids: string[] = [];
      for (const vm of vms) {
        const r = await svc.expect('POST', '/workloads', { workload: { name: vm.name, instances: [{ 'instance-id': vm.id }] } }, [202]);
        wids.push(r.json.workload.id as string);
      }
      for (const w of wids) await svc.pollStatus(`/workloads/${w}`, (j) => j.workload.status, ['available'], 60_000, 50);
      const t = now();
      const sids = await Promise.all(wids.map(async (w) => (await svc.expect('POST', `/workloads/${w}?full=1`, { snapshot: { name: 'b' } }, [200])).json.snapshot.id as string));
      for (const s of sids) {
        const x = await svc.pollStatus(`/snapshots/${s}`, (j) => j.snapshot.status, ['available', 'error'], 3600_000, 100);
        if (x.snapshot.status !== 'available') throw new Error(`snapshot failed: ${x.snapshot.error_msg}`);
      }
      return n / ((now() - t) / 1000);
    } finally {
      stopExtra();
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
  log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await s3VersusFs(size);
  const one = await workerThroughput(1, n, wsize);
  const two = await workerThroughput(2, n, wsize);
  log(`${n} workloads × ${wsize} MiB, full snapshots started at once: 1 worker ${one.toFixed(2)}/s, 2 workers ${two.toFixed(2)}/s → ${(two / one).toFixed(2)}× (target ≥ 1.5×: ${two / one >= 1.5 ? 'met' : 'NOT met'})`);
  log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
