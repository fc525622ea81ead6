/**
 * The sweep's table (sweep.ts): per scenario and step, each tool's seconds, GB/s of non-hole
 * data, CPU-seconds per GB (user + system), peak RSS and the ratio to restic (restic's time /
 * this tool's: > 1 = faster than restic), with the load average at the step's start; then the
 * machine limits and Lifeboat's time per GB over the size sweep (linearity).
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
}

export interface ScenarioResult {
  mix: string;
  gib: number;
  size: number;
  dataBytes: number;
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

function stepLine(r: StepResult, restic: StepResult | undefined): string {
  const gb = r.dataBytes / 1e9;
  const ratio = restic && r.tool !== 'restic' ? `${(restic.seconds / r.seconds).toFixed(2)}×` : '–';
  return [
    pad(r.step, 12),
    pad(r.tool, 9),
    lpad(r.seconds.toFixed(2), 8),
    lpad(gbps(r.dataBytes, r.seconds), 6),
    lpad(`${(r.user / gb).toFixed(2)}+${(r.sys / gb).toFixed(2)}`, 11),
    lpad(`${(r.peakRss / 2 ** 20).toFixed(0)} MiB`, 9),
    lpad(ratio, 9),
    lpad(r.load[0]!.toFixed(1), 5),
  ].join(' ');
}

function scenarioTable(s: ScenarioResult): string[] {
  const out = [`\n${s.mix} mix, ${s.gib} GiB (${(s.dataBytes / 1e9).toFixed(2)} GB non-hole)`];
  out.push(`${pad('step', 12)} ${pad('tool', 9)} ${lpad('s', 8)} ${lpad('GB/s', 6)} ${lpad('CPU-s/GB', 11)} ${lpad('peak RSS', 9)} ${lpad('vs restic', 9)} ${lpad('load', 5)}`);
  for (const step of ['full', 'incremental', 'restore'] as const) {
    const restic = s.steps.find((r) => r.step === step && r.tool === 'restic');
    for (const r of s.steps.filter((x) => x.step === step)) out.push(stepLine(r, restic));
  }
  const tools = Object.keys(s.restoredExact);
  out.push(`restore byte-exact: ${tools.map((t) => `${t} ${s.restoredExact[t] ? 'yes' : 'NO'}`).join(', ')}`);
  out.push(`repository after full: ${tools.map((t) => `${t} ${((s.repoAfterFull[t] ?? 0) / 1e9).toFixed(2)} GB`).join(', ')}`);
  return out;
}

function machineLines(m: MachineLimits): string[] {
  const g = (x: number | null) => (x === null ? 'n/a' : `${(x / 1e9).toFixed(2)} GB/s`);
  return [
    `machine (load ${m.load.join(' ')}): disk sequential read ${g(m.seqRead)}, fdatasync write ${g(m.fdatasyncWrite)};`,
    `  per CPU-second of one core, 64 KiB chunks: SHA-256 ${g(m.sha256)}, HMAC-SHA256 ${g(m.hmacSha256)}, keyed BLAKE3 ${g(m.blake3Keyed)}, zstd-1 text ${g(m.zstd1Text)}, zstd-1 random ${g(m.zstd1Random)}, random with the estimate (zstd skipped) ${g(m.estimateRandom)}`,
  ];
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
        const r = s.steps.find((x) => x.tool === 'lifeboat' && x.step === step)!;
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
    'times include a sync after the step; CPU-s/GB = user+system CPU seconds per GB of non-hole data; vs restic = restic time / tool time',
    ...machineLines(r.machine),
    ...r.scenarios.flatMap(scenarioTable),
    ...linearity(r.scenarios),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
