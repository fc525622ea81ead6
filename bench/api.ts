/**
 * API benchmark: a service whose SQLite DB holds 1,000 snapshot rows of one workload, then
 * autocannon against GET /v1/{p}/snapshots/{id} and GET /v1/{p}/snapshots (all 1,000).
 *
 * The rows: one real snapshot of a tiny VM is taken through the API (so workload, manifest and
 * metadata are real), the service is stopped, 999 copies of that row with new ids are written
 * with the project's store code (openStore + insertSnapshot), and the service is started again
 * on the same home.
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Service, prepareHome } from './service.js';

interface AcHistogram {
  average: number;
  p50: number;
  p99: number;
  max: number;
}
interface AcResult {
  requests: AcHistogram & { total: number };
  latency: AcHistogram;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AcResult>;
// autocannon ships no types; its programmatic API returns a promise when no callback is given.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadResult {
  path: string;
  connections: number;
  seconds: number;
  reqPerSec: number;
  latencyP50: number;
  latencyP99: number;
  latencyAvg: number;
  latencyMax: number;
  total: number;
  non2xx: number;
  errors: number;
  /** Bytes of one response body (sanity: the list really holds 1,000 items). */
  bodyBytes: number;
  items?: number;
}

export interface ApiBenchResult {
  snapshots: number;
  getOne: LoadResult;
  list: LoadResult;
}

async function load(svc: Service, path: string, connections: number, seconds: number): Promise<LoadResult> {
  const url = `${svc.url}${path}`;
  const headers = { 'x-auth-token': svc.token, accept: 'application/json' };
  // Warm-up (JIT, SQLite page cache, token cache), not reported.
  await autocannon({ url, headers, connections, duration: 1 });
  const r = await autocannon({ url, headers, connections, duration: seconds });
  const probe = await svc.expect('GET', path, undefined, [200]);
  return {
    path: path.replace(svc.h.projectId, '{p}'),
    connections,
    seconds,
    reqPerSec: r.requests.average,
    latencyP50: r.latency.p50,
    latencyP99: r.latency.p99,
    latencyAvg: r.latency.average,
    latencyMax: r.latency.max,
    total: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    bodyBytes: Buffer.byteLength(probe.text),
    ...(Array.isArray(probe.json?.snapshots) ? { items: (probe.json.snapshots as unknown[]).length } : {}),
  };
}

export async function apiBench(home: string, repoRoot: string, opts: { seconds: number; count: number; log: (s: string) => void }): Promise<ApiBenchResult> {
  const disk = join(home, 'tiny.img');
  const buf = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < buf.length; i += 4) buf.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(disk, buf);
  const h = prepareHome(home, disk);
  let svc = await Service.start(h, repoRoot);
  let sid: string;
  try {
    const wid = await svc.createWorkload();
    const r = await svc.expect('POST', `/workloads/${wid}?full=1`, { snapshot: { name: 'api-bench' } }, [200, 202]);
    sid = r.json.snapshot.id as string;
    const d = await svc.pollStatus(`/snapshots/${sid}`, (j) => j.snapshot.status, ['available', 'error'], 60_000);
    if (d.snapshot.status !== 'available') throw new Error(`API bench snapshot failed: ${d.snapshot.error_msg}`);
  } finally {
    await svc.stop();
  }

  // Service stopped: add count-1 rows directly into its DB (store code loaded only now).
  const { seedSnapshots } = await import('./seed.js');
  await seedSnapshots(h.dbUrl, sid, opts.count);
  opts.log(`  ${opts.count} snapshot rows in ${h.dbUrl.slice('sqlite:'.length)}`);

  svc = await Service.start(h, repoRoot);
  try {
    const getOne = await load(svc, `/v1/${h.projectId}/snapshots/${sid}`, 10, opts.seconds);
    opts.log(`  GET snapshot: ${getOne.reqPerSec.toFixed(0)} req/s, p50 ${getOne.latencyP50} ms, p99 ${getOne.latencyP99} ms (10 connections, ${getOne.non2xx} non-2xx)`);
    const list = await load(svc, `/v1/${h.projectId}/snapshots`, 1, opts.seconds);
    opts.log(`  GET list of ${list.items ?? '?'}: ${list.reqPerSec.toFixed(0)} req/s, p50 ${list.latencyP50} ms, p99 ${list.latencyP99} ms (1 connection, ${list.non2xx} non-2xx)`);
    if (list.items !== undefined && list.items !== opts.count) throw new Error(`API bench: list returned ${list.items} snapshots, expected ${opts.count}`);
    return { snapshots: opts.count, getOne, list };
  } finally {
    await svc.stop();
  }
}
