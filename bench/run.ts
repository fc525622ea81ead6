/**
 * `npm run bench`: the Lifeboat benchmark (issue 3, restore line of issue 4), measured through
 * the real service. See bench/README.md for what is measured and how.
 *
 *   node dist/bench/run.js [--runs N] [--size MiB] [--skip-peers] [--skip-api] [--api-seconds S]
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apiBench, type ApiBenchResult } from './api.js';
import { cleanupAll, cpuSeconds, dirStats, flushDirtyPages, installCleanupHandlers, MB, MiB, newFiles, now, probe, removeDir, RssSampler, run, summarize, trackDir, type Summary } from './lib.js';
import { borg, restic, runPeers, type PeerResult, type PeerTool } from './peers.js';
import { libvirtBench, type LibvirtBenchResult } from './libvirt.js';
import { encryptionBench, type EncryptionBenchResult } from './encryption.bench.js';
import { prepareHome, Service } from './service.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
// The team's shared folder next to the checkout; LIFEBOAT_BENCH_SHARED overrides it (a worktree elsewhere).
const sharedBench = process.env.LIFEBOAT_BENCH_SHARED ?? resolve(repoRoot, '../shared/bench');
const dataDir = join(repoRoot, 'bench-data');

// ---------------------------------------------------------------------------------------------
// Arguments

interface Args {
  runs: number;
  sizeMiB: number;
  skipPeers: boolean;
  skipApi: boolean;
  apiSeconds: number;
  skipLibvirt: boolean;
  skipEncryption: boolean;
  /** Only the libvirt case: no file-path runs (so no file-path ratio), peers, API or encryption. */
  onlyLibvirt: boolean;
  /** Incrementals per libvirt run: the first in the service, then the later ones. */
  libvirtIncrementals: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { runs: 3, sizeMiB: 2048, skipPeers: false, skipApi: false, apiSeconds: 10, skipLibvirt: false, skipEncryption: false, onlyLibvirt: false, libvirtIncrementals: 3 };
  const int = (flag: string, v: string | undefined) => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) <= 0) throw new Error(`${flag} needs a positive integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i] as string;
    const [flag, inline] = f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [f, undefined];
    const value = () => inline ?? argv[++i];
    if (flag === '--runs') a.runs = int(flag, value());
    else if (flag === '--size') a.sizeMiB = int(flag, value());
    else if (flag === '--skip-peers') a.skipPeers = true;
    else if (flag === '--skip-api') a.skipApi = true;
    else if (flag === '--skip-libvirt') a.skipLibvirt = true;
    else if (flag === '--skip-encryption') a.skipEncryption = true;
    else if (flag === '--only-libvirt') a.onlyLibvirt = a.skipPeers = a.skipApi = a.skipEncryption = true;
    else if (flag === '--api-seconds') a.apiSeconds = int(flag, value());
    else if (flag === '--libvirt-incrementals') a.libvirtIncrementals = int(flag, value());
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write('usage: npm run bench -- [--runs N (3)] [--size MiB (2048)] [--skip-peers] [--skip-api] [--api-seconds S (10)] [--skip-libvirt] [--skip-encryption] [--only-libvirt] [--libvirt-incrementals N (3)]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${f} (try --help)`);
  }
  if (a.sizeMiB < 2) throw new Error('--size must be at least 2 MiB');
  return a;
}

const log = (s: string) => process.stdout.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------
// The disk image

/** bench-data/disk-<size>MiB.img from make-disk.sh (seed 42), built once and reused. */
async function pristineImage(sizeMiB: number): Promise<string> {
  mkdirSync(dataDir, { recursive: true });
  const img = join(dataDir, `disk-${sizeMiB}MiB.img`);
  if (existsSync(img) && statSync(img).size === sizeMiB * MiB) {
    log(`disk image: ${img} (cached)`);
    return img;
  }
  const tmp = `${img}.building`;
  rmSync(tmp, { force: true });
  log(`disk image: building ${img} with make-disk.sh (${sizeMiB} MiB, seed 42) ...`);
  const t = now();
  const r = await run('bash', [join(sharedBench, 'make-disk.sh'), tmp, String(sizeMiB), '42']);
  log(`  ${r.stdout.trim().split('\n').join('\n  ')}  (${((now() - t) / 1000).toFixed(1)} s)`);
  renameSync(tmp, img); // only a complete image is ever reused
  return img;
}

const sparseCopy = (from: string, to: string) => run('cp', ['--sparse=always', from, to]);
const mutate1pct = (img: string) => run('bash', [join(sharedBench, 'mutate-disk.sh'), img, '1', '1']);

// ---------------------------------------------------------------------------------------------
// Lifeboat through the service

interface StepResult {
  /** POST to `available`, polled every 20 ms, seconds. */
  wall: number;
  /** Server-side time_taken of the snapshot (seconds, as the API reports it). */
  timeTaken?: number;
  snapshotType?: string;
  size?: number;
  /** Target dir growth (du: allocated bytes) and apparent bytes. */
  growth: number;
  growthApparent: number;
  /** Files in the target dir that did not exist before the step. */
  objects: number;
  /** Peak RSS of the service process during the step (VmHWM reset at the start), bytes. */
  peakRss: number;
}

interface LifeboatRun {
  idleRss: number;
  peakRss: number;
  full: StepResult;
  incr1: StepResult;
  incr0: StepResult;
  restore: (StepResult & { status: string; verified: boolean | null }) | { skipped: string };
}

async function lifeboatRun(image: string, index: number, total: number): Promise<LifeboatRun> {
  log(`\nlifeboat run ${index + 1}/${total}`);
  const home = trackDir(mkdtempSync(join(tmpdir(), 'lifeboat-bench-')));
  let svc: Service | null = null;
  let sampler: RssSampler | null = null;
  try {
    mkdirSync(join(home, 'disks'));
    const disk = join(home, 'disks', 'vda.img');
    await sparseCopy(image, disk);
    const h = prepareHome(home, disk);
    svc = await Service.start(h, repoRoot);
    const s = svc;
    const smp = (sampler = new RssSampler(s.pid, 20));
    const idleRss = smp.peak();
    const wid = await s.createWorkload();

    const measure = async (label: string, post: () => Promise<string>, poll: (id: string) => Promise<{ status: string; detail: any }>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const before = await dirStats(h.targetDir);
      await flushDirtyPages();
      smp.mark();
      const cpu0 = cpuSeconds(s.pid);
      const t0 = now();
      const id = await post();
      const { status, detail } = await poll(id);
      const wall = (now() - t0) / 1000;
      const peakRss = smp.peak();
      const cpu1 = cpuSeconds(s.pid);
      const cpu = cpu0 === null || cpu1 === null ? '?' : (cpu1 - cpu0).toFixed(2);
      const after = await dirStats(h.targetDir);
      const r = { id, status, detail, wall, peakRss, growth: after.allocated - before.allocated, growthApparent: after.apparent - before.apparent, objects: newFiles(before, after) };
      if (status !== 'skipped') log(`  ${label.padEnd(24)} ${wall.toFixed(3)} s  repo +${(r.growth / MB).toFixed(1)} MB (${r.objects} new files)  peak RSS ${(peakRss / MiB).toFixed(0)} MiB  service CPU ${cpu} s  [${status}]`);
      return r;
    };

    const snapshot = async (label: string, full: boolean, expectType: string): Promise<StepResult & { id: string }> => {
      const r = await measure(
        label,
        async () => (await s.expect('POST', `/workloads/${wid}${full ? '?full=1' : ''}`, { snapshot: { name: label } }, [200, 202])).json.snapshot.id as string,
        async (id) => {
          const d = await s.pollStatus(`/snapshots/${id}`, (j) => j.snapshot.status, ['available', 'error', 'cancelled'], 30 * 60_000);
          return { status: d.snapshot.status as string, detail: d.snapshot };
        },
      );
      if (r.status !== 'available') throw new Error(`${label}: snapshot ended ${r.status}: ${r.detail.error_msg}\n${s.logTail()}`);
      if (r.detail.snapshot_type !== expectType) log(`  WARNING: ${label} came out as ${r.detail.snapshot_type}, expected ${expectType}`);
      return { id: r.id, wall: r.wall, timeTaken: r.detail.time_taken, snapshotType: r.detail.snapshot_type, size: r.detail.size, growth: r.growth, growthApparent: r.growthApparent, objects: r.objects, peakRss: r.peakRss };
    };

    const full = await snapshot('full snapshot', true, 'full');
    const m = await mutate1pct(disk);
    log(`  (${m.stdout.trim()})`);
    const incr1 = await snapshot('incremental 1 %', false, 'incremental');
    const incr0 = await snapshot('incremental unchanged', false, 'incremental');

    // Restore of the full snapshot (last: a one-click restore may replace the VM's disk).
    let restore: LifeboatRun['restore'];
    const restorePath = `/workloads/${wid}/snapshots/${full.id}/restores`;
    const body = { restore: { name: 'r', description: 'bench', options: { type: 'openstack', oneclickrestore: true, openstack: {} } } };
    const probeRes = { status: 0, text: '' };
    const r = await measure(
      'restore of the full',
      async () => {
        const p = await s.api('POST', restorePath, body);
        probeRes.status = p.status;
        probeRes.text = p.text;
        if (p.status === 404) return '';
        if (p.status !== 200 && p.status !== 202) throw new Error(`POST ${restorePath} -> ${p.status}: ${p.text.slice(0, 500)}`);
        return (p.json?.restore?.id as string | undefined) ?? '';
      },
      async (rid) => {
        if (!rid) return { status: 'skipped', detail: null };
        const d = await s.pollStatus(`/restores/${rid}`, (j) => j.restore.status, ['available', 'error', 'cancelled'], 30 * 60_000);
        return { status: d.restore.status as string, detail: d.restore };
      },
    );
    if (probeRes.status === 404) {
      restore = { skipped: `restore endpoint answered 404 (${probeRes.text.slice(0, 120)})` };
      log(`  restore: SKIPPED — POST ${restorePath.replace(wid, '{wid}').replace(full.id, '{sid}')} answered 404 (endpoint not there yet)`);
    } else {
      if (r.status !== 'available') log(`  WARNING: restore ended ${r.status}: ${r.detail?.error_msg ?? ''}`);
      restore = { status: r.status, wall: r.wall, growth: r.growth, growthApparent: r.growthApparent, objects: r.objects, peakRss: r.peakRss, timeTaken: r.detail?.time_taken, verified: null };
      if (r.status === 'available') {
        // Outside the timing: the one-click restore made a new VM whose disk must equal the
        // pristine image (the full snapshot was taken before the 1 % mutation).
        const restored = await findFiles(join(home, 'instances'), '.raw');
        const c = restored.length === 1 ? await run('cmp', ['-s', image, restored[0] as string], { allowFail: true }) : null;
        restore.verified = c !== null && c.code === 0;
        log(`  restore check: ${restored.length} restored disk(s); ${restore.verified ? 'byte-identical to the source image' : `NOT identical to the source image (${restored.join(', ') || 'none found'})`}`);
      }
    }
    const peakRss = Math.max(full.peakRss, incr1.peakRss, incr0.peakRss, 'peakRss' in restore ? restore.peakRss : 0, smp.overall);
    return { idleRss, peakRss, full, incr1, incr0, restore };
  } finally {
    sampler?.stop();
    await svc?.stop();
    removeDir(home);
  }
}

async function findFiles(dir: string, suffix: string): Promise<string[]> {
  const st = await dirStats(dir);
  return [...st.files].filter((f) => f.endsWith(suffix)).map((f) => join(dir, f));
}

// ---------------------------------------------------------------------------------------------
// Table

interface Row {
  step: string;
  lifeboat: string;
  restic: string;
  borg: string;
  target: string;
  met: string;
}

function cell(s: Summary | null, unit: string, digits: number, scale = 1): string {
  if (!s) return '–';
  const f = (x: number) => (x / scale).toFixed(digits);
  return s.n > 1 ? `${f(s.median)} ${unit} (${f(s.min)}–${f(s.max)})` : `${f(s.median)} ${unit}`;
}

function peerCell(s: Summary | null, lb: Summary | null, unit: string, digits: number, scale = 1, ratio = true): string {
  if (!s) return '–';
  const base = `${(s.median / scale).toFixed(digits)} ${unit}`;
  if (!ratio || !lb || lb.median <= 0) return base;
  return `${base} (${(s.median / lb.median).toFixed(1)}×)`;
}

const yes = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'yes' : 'NO');

function printTable(rows: Row[]): string {
  const cols: (keyof Row)[] = ['step', 'lifeboat', 'restic', 'borg', 'target', 'met'];
  const header: Row = { step: 'step', lifeboat: 'lifeboat', restic: 'restic', borg: 'borg', target: 'target', met: 'met?' };
  const w = cols.map((c) => Math.max(header[c].length, ...rows.map((r) => r[c].length)));
  const line = (r: Row) => `| ${cols.map((c, i) => r[c].padEnd(w[i] as number)).join(' | ')} |`;
  const head = line(header);
  const sep = `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`;
  return [head, sep, ...rows.map(line)].join('\n');
}

/** The issue-11 targets of the libvirt case; the full is compared with the file-path full above. */
function libvirtRows(r: LibvirtBenchResult | null, note: string | null, fileFull: Summary | null): Row[] {
  const none = { restic: '–', borg: '–' };
  if (!r) return [{ step: 'libvirt (running domain)', lifeboat: note ?? '–', ...none, target: '', met: note?.startsWith('FAILED') ? 'NO' : 'n/a' }];
  const kind = r.domainType === 'kvm' ? 'KVM' : 'TCG';
  const ratio = r.full && fileFull ? r.full.median / fileFull.median : null;
  const bad = r.runs.filter((x) => !x.restoreIdentical).length;
  return [
    { step: `libvirt full, running domain (${kind})`, lifeboat: `${cell(r.full, 's', 2)}${ratio ? ` (${ratio.toFixed(2)}× file path)` : ''}`, ...none, target: 'within 10 % of the file-path full', met: yes(ratio === null ? null : ratio <= 1.1) },
    { step: `libvirt incremental 1 % (${r.runs[0]?.writes ?? 0} guest writes), first in the service`, lifeboat: cell(r.incr1, 's', 3), ...none, target: '≤ 0.2 s', met: yes(r.incr1 ? r.incr1.median <= 0.2 : null) },
    { step: 'libvirt incremental 1 %, the later ones', lifeboat: r.later ? cell(r.later, 's', 3) : '– (--libvirt-incrementals 1)', ...none, target: '≤ 0.2 s', met: yes(r.later ? r.later.median <= 0.2 : null) },
    { step: 'libvirt restore of the incremental', lifeboat: `${cell(r.restore, 's', 2)}${bad ? ` (${bad} NOT identical)` : ' (identical)'}`, ...none, target: 'byte-identical', met: yes(bad === 0) },
    { step: 'libvirt crash-consistency', lifeboat: 'test/libvirt-consistency.test.ts', ...none, target: 'one point in time', met: 'tested' },
  ];
}

// ---------------------------------------------------------------------------------------------

async function uptime(): Promise<string> {
  try {
    return (await run('uptime', [])).stdout.trim();
  } catch {
    return `load average: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The phases of a run, in the order main runs them; each failure is added to `errors`.

/** Lifeboat: the runs through the service (none with --only-libvirt). */
async function lifeboatRuns(args: Args, image: string): Promise<LifeboatRun[]> {
  const runs: LifeboatRun[] = [];
  for (let i = 0; i < (args.onlyLibvirt ? 0 : args.runs); i++) runs.push(await lifeboatRun(image, i, args.runs));
  return runs;
}

interface LibvirtPhase {
  libvirt: LibvirtBenchResult | null;
  /** Why there is no result (skipped, not installed, failed); null when there is one. */
  libvirtNote: string | null;
}

/** libvirt (issue 11): a running domain through the service. */
async function libvirtPhase(args: Args, image: string, errors: string[]): Promise<LibvirtPhase> {
  let libvirt: LibvirtBenchResult | null = null;
  let libvirtNote = args.skipLibvirt ? 'skipped (--skip-libvirt)' : (await probe('libvirtd', ['--version'])) ? null : 'libvirtd not installed — skipped';
  if (!libvirtNote) {
    try {
      libvirt = await libvirtBench(image, args.sizeMiB, args.runs, args.libvirtIncrementals, repoRoot, log);
    } catch (e) {
      libvirtNote = `FAILED: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
      errors.push(`libvirt: ${e instanceof Error ? e.message : String(e)}`);
      log(`  libvirt ${libvirtNote}`);
    }
  }
  return { libvirt, libvirtNote };
}

interface PeersPhase {
  tools: PeerTool[];
  /** Why a peer has no runs (skipped, not installed), by tool name. */
  peerNotes: Record<string, string>;
  peerRuns: Map<string, PeerResult[]>;
}

/** Peers: restic and borg where installed, `args.runs` runs of those. */
async function peersPhase(args: Args, image: string, errors: string[]): Promise<PeersPhase> {
  const tools: PeerTool[] = [];
  const peerNotes: Record<string, string> = {};
  const peerRuns = new Map<string, PeerResult[]>();
  if (args.skipPeers) {
    peerNotes.restic = peerNotes.borg = 'skipped (--skip-peers)';
  } else {
    const rv = await probe('restic', ['version']);
    const bv = await probe('borg', ['--version']);
    if (rv) tools.push(restic(rv));
    else peerNotes.restic = 'not installed — skipped';
    if (bv) tools.push(borg(bv));
    else peerNotes.borg = 'not installed — skipped';
    for (const t of ['restic', 'borg']) if (peerNotes[t]) log(`\n${t}: ${peerNotes[t]}`);
    for (let i = 0; i < args.runs && tools.length > 0; i++) await peersRun(tools, image, i, args.runs, peerRuns, errors);
  }
  return { tools, peerNotes, peerRuns };
}

/** One run of the peers on a fresh copy of the image; its results are appended to `peerRuns`. */
async function peersRun(tools: PeerTool[], image: string, i: number, total: number, peerRuns: Map<string, PeerResult[]>, errors: string[]): Promise<void> {
  log(`\npeers run ${i + 1}/${total} (${tools.map((t) => t.version).join('; ')})`);
  const work = trackDir(mkdtempSync(join(tmpdir(), 'lifeboat-bench-peers-')));
  try {
    const img = join(work, 'disk.img');
    await sparseCopy(image, img);
    const res = await runPeers(tools, work, img, async () => void (await mutate1pct(img)), log);
    for (const [k, v] of res) peerRuns.set(k, [...(peerRuns.get(k) ?? []), v]);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    errors.push(`peers run ${i + 1}: ${msg}`);
    log(`  peers run ${i + 1} FAILED: ${msg}`);
  } finally {
    removeDir(work);
  }
}

interface ApiPhase {
  api: ApiBenchResult | null;
  apiError: string | null;
}

/** API: autocannon against a service holding 1000 snapshots. */
async function apiPhase(args: Args, errors: string[]): Promise<ApiPhase> {
  let api: ApiBenchResult | null = null;
  let apiError: string | null = null;
  if (!args.skipApi) {
    log(`\nAPI benchmark (autocannon, ${args.apiSeconds} s per endpoint)`);
    const home = trackDir(mkdtempSync(join(tmpdir(), 'lifeboat-bench-api-')));
    try {
      api = await apiBench(home, repoRoot, { seconds: args.apiSeconds, count: 1000, log });
    } catch (e) {
      apiError = e instanceof Error ? e.message : String(e);
      errors.push(`API benchmark: ${apiError}`);
      log(`  API benchmark FAILED: ${apiError}`);
    } finally {
      removeDir(home);
    }
  }
  return { api, apiError };
}

/** Encryption (issue 17): plain vs encrypted workload, full + restore. */
async function encryptionPhase(args: Args, image: string, errors: string[]): Promise<EncryptionBenchResult | null> {
  let encryption: EncryptionBenchResult | null = null;
  if (!args.skipEncryption) {
    try {
      encryption = await encryptionBench(image, Math.min(args.runs, 2), repoRoot, log);
    } catch (e) {
      errors.push(`encryption: ${e instanceof Error ? e.message : String(e)}`);
      log(`  encryption bench FAILED: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
  }
  return encryption;
}

// ---------------------------------------------------------------------------------------------
// Summaries

/** Everything a run measured, for the table and bench-data/last-run.json. */
interface Outcome {
  args: Args;
  startedAt: string;
  uptimeBefore: string;
  uptimeAfter: string;
  image: string;
  imgStat: Stats;
  runs: LifeboatRun[];
  libvirt: LibvirtPhase;
  peers: PeersPhase;
  api: ApiPhase;
  encryption: EncryptionBenchResult | null;
  errors: string[];
}

function summarizeLifeboat(runs: LifeboatRun[]) {
  return {
    full: summarize(runs.map((r) => r.full.wall)),
    incr1: summarize(runs.map((r) => r.incr1.wall)),
    incr0: summarize(runs.map((r) => r.incr0.wall)),
    repoFull: summarize(runs.map((r) => r.full.growth)),
    growth1: summarize(runs.map((r) => r.incr1.growth)),
    growth1Apparent: summarize(runs.map((r) => r.incr1.growthApparent)),
    objFull: summarize(runs.map((r) => r.full.objects)),
    obj1: summarize(runs.map((r) => r.incr1.objects)),
    obj0: summarize(runs.map((r) => r.incr0.objects)),
    objRestore: summarize(runs.flatMap((r) => ('objects' in r.restore ? [r.restore.objects] : []))),
    peakRss: summarize(runs.map((r) => r.peakRss)),
    idleRss: summarize(runs.map((r) => r.idleRss)),
    restore: summarize(runs.flatMap((r) => ('wall' in r.restore && r.restore.status === 'available' ? [r.restore.wall] : []))),
  };
}

interface Summaries {
  lb: ReturnType<typeof summarizeLifeboat>;
  /** Why the restores were skipped (the first run's reason), or null. */
  restoreSkipped: string | null;
  /** Restores that did not end available or whose disk was not identical. */
  restoreFailed: number;
}

function summarizeRuns(runs: LifeboatRun[]): Summaries {
  const lb = summarizeLifeboat(runs);
  const restoreSkipped = runs.map((r) => ('skipped' in r.restore ? r.restore.skipped : null)).find((x) => x) ?? null;
  const restoreFailed = runs.filter((r) => 'status' in r.restore && (r.restore.status !== 'available' || r.restore.verified === false)).length;
  return { lb, restoreSkipped, restoreFailed };
}

const peerSummary = (peerRuns: Map<string, PeerResult[]>, name: string, k: keyof PeerResult) => summarize((peerRuns.get(name) ?? []).map((p) => p[k]));

type PeerColumn = (name: string, k: keyof PeerResult, lbS: Summary | null, unit: string, digits: number, scale?: number, ratio?: boolean) => string;

/** A peer's cell of a row: its median (and ratio to Lifeboat's) when it ran, else why it did not. */
function peerColumn({ peerNotes, peerRuns }: PeersPhase): PeerColumn {
  const note = (name: string) => peerNotes[name] ?? '–';
  return (name, k, lbS, unit, digits, scale = 1, ratio = true) =>
    peerRuns.has(name) ? peerCell(peerSummary(peerRuns, name, k), lbS, unit, digits, scale, ratio) : note(name);
}

// ---------------------------------------------------------------------------------------------
// The table's rows

/** Full, incrementals, repo size and objects written, beside the peers. */
function snapshotRows({ lb }: Summaries, peers: PeersPhase): Row[] {
  const rs = (k: keyof PeerResult) => peerSummary(peers.peerRuns, 'restic', k);
  const pc = peerColumn(peers);
  const ratioFull = rs('full') && lb.full ? (rs('full') as Summary).median / lb.full.median : null;
  return [
    {
      step: 'full snapshot (wall)',
      lifeboat: cell(lb.full, 's', 2),
      restic: pc('restic', 'full', lb.full, 's', 2),
      borg: pc('borg', 'full', lb.full, 's', 2),
      target: '≤ 2.0 s and ≥ 3× restic',
      met: lb.full ? (ratioFull === null ? `${yes(lb.full.median <= 2.0)} (restic n/a)` : yes(lb.full.median <= 2.0 && ratioFull >= 3)) : 'n/a',
    },
    { step: 'incremental 1 % (wall)', lifeboat: cell(lb.incr1, 's', 2), restic: pc('restic', 'incr', lb.incr1, 's', 2), borg: pc('borg', 'incr', lb.incr1, 's', 2), target: '≤ 0.8 s', met: yes(lb.incr1 ? lb.incr1.median <= 0.8 : null) },
    { step: 'incremental unchanged (wall)', lifeboat: cell(lb.incr0, 's', 3), restic: '–', borg: '–', target: '≤ 0.1 s', met: yes(lb.incr0 ? lb.incr0.median <= 0.1 : null) },
    { step: 'repo after full (du)', lifeboat: cell(lb.repoFull, 'MB', 0, MB), restic: pc('restic', 'repoAfterFull', null, 'MB', 0, MB, false), borg: pc('borg', 'repoAfterFull', null, 'MB', 0, MB, false), target: '', met: '' },
    { step: 'repo growth, 1 % incr. (du)', lifeboat: cell(lb.growth1, 'MB', 1, MB), restic: pc('restic', 'repoGrowth', null, 'MB', 1, MB, false), borg: pc('borg', 'repoGrowth', null, 'MB', 1, MB, false), target: '≤ 86 MB', met: yes(lb.growth1 ? lb.growth1.median <= 86 * MB : null) },
    { step: 'objects written: full / 1 % / unchanged', lifeboat: `${lb.objFull?.median ?? '–'} / ${lb.obj1?.median ?? '–'} / ${lb.obj0?.median ?? '–'}`, restic: '–', borg: '–', target: '', met: '' },
  ];
}

/** Peak RSS (overall and by step) and the restore of the full, beside the peers. */
function rssAndRestoreRows(runs: LifeboatRun[], { lb, restoreSkipped, restoreFailed }: Summaries, peers: PeersPhase): Row[] {
  const pc = peerColumn(peers);
  const rssBy = (f: (r: LifeboatRun) => number | null) => {
    const v = summarize(runs.flatMap((r) => { const x = f(r); return x === null ? [] : [x]; }));
    return v ? (v.max / MiB).toFixed(0) : '–';
  };
  return [
    {
      step: 'peak RSS (service process)',
      lifeboat: cell(lb.peakRss, 'MiB', 0, MiB),
      restic: pc('restic', 'peakRss', null, 'MiB', 0, MiB, false),
      borg: pc('borg', 'peakRss', null, 'MiB', 0, MiB, false),
      target: '≤ 256 MiB (worst run)',
      met: yes(lb.peakRss ? lb.peakRss.max <= 256 * MiB : null),
    },
    {
      step: 'peak RSS by step: full / 1 % / unch. / restore',
      lifeboat: `${rssBy((r) => r.full.peakRss)} / ${rssBy((r) => r.incr1.peakRss)} / ${rssBy((r) => r.incr0.peakRss)} / ${rssBy((r) => ('peakRss' in r.restore ? r.restore.peakRss : null))} MiB`,
      restic: '–',
      borg: '–',
      target: '',
      met: '',
    },
    {
      step: 'restore of the full (wall)',
      lifeboat: lb.restore ? `${cell(lb.restore, 's', 2)}${restoreFailed ? ` (${restoreFailed} failed/not identical)` : ''}` : restoreSkipped ? 'skipped (404)' : restoreFailed ? 'failed' : '–',
      restic: pc('restic', 'restore', lb.restore, 's', 2),
      borg: pc('borg', 'restore', lb.restore, 's', 2),
      target: '≤ 2.0 s',
      met: lb.restore ? yes(lb.restore.median <= 2.0 && restoreFailed === 0) : restoreFailed ? 'NO' : 'n/a',
    },
  ];
}

function apiRows({ api, apiError }: ApiPhase): Row[] {
  if (api) {
    return [
      { step: 'GET snapshot (10 conn.)', lifeboat: `${api.getOne.reqPerSec.toFixed(0)} req/s (p50 ${api.getOne.latencyP50} ms, p99 ${api.getOne.latencyP99} ms)`, restic: '–', borg: '–', target: '≥ 3000 req/s', met: yes(api.getOne.reqPerSec >= 3000 && api.getOne.non2xx === 0) },
      { step: `GET list of ${api.snapshots} (1 conn.)`, lifeboat: `p50 ${api.list.latencyP50} ms (p99 ${api.list.latencyP99} ms, ${api.list.reqPerSec.toFixed(0)} req/s)`, restic: '–', borg: '–', target: '≤ 50 ms (p50)', met: yes(api.list.latencyP50 <= 50 && api.list.non2xx === 0) },
    ];
  }
  return [{ step: 'API benchmark', lifeboat: apiError ? `FAILED: ${apiError.split('\n')[0]?.slice(0, 80)}` : 'skipped (--skip-api)', restic: '–', borg: '–', target: '', met: apiError ? 'NO' : 'n/a' }];
}

function encryptionRows(encryption: EncryptionBenchResult | null): Row[] {
  if (!encryption) return [];
  const e = encryption.summary;
  const pair = (p: Summary | null, x: Summary | null, unit: string, digits: number, scale = 1) => `${cell(p, unit, digits, scale)} → ${cell(x, unit, digits, scale)}`;
  return [
    { step: 'encrypted vs plain: full CPU-s/GB, RSS', lifeboat: `${pair(e.plain.fullCpuPerGB, e.encrypted.fullCpuPerGB, 'CPU-s/GB', 2)}; ${pair(e.plain.fullRss, e.encrypted.fullRss, 'MiB', 0, MiB)}`, restic: '–', borg: '–', target: 'measured', met: '' },
    { step: 'encrypted vs plain: restore CPU-s/GB, RSS', lifeboat: `${pair(e.plain.restoreCpuPerGB, e.encrypted.restoreCpuPerGB, 'CPU-s/GB', 2)}; ${pair(e.plain.restoreRss, e.encrypted.restoreRss, 'MiB', 0, MiB)}`, restic: '–', borg: '–', target: 'measured', met: '' },
  ];
}

function resultRows(o: Outcome, s: Summaries): Row[] {
  return [
    ...snapshotRows(s, o.peers),
    ...rssAndRestoreRows(o.runs, s, o.peers),
    ...apiRows(o.api),
    ...libvirtRows(o.libvirt.libvirt, o.libvirt.libvirtNote, s.lb.full),
    ...encryptionRows(o.encryption),
  ];
}

// ---------------------------------------------------------------------------------------------
// Output

function printResults(o: Outcome, s: Summaries, rows: Row[]): void {
  const table = printTable(rows);
  log(`\nResults: ${o.args.sizeMiB} MiB image (${(o.imgStat.blocks * 512 / MB).toFixed(0)} MB allocated), ${o.args.runs} run(s); lifeboat = median (min–max); (n×) = peer / lifeboat`);
  log(table);
  if (s.restoreSkipped) log(`restore: skipped — ${s.restoreSkipped}`);
  log(`load before: ${o.uptimeBefore}\nload after:  ${o.uptimeAfter}`);
}

/** Writes bench-data/last-run.json; returns its path. */
function writeLastRun(o: Outcome, s: Summaries, rows: Row[]): string {
  const { peerRuns } = o.peers;
  const peer = (name: string, k: keyof PeerResult) => peerSummary(peerRuns, name, k);
  const out = join(dataDir, 'last-run.json');
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        startedAt: o.startedAt,
        finishedAt: new Date().toISOString(),
        args: o.args,
        host: { cpus: cpus().length, node: process.version, uptimeBefore: o.uptimeBefore, uptimeAfter: o.uptimeAfter },
        image: { path: o.image, bytes: o.imgStat.size, allocated: o.imgStat.blocks * 512 },
        tools: Object.fromEntries([...o.peers.tools.map((t) => [t.name, t.version]), ...Object.entries(o.peers.peerNotes)]),
        lifeboat: { runs: o.runs, summary: s.lb, restoreSkipped: s.restoreSkipped },
        peers: Object.fromEntries([...peerRuns].map(([k, v]) => [k, { runs: v, summary: { full: peer(k, 'full'), incr: peer(k, 'incr'), restore: peer(k, 'restore'), repoAfterFull: peer(k, 'repoAfterFull'), repoGrowth: peer(k, 'repoGrowth'), peakRss: peer(k, 'peakRss') } }])),
        api: o.api.api,
        libvirt: o.libvirt.libvirt ?? o.libvirt.libvirtNote,
        encryption: o.encryption,
        errors: o.errors,
        table: rows,
      },
      null,
      2,
    )}\n`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  installCleanupHandlers();
  const args = parseArgs(process.argv.slice(2));
  const startedAt = new Date().toISOString();
  const uptimeBefore = await uptime();
  log(`Lifeboat bench: ${args.sizeMiB} MiB image, ${args.runs} run(s)${args.skipPeers ? ', peers skipped' : ''}; ${cpus().length} CPUs; ${uptimeBefore}`);
  if (!existsSync(join(repoRoot, 'dist/src/main.js'))) throw new Error('dist/src/main.js missing: run `npm run build` first (npm run bench does)');
  const image = await pristineImage(args.sizeMiB);
  const imgStat = statSync(image);

  const errors: string[] = [];
  const runs = await lifeboatRuns(args, image);
  const libvirt = await libvirtPhase(args, image, errors);
  const peers = await peersPhase(args, image, errors);
  const api = await apiPhase(args, errors);
  const encryption = await encryptionPhase(args, image, errors);
  const uptimeAfter = await uptime();
  const o: Outcome = { args, startedAt, uptimeBefore, uptimeAfter, image, imgStat, runs, libvirt, peers, api, encryption, errors };

  const s = summarizeRuns(runs);
  const rows = resultRows(o, s);
  printResults(o, s, rows);
  const out = writeLastRun(o, s, rows);
  log(`JSON: ${out}`);
  if (errors.length > 0) {
    log(`\n${errors.length} part(s) failed:\n  ${errors.join('\n  ')}`);
    process.exitCode = 1;
  }
}

main().then(
  () => {
    cleanupAll();
  },
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    cleanupAll();
    process.exit(1);
  },
);
