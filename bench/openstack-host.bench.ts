/**
 * Where an incremental of a libvirt server goes on the loopback OpenStack (issue 12 target:
 * "Incremental of a libvirt server (2 GiB root disk, 1 % changed) ≤ 1 s end to end, most of
 * it OpenStack API calls"). A server booted on the stack's libvirt host oib-kvm from a 64 MiB
 * image with a 2 GiB root disk, protected by an in-process Lifeboat whose node name is
 * oib-kvm (the compute-host data path): one full, then `--runs` incrementals, each after 1 %
 * of the disk (41 × 512 KiB guest writes through the QEMU monitor; not timed) was changed.
 * Each incremental prints: POST → seen available (wall), and the steps from the service log
 * (API + pickup + routing, open, copy, manifest, end, DB), the time spent in OpenStack calls,
 * and every virsh call. Skips with a message when the stack or its libvirt host is not up.
 *
 *   node dist/bench/openstack-host.bench.js [--runs N (3)]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { guestWrite, KVM_HOST, kvmHostSkip, kvmWorkerEnv, OsFixture, startOsLifeboat, tokenOf, workloadBody, type OsLifeboat, type OsProject, type OsUser } from '../test/openstack.js';
import type { OpenStackPlatform } from '../src/platform/openstack/openstack.platform.js';
import { libvirtBreakdown, type ClientTimes } from './libvirt-breakdown.js';

const MiB = 1 << 20;
const ROOT_GIB = 2;
const WRITES = 41; // × 512 KiB = 20.5 MiB = 1 % of 2 GiB
const WRITE = 512 * 1024;

function parseRuns(argv: string[]): number {
  const i = argv.indexOf('--runs');
  const v = i >= 0 ? Number(argv[i + 1]) : 3;
  if (!Number.isInteger(v) || v <= 0) throw new Error('--runs needs a positive integer');
  return v;
}

const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

/** Sums the time this process spent in OpenStack calls (the platform's session) while `fn` runs. */
function countOpenStackCalls(platform: OpenStackPlatform): { reset(): void; read(): { n: number; ms: number } } {
  const session = platform.api.session;
  const call = session.call.bind(session);
  let n = 0;
  let ms = 0;
  session.call = (async (...args: Parameters<typeof call>) => {
    const t0 = performance.now();
    try {
      return await call(...args);
    } finally {
      n++;
      ms += performance.now() - t0;
    }
  }) as typeof session.call;
  return {
    reset: () => void ((n = 0), (ms = 0)),
    read: () => ({ n, ms: Math.round(ms) }),
  };
}

/** POSTs a snapshot and polls (every 20 ms: this is the bench's clock, not the service's) until it ends. */
async function snapshot(os: OsLifeboat, token: string, project: string, wid: string, type: 'full' | 'incremental'): Promise<{ id: string; times: ClientTimes; status: string; error: string }> {
  const posted = Date.now();
  const r = await os.api(token, 'POST', `/v1/${project}/workloads/${wid}${type === 'full' ? '?full=1' : ''}`, { snapshot: { name: type, snapshot_type: type } });
  const answered = Date.now();
  if (r.status !== 200) throw new Error(`snapshot refused: ${r.status} ${JSON.stringify(r.json)}`);
  const id = r.json.snapshot.id as string;
  for (;;) {
    const s = (await os.api(token, 'GET', `/v1/${project}/snapshots/${id}`)).json.snapshot;
    if (['available', 'error', 'cancelled'].includes(s.status)) return { id, times: { posted, answered, seen: Date.now() }, status: s.status, error: s.error_msg ?? '' };
    await sleep(20);
  }
}

async function main(): Promise<void> {
  const runs = parseRuns(process.argv.slice(2));
  const skip = await kvmHostSkip();
  if (skip) {
    process.stdout.write(`openstack-host bench skipped: ${skip}\n`);
    return;
  }
  const f = new OsFixture();
  const work = mkdtempSync(join(tmpdir(), `${f.run}-bench-`));
  const logPath = join(work, 'lifeboat.log');
  let os: OsLifeboat | null = null;
  let scratch: string | null = null;
  try {
    const svc: OsUser = await f.serviceUser();
    const p: OsProject = await f.project('bench');
    const member = await f.user('member', p, ['member']);
    const ops = f.sessionOf(await f.user('ops', p, ['admin', 'member']), p);
    const image = await f.image(randomBytes(64 * MiB));
    const flavor = await f.flavor({ ram: 128, disk: ROOT_GIB });
    const server = (await f.activeServer(ops, { name: 'bench', imageRef: image, flavorRef: flavor.id, networks: 'none', availability_zone: `nova:${KVM_HOST}` })).id;
    const worker = kvmWorkerEnv(f.run);
    scratch = worker.scratchDir;
    os = await startOsLifeboat(svc, worker.env, { log: pino({ level: 'info' }, pino.destination({ dest: logPath, sync: true })) });
    const calls = countOpenStackCalls(os.lb.platform as OpenStackPlatform);
    const token = await tokenOf(member, p);
    const made = await os.api(token, 'POST', `/v1/${p.id}/workloads`, workloadBody([server]));
    const wid = made.json.workload.id as string;
    for (;;) {
      if ((await os.api(token, 'GET', `/v1/${p.id}/workloads/${wid}`)).json.workload.status === 'available') break;
      await sleep(200);
    }
    const full = await snapshot(os, token, p.id, wid, 'full');
    if (full.status !== 'available') throw new Error(`full snapshot ${full.status}: ${full.error}`);
    process.stdout.write(`openstack-host bench: ${ROOT_GIB} GiB root disk on ${KVM_HOST}, ${WRITES} × ${WRITE / 1024} KiB changed per incremental; full ${full.times.seen - full.times.posted} ms (load ${load()})\n`);
    const walls: number[] = [];
    for (let i = 0; i < runs; i++) {
      const span = Math.floor((ROOT_GIB * 1024 * MiB) / WRITES);
      for (let w = 0; w < WRITES; w++) guestWrite(server, 0, 0x10 + ((i * WRITES + w) % 0xe0), `${w * span + (i % 4) * WRITE}`, `${WRITE}`);
      calls.reset();
      const inc = await snapshot(os, token, p.id, wid, 'incremental');
      if (inc.status !== 'available') throw new Error(`incremental ${inc.status}: ${inc.error}`);
      const c = calls.read();
      const wall = inc.times.seen - inc.times.posted;
      walls.push(wall);
      await sleep(50); // the log line trails the API answer by a moment
      process.stdout.write(`  incremental ${i + 1}: ${wall} ms (load ${load()}); OpenStack calls ${c.n} in ${c.ms} ms\n    ${libvirtBreakdown(logPath, inc.id, inc.times) ?? '(no breakdown in the log)'}\n`);
    }
    const sorted = [...walls].sort((a, b) => a - b);
    process.stdout.write(`  incremental wall: min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms (target ≤ 1000 ms)\n`);
  } finally {
    await os?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    const left = await f.cleanup();
    if (left.length > 0) process.stderr.write(`openstack-host bench: could not remove ${left.join('; ')}\n`);
  }
}

await main();
