/**
 * The sweep's table (sweep.ts): per scenario and step, each tool's seconds, GB/s of non-hole
 * data, CPU-seconds per GB (user + system), peak RSS and the ratio to restic (restic's time /
 * this tool's: > 1 = faster than restic), with the load average at the step's start; then the
 * machine limits and Lifeboat's time per GB over the size sweep (linearity).
 *
 * A scenario run in several rounds shows, per tool and step, the run with the median time (the
 * lower middle one for an even count), the range of the times, the ratio of the medians and the
 * range of the per-round ratios (restic's time in a round / the tool's in the same round), and
 * the largest peak RSS of the rounds.
 */
import type { MachineLimits } from './machine.js';

export type StepName = 'full' | 'incremental' | 'restore';

export interface StepResult {
  tool: string;
  step: StepName;
  /** Wall seconds of the tool plus the sync after it. */
  seconds: number;
  syncSeconds: number;
  /** CPU seconds of the tool process (all threads, children included). */
  user: number;
  sys: number;
  /** Peak resident set, bytes. */
  peakRss: number;
  /** Non-hole bytes of the disk the step reads or writes. */
  dataBytes: number;
  /** 1/5/15-minute load averages when the step started. */
  load: number[];
  /** 0-based round of the scenario the step ran in. */
  round?: number;
}

export interface ScenarioResult {
  mix: string;
  gib: number;
  size: number;
  dataBytes: number;
  /** Rounds the scenario ran (absent in reports written before rounds existed: 1). */
  rounds?: number;
  steps: StepResult[];
  repoAfterFull: Record<string, number>;
  restoredExact: Record<string, boolean>;
}

export interface SweepReport {
  started: { at: string; load: number[] };
  finished: { at: string; load: number[] };
  machine: MachineLimits;
  scenarios: ScenarioResult[];
}

const gbps = (bytes: number, s: number) => (bytes / 1e9 / s).toFixed(2);
const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

/** The run of `tool`'s `step` with the median time; undefined if it never ran. */
export function medianRun(steps: StepResult[], tool: string, step: StepName): StepResult | undefined {
  const runs = steps.filter((r) => r.tool === tool && r.step === step).sort((a, b) => a.seconds - b.seconds);
  return runs[Math.floor((runs.length - 1) / 2)];
}

const range = (xs: number[], digits: number, unit = '') => {
  const lo = Math.min(...xs).toFixed(digits);
  const hi = Math.max(...xs).toFixed(digits);
  return lo === hi ? `${lo}${unit}` : `${lo}–${hi}${unit}`;
};

/** restic's time / the tool's, per round both ran in. */
function roundRatios(steps: StepResult[], tool: string, step: StepName): number[] {
  const mine = steps.filter((r) => r.tool === tool && r.step === step);
  return mine.flatMap((r) => {
    const restic = steps.find((x) => x.tool === 'restic' && x.step === step && x.round === r.round);
    return restic ? [restic.seconds / r.seconds] : [];
  });
}

function stepLine(s: ScenarioResult, tool: string, step: StepName): string {
  const r = medianRun(s.steps, tool, step)!;
  const all = s.steps.filter((x) => x.tool === tool && x.step === step);
  const restic = medianRun(s.steps, 'restic', step);
  const gb = r.dataBytes / 1e9;
  const ratios = roundRatios(s.steps, tool, step);
  const ratio = restic && tool !== 'restic' ? `${(restic.seconds / r.seconds).toFixed(2)}×` : '–';
  return [
    pad(step, 12),
    pad(tool, 9),
    lpad(r.seconds.toFixed(2), 8),
    lpad(range(all.map((x) => x.seconds), 2), 11),
    lpad(gbps(r.dataBytes, r.seconds), 6),
    lpad(`${(r.user / gb).toFixed(2)}+${(r.sys / gb).toFixed(2)}`, 11),
    lpad(`${(Math.max(...all.map((x) => x.peakRss)) / 2 ** 20).toFixed(0)} MiB`, 9),
    lpad(ratio, 9),
    lpad(tool !== 'restic' && ratios.length > 1 ? range(ratios, 2, '×') : '–', 12),
    lpad(r.load[0]!.toFixed(1), 5),
  ].join(' ');
}

/**
 * What the disk allows a restore, from the limits measured in the same run:
 * - writing the non-hole data at the fdatasync bandwidth: the issue's floor (target ≥ 70 % of
 *   it), and the largest ratio to restic any tool writing that data could reach (restic's median
 *   time / the floor): a ratio target above it cannot be met on this disk, whatever the engine;
 * - the same write plus reading the tool's repository (its size after the full: about what the
 *   last snapshot's chunks take) at the sequential read bandwidth, at the read/write overlap the
 *   disk showed: a restore does both at once, and on a disk that serves one request at a time
 *   (overlap 1) the two times add up. An overlap below 1 (two dd streams at once slower than one
 *   after the other: seen on a VM whose disk measured 0.40) bounds nothing: a restore could
 *   still read and then write, so the floor is then the plain sum.
 */
export function restoreBoundLines(s: ScenarioResult, m: MachineLimits): string[] {
  const mine = medianRun(s.steps, 'lifeboat', 'restore');
  if (!mine || !m.fdatasyncWrite) return [];
  const floor = mine.dataBytes / m.fdatasyncWrite;
  const restic = medianRun(s.steps, 'restic', 'restore');
  const best = restic ? `; restic ${restic.seconds.toFixed(2)} s, so no restore can be more than ${(restic.seconds / floor).toFixed(2)}× restic here` : '';
  const out = [`restore floor (non-hole data at the fdatasync write bandwidth): ${floor.toFixed(2)} s; lifeboat at ${((floor / mine.seconds) * 100).toFixed(0)} % of it${best}`];
  const repo = s.repoAfterFull['lifeboat'];
  if (m.readWriteOverlap && m.seqRead && repo) {
    const overlap = Math.max(1, m.readWriteOverlap);
    const how = m.readWriteOverlap >= 1 ? `overlapped ${m.readWriteOverlap.toFixed(2)}-fold as this disk did` : `one after the other (this disk overlapped them ${m.readWriteOverlap.toFixed(2)}-fold, worse than in turn)`;
    const withReads = (repo / m.seqRead + floor) / overlap;
    out.push(
      `restore floor with its reads (lifeboat's ${(repo / 1e9).toFixed(2)} GB repository at the read bandwidth, then the write, ${how}): ${withReads.toFixed(2)} s; lifeboat at ${((withReads / mine.seconds) * 100).toFixed(0)} % of it`,
    );
  }
  return out;
}

function scenarioTable(s: ScenarioResult, m: MachineLimits): string[] {
  const n = s.rounds ?? 1;
  const out = [`\n${s.mix} mix, ${s.gib} GiB (${(s.dataBytes / 1e9).toFixed(2)} GB non-hole), ${n} round(s)${n > 1 ? ': median run, range over the rounds' : ''}`];
  out.push(`${pad('step', 12)} ${pad('tool', 9)} ${lpad('s', 8)} ${lpad('s range', 11)} ${lpad('GB/s', 6)} ${lpad('CPU-s/GB', 11)} ${lpad('peak RSS', 9)} ${lpad('vs restic', 9)} ${lpad('per round', 12)} ${lpad('load', 5)}`);
  const tools = [...new Set(s.steps.map((x) => x.tool))];
  for (const step of ['full', 'incremental', 'restore'] as const) {
    for (const tool of tools) if (medianRun(s.steps, tool, step)) out.push(stepLine(s, tool, step));
  }
  const exact = Object.keys(s.restoredExact);
  out.push(`restore byte-exact${n > 1 ? ' (every round)' : ''}: ${exact.map((t) => `${t} ${s.restoredExact[t] ? 'yes' : 'NO'}`).join(', ')}`);
  out.push(`repository after full: ${exact.map((t) => `${t} ${((s.repoAfterFull[t] ?? 0) / 1e9).toFixed(2)} GB`).join(', ')}`);
  out.push(...restoreBoundLines(s, m));
  return out;
}

function machineLines(m: MachineLimits): string[] {
  const g = (x: number | null) => (x === null ? 'n/a' : `${(x / 1e9).toFixed(2)} GB/s`);
  return [
    `machine (load ${m.load.join(' ')}): disk sequential read ${g(m.seqRead)}, fdatasync write ${g(m.fdatasyncWrite)}${overlapText(m.readWriteOverlap)};`,
    `  per CPU-second of one core, 64 KiB chunks: SHA-256 ${g(m.sha256)}, HMAC-SHA256 ${g(m.hmacSha256)}, keyed BLAKE3 ${g(m.blake3Keyed)}, zstd-1 text ${g(m.zstd1Text)}, zstd-1 random ${g(m.zstd1Random)}, random with the estimate (zstd skipped) ${g(m.estimateRandom)}`,
    `  ${nodeStartLine(m.nodeStartMs)}`,
    `  ${pageReportingLine(m.pageReporting)}`,
  ];
}

/** How the disk did a read and a write at once (machine.ts, readWriteOverlap). */
function overlapText(overlap: number | undefined): string {
  if (overlap === undefined) return '';
  return `, a read and a write at once overlapped ${overlap.toFixed(2)}-fold (2 = both at full speed, 1 = one after the other)`;
}

function nodeStartLine(n: MachineLimits['nodeStartMs']): string {
  if (!n) return 'Node start: not measured';
  const extra = n.withExtraCaCerts === null ? '' : `, ${n.withExtraCaCerts.toFixed(0)} ms with this machine's NODE_EXTRA_CA_CERTS (Node 20 parses its CA store at start; the engine steps run without it: none uses TLS)`;
  return `Node start (empty script): ${n.bare.toFixed(0)} ms${extra}`;
}

function pageReportingLine(p: MachineLimits['pageReporting']): string {
  if (p === undefined) return 'free page reporting: not measured';
  if (p === null) return 'free page reporting: off (freed memory stays with this machine)';
  const reported = p.reportedKiB === null ? '' : `, ${(p.reportedKiB / 2 ** 20).toFixed(1)} GiB reported since boot`;
  return `free page reporting: ON (virtio-balloon, ${p.blockKiB} KiB blocks${reported}): memory a process frees goes back to the host and costs the next one to touch it a host fault per page, so times depend on what ran before`;
}

/** Lifeboat seconds per GB of data at each size of a mix run at several sizes. */
function linearity(scenarios: ScenarioResult[]): string[] {
  const out: string[] = [];
  const byMix = new Map<string, ScenarioResult[]>();
  for (const s of scenarios) byMix.set(s.mix, [...(byMix.get(s.mix) ?? []), s]);
  for (const [mix, list] of byMix) {
    if (list.length < 2) continue;
    out.push(`\nlinearity, ${mix} mix (Lifeboat s per GB of non-hole data; change vs the smallest size):`);
    for (const step of ['full', 'incremental', 'restore'] as const) {
      const per = list.map((s) => {
        const r = medianRun(s.steps, 'lifeboat', step)!;
        return { gib: s.gib, v: r.seconds / (r.dataBytes / 1e9), rss: r.peakRss };
      });
      const base = per[0]!.v;
      out.push(`  ${pad(step, 12)} ${per.map((p) => `${p.gib} GiB ${p.v.toFixed(2)} s/GB (${p.v >= base ? '+' : ''}${(((p.v - base) / base) * 100).toFixed(0)} %, ${(p.rss / 2 ** 20).toFixed(0)} MiB)`).join(', ')}`);
    }
  }
  return out;
}

export function printSweep(r: SweepReport): void {
  const lines = [
    `\nEngine sweep, started ${r.started.at} (load ${r.started.load.join(' ')}), finished ${r.finished.at} (load ${r.finished.load.join(' ')})`,
    'times include a sync after the step; a restore reads its repository from the device (dropped from the page cache before it); CPU-s/GB = user+system CPU seconds per GB of non-hole data; vs restic = restic time / tool time',
    ...machineLines(r.machine),
    ...r.scenarios.flatMap((s) => scenarioTable(s, r.machine)),
    ...linearity(r.scenarios),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
