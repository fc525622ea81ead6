/**
 * The libvirt case of `npm run bench` (issue 11): a running domain (TCG unless /dev/kvm works
 * for the daemon's user; no guest OS) whose 2 GiB qcow2 disk is the benchmark image converted
 * with `qemu-img convert` (holes stay unallocated), on a private libvirtd (test/libvirtd.ts).
 * Through a real `lifeboat serve` with LIFEBOAT_PLATFORM=libvirt: a full snapshot, 1 % of the
 * disk overwritten by scattered 64 KiB guest writes through the QEMU monitor (HMP qemu-io, a
 * distinct byte pattern each; not timed), an incremental, and a selective restore of the
 * incremental to a new domain, checked with `qemu-img compare` against the source disk.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLibvirtd, testDomainXml, type Libvirtd } from '../test/libvirtd.js';
import { cpuSeconds, flushDirtyPages, machineCpuSeconds, MiB, now, removeDir, run, summarize, trackDir, type Summary } from './lib.js';
import { prepareHome, Service } from './service.js';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { VirshShell } from '../src/platform/libvirt/virsh-shell.js';
import { libvirtBreakdown, type ClientTimes } from './libvirt-breakdown.js';

export interface LibvirtRun {
  full: number;
  incr1: number;
  /** The next incrementals in the same service, each after another 1 % of writes. */
  later: number[];
  restore: number;
  restoreIdentical: boolean;
  writes: number;
}

export interface LibvirtBenchResult {
  runs: LibvirtRun[];
  full: Summary | null;
  incr1: Summary | null;
  /** Every later incremental of every run. */
  later: Summary | null;
  restore: Summary | null;
  domainType: string;
}

const W = 64 * 1024;

/** `count` non-overlapping 4 KiB-aligned 64 KiB offsets in `size` bytes (seeded: the same every run). */
function scatteredOffsets(size: number, count: number, seed: number): number[] {
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31), x / 2 ** 31);
  const taken = new Set<number>();
  const out: number[] = [];
  while (out.length < count) {
    const slot = Math.floor(rnd() * (size / 4096 - W / 4096));
    const blocks = Array.from({ length: W / 4096 }, (_, i) => slot + i);
    if (blocks.some((b) => taken.has(b))) continue;
    for (const b of blocks) taken.add(b);
    out.push(slot * 4096);
  }
  return out.sort((a, b) => a - b);
}

async function virsh(lv: Libvirtd, ...args: string[]): Promise<string> {
  return (await run('virsh', ['-q', '-c', lv.uri, ...args])).stdout;
}

export async function libvirtBench(image: string, sizeMiB: number, runs: number, incrementals: number, repoRoot: string, log: (s: string) => void): Promise<LibvirtBenchResult> {
  const lv = await startLibvirtd();
  // Guest writes through one virsh shell: ~2 ms each instead of a virsh process (~27 ms).
  const shell = new VirshShell(lv.uri);
  const dom = `lb-bench-${randomBytes(3).toString('hex')}`;
  try {
    const disk = join(lv.dataDir, 'bench.qcow2');
    await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', image, disk]);
    lv.own(disk);
    // QEMU's user must write the NBD socket and scratch files, and open the restored disks.
    const scratch = join(lv.dataDir, 'scratch');
    for (const dir of [scratch, join(lv.dataDir, 'restored')]) {
      mkdirSync(dir, { mode: 0o750 });
      lv.own(dir);
    }
    writeFileSync(join(lv.dataDir, 'dom.xml'), testDomainXml(dom, lv.domainType, disk));
    await virsh(lv, 'define', join(lv.dataDir, 'dom.xml'));
    await virsh(lv, 'start', dom);
    const uuid = (await virsh(lv, 'domuuid', dom)).trim();
    log(`\nlibvirt: domain ${dom} (${lv.domainType === 'kvm' ? 'KVM' : 'TCG'}), ${sizeMiB} MiB qcow2 disk from the bench image`);
    const out: LibvirtRun[] = [];
    for (let i = 0; i < runs; i++) out.push(await libvirtRun({ lv, shell, dom, uuid, disk, scratch, sizeMiB, seed: i + 1, incrementals, repoRoot, log }));
    return { runs: out, full: summarize(out.map((r) => r.full)), incr1: summarize(out.map((r) => r.incr1)), later: summarize(out.flatMap((r) => r.later)), restore: summarize(out.map((r) => r.restore)), domainType: lv.domainType };
  } finally {
    await shell.close();
    await virsh(lv, 'destroy', dom).catch(() => undefined);
    await virsh(lv, 'undefine', dom, '--checkpoints-metadata').catch(() => undefined);
    await lv.stop();
  }
}

interface RunContext {
  lv: Libvirtd;
  shell: VirshShell;
  /** Incrementals per run (each after 1 % of guest writes), ≥ 1. */
  incrementals: number;
  dom: string;
  uuid: string;
  disk: string;
  scratch: string;
  sizeMiB: number;
  seed: number;
  repoRoot: string;
  log: (s: string) => void;
}

/** The step breakdown of a snapshot from the service log (the log line may trail the API by a moment). */
async function breakdownOf(logPath: string, snapshotId: string, times: ClientTimes): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const b = libvirtBreakdown(logPath, snapshotId, times);
    if (b) return b;
    await sleep(20);
  }
  return '(no breakdown: the service log has no timings for this snapshot)';
}

async function libvirtRun(c: RunContext): Promise<LibvirtRun> {
  c.log(`libvirt run ${c.seed}`);
  const home = trackDir(mkdtempSync(join(tmpdir(), 'lifeboat-bench-lv-')));
  let svc: Service | null = null;
  try {
    const base = prepareHome(home, join(home, 'unused.img'));
    const h = { ...base, vm: { ...base.vm, id: c.uuid } };
    const env = { LIFEBOAT_LOG_LEVEL: 'info', LIFEBOAT_PLATFORM: 'libvirt', LIFEBOAT_LIBVIRT_URI: c.lv.uri, LIFEBOAT_LIBVIRT_SCRATCH_DIR: c.scratch, LIFEBOAT_RESTORE_DIR: join(c.lv.dataDir, 'restored') };
    await run(process.execPath, [join(c.repoRoot, 'dist/src/main.js'), 'libvirt-assign', c.uuid, h.projectId], { env: { ...process.env, LIFEBOAT_HOME: home, ...env } });
    svc = await Service.start(h, c.repoRoot, env);
    const s = svc;
    const wid = await s.createWorkload();
    const qemuPid = qemuPidOf(c.dom);
    const snapshot = async (label: string, full: boolean) => {
      await flushDirtyPages();
      const cpu0 = cpuNow(s.pid, qemuPid);
      const t0 = now();
      const posted = Date.now();
      const id = (await s.expect('POST', `/workloads/${wid}${full ? '?full=1' : ''}`, { snapshot: { name: label } }, [200, 202])).json.snapshot.id as string;
      const answered = Date.now();
      const d = await s.pollStatus(`/snapshots/${id}`, (j) => j.snapshot.status, ['available', 'error'], 30 * 60_000);
      const wall = (now() - t0) / 1000;
      const times: ClientTimes = { posted, answered, seen: Date.now() };
      if (d.snapshot.status !== 'available') throw new Error(`libvirt ${label}: ${d.snapshot.error_msg}\n${s.logTail()}`);
      c.log(`  ${label.padEnd(24)} ${wall.toFixed(3)} s  (${d.snapshot.snapshot_type}${d.snapshot.warning_msg ? `; ${d.snapshot.warning_msg}` : ''}; load ${loadavg()[0]!.toFixed(1)})`);
      c.log(`    ${await breakdownOf(s.logPath, id, times)}`);
      c.log(`    CPU: ${cpuSpent(cpu0, cpuNow(s.pid, qemuPid))}`);
      return { id, wall };
    };
    const full = await snapshot('full snapshot', true);
    const writes = Math.max(1, Math.round((c.sizeMiB * MiB) / 100 / W));
    const guestWrites = async (seed: number) => {
      const tw = now();
      for (const [k, off] of scatteredOffsets(c.sizeMiB * MiB, writes, seed).entries()) {
        const r = await c.shell.exec(['qemu-monitor-command', c.dom, '--hmp', `qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -P ${((k + seed) % 255) + 1} ${off} ${W}"`], 30_000);
        if (r.failed || r.stdout.trim() !== '') throw new Error(`guest write at ${off} failed: ${r.stdout}${r.stderr}`);
      }
      c.log(`  (${writes} guest writes of 64 KiB through the monitor, ${((now() - tw) / 1000).toFixed(1)} s, not timed)`);
    };
    // The first incremental runs code the full never ran, and V8 is still compiling the hot
    // paths during the next ones: the later incrementals are what a service that has been up
    // for a while pays.
    const incrs: { id: string; wall: number }[] = [];
    for (let k = 0; k < c.incrementals; k++) {
      await guestWrites(c.seed + 1000 * k);
      incrs.push(await snapshot(k === 0 ? 'incremental 1 %' : `incremental 1 % #${k + 1}`, false));
    }
    const incr = incrs[incrs.length - 1]!;

    await flushDirtyPages();
    const t0 = now();
    const body = { restore: { options: { type: 'openstack', oneclickrestore: false, restore_type: 'selective', openstack: { instances: [{ id: c.uuid, include: true, name: `${c.dom}-r${c.seed}`, vdisks: [] }] } } } };
    const rid = (await s.expect('POST', `/workloads/${wid}/snapshots/${incr.id}/restores`, body, [200, 202])).json.restore.id as string;
    const r = await s.pollStatus(`/restores/${rid}`, (j) => j.restore.status, ['available', 'error'], 30 * 60_000);
    const restoreWall = (now() - t0) / 1000;
    if (r.restore.status !== 'available') throw new Error(`libvirt restore: ${r.restore.error_msg}\n${s.logTail()}`);
    const newId = r.restore.instances[0].id as string;
    const restoredDisk = (await virsh(c.lv, 'domblklist', newId, '--details'))
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((x) => x[2] === 'vda')?.[3];
    // The source had no write since the incremental: the live disk is the snapshot's state.
    const cmp = restoredDisk ? await run('qemu-img', ['compare', '-U', '-q', c.disk, restoredDisk], { allowFail: true }) : null;
    const identical = cmp?.code === 0;
    c.log(`  ${'restore (selective)'.padEnd(24)} ${restoreWall.toFixed(3)} s  (${identical ? 'qemu-img compare: identical to the source' : 'NOT identical to the source'})`);
    await virsh(c.lv, 'undefine', newId).catch(() => undefined);
    if (restoredDisk) rmSync(restoredDisk, { force: true });
    return { full: full.wall, incr1: incrs[0]!.wall, later: incrs.slice(1).map((x) => x.wall), restore: restoreWall, restoreIdentical: identical, writes };
  } finally {
    await svc?.stop();
    removeDir(home);
  }
}

/** The pid of the QEMU that runs domain `name` (its command line carries `guest=<name>`), or null. */
function qemuPidOf(name: string): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.startsWith(`guest=${name},`) || a === `guest=${name}`)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

interface CpuMark {
  service: number | null;
  qemu: number | null;
  machine: { busy: number; total: number } | null;
}

function cpuNow(servicePid: number, qemuPid: number | null): CpuMark {
  return { service: cpuSeconds(servicePid), qemu: qemuPid === null ? null : cpuSeconds(qemuPid), machine: machineCpuSeconds() };
}

/** Where a step's CPU went: the service (all its threads), the domain's QEMU (NBD serving, vCPU), the whole machine. */
function cpuSpent(a: CpuMark, b: CpuMark): string {
  const d = (x: number | null, y: number | null) => (x === null || y === null ? '?' : (y - x).toFixed(2));
  const busy = a.machine && b.machine ? (b.machine.busy - a.machine.busy).toFixed(2) : '?';
  return `service ${d(a.service, b.service)} s, QEMU ${d(a.qemu, b.qemu)} s, machine busy ${busy} s`;
}
