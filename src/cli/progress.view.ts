import cliProgress from 'cli-progress';
import { CliError } from './exit-codes.js';
import { humanBytes, humanDuration } from './table.format.js';

/**
 * `--wait`: polls a snapshot or restore until it reaches a final state and shows its progress
 * on stderr — a cli-progress bar (percent, bytes, rate, ETA, status) when stderr is a TTY,
 * plain lines (one per change of status or percent) otherwise — so stdout stays clean for the
 * final table/JSON. Ends with the final object; `error`/`cancelled` become CliError
 * 'operation-failed' (exit 7) after the caller has printed it.
 */

export const FINAL_STATES = new Set(['available', 'error', 'cancelled']);

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
}

export interface WaitOptions {
  /** `Snapshot` or `Restore`, for messages. */
  what: string;
  id: string;
  intervalMs: number;
  stream: ProgressStream;
  /** Draw a bar (stream must be a real TTY WriteStream) instead of plain lines. */
  bar: boolean;
  /** Give up after this long (ms); undefined = wait forever, like tempest. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /**
   * Real process only: on Ctrl-C restore the terminal (the bar hides the cursor), say that
   * the operation goes on server-side, and exit 130 like a shell does.
   */
  handleSigint?: boolean;
}

type Obj = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** Progress numbers of a snapshot/restore detail: bytes done is estimated from the percent. */
export function progressOf(o: Obj): { percent: number; total: number; done: number; status: string; msg: string } {
  const status = typeof o.status === 'string' ? o.status : '?';
  let percent = Math.max(0, Math.min(100, num(o.progress_percent)));
  if (status === 'available') percent = 100;
  // Snapshots know the bytes to read (restore_size) once uploading starts; restores know `size`.
  const total = num(o.restore_size) || num(o.size);
  let done = Math.round((total * percent) / 100);
  const uploaded = num(o.uploaded_size);
  if (status !== 'available' && uploaded > done && uploaded <= total) done = uploaded;
  const msg = typeof o.progress_msg === 'string' ? o.progress_msg : '';
  return { percent, total, done, status, msg };
}

/**
 * Bytes/second over a sliding window of recent samples (so the rate and ETA follow the
 * current speed, not the average since the start); restarts if the byte count goes backwards.
 */
export class RateMeter {
  private samples: { t: number; done: number }[] = [];
  constructor(private readonly windowMs = 10_000) {}
  sample(t: number, done: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last && done < last.done) this.samples = [];
    this.samples.push({ t, done });
    // Keep one sample at or before the window start as the base.
    while (this.samples.length > 2 && this.samples[1]!.t <= t - this.windowMs) this.samples.shift();
  }
  rate(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t <= first.t) return 0;
    return (last.done - first.done) / ((last.t - first.t) / 1000);
  }
}

export async function waitForOperation(poll: () => Promise<Obj>, opts: WaitOptions): Promise<Obj> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = opts.now ?? Date.now;
  const started = now();
  const meter = new RateMeter();
  // Percent per second: the ETA when the total bytes are not known yet (a restore's `size`).
  const pctMeter = new RateMeter();
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = '';

  const payload = (p: ReturnType<typeof progressOf>) => {
    const rate = meter.rate();
    const pctRate = pctMeter.rate();
    const eta =
      p.status === 'available' ? 0 : rate > 0 && p.total > 0 ? (p.total - p.done) / rate : pctRate > 0 ? (100 - p.percent) / pctRate : NaN;
    return {
      bytes: p.total > 0 ? `${humanBytes(p.done)}/${humanBytes(p.total)}` : '-',
      rate: rate > 0 ? `${humanBytes(rate)}/s` : '-',
      etaText: Number.isFinite(eta) ? humanDuration(eta) : '-',
      status: p.msg ? `${p.status}: ${p.msg}` : p.status,
    };
  };

  if (opts.bar) {
    bar = new cliProgress.SingleBar(
      {
        stream: opts.stream as NodeJS.WritableStream,
        format: `${opts.what} ${opts.id.slice(0, 8)} {bar} {percentage}% | {bytes} | {rate} | ETA {etaText} | {status}`,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        barsize: 30,
        fps: 10,
        linewrap: false,
        autopadding: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(100, 0, { bytes: '-', rate: '-', etaText: '-', status: 'waiting' });
  }

  const onSigint = () => {
    bar?.stop();
    opts.stream.write(`\nInterrupted. The ${opts.what.toLowerCase()} ${opts.id} goes on; follow it with ${opts.what.toLowerCase()}-show ${opts.id}\n`);
    process.exit(130);
  };
  if (opts.handleSigint) process.once('SIGINT', onSigint);
  try {
    for (;;) {
      const o = await poll();
      const p = progressOf(o);
      meter.sample(now(), p.done);
      pctMeter.sample(now(), p.percent);
      const pl = payload(p);
      if (bar) {
        bar.update(p.percent, pl);
      } else {
        const detail = p.total > 0 ? ` (${pl.bytes}, ${pl.rate}, ETA ${pl.etaText})` : pl.etaText !== '-' ? ` (ETA ${pl.etaText})` : '';
        const line = `${opts.what} ${opts.id}: ${p.status} ${p.percent}%${detail}${p.msg ? ` ${p.msg}` : ''}`;
        // One line per change of status/percent/message, not per poll.
        const key = `${p.status}|${p.percent}|${p.msg}`;
        if (key !== lastLine) {
          opts.stream.write(line + '\n');
          lastLine = key;
        }
      }
      if (FINAL_STATES.has(p.status)) {
        if (bar) {
          bar.update(p.status === 'available' ? 100 : p.percent, pl);
          bar.stop();
          bar = undefined;
        }
        return o;
      }
      if (opts.timeoutMs !== undefined && now() - started > opts.timeoutMs) {
        throw new CliError('unavailable', `Timed out after ${humanDuration(opts.timeoutMs / 1000)} waiting for ${opts.what.toLowerCase()} ${opts.id} (status ${p.status})`);
      }
      await sleep(opts.intervalMs);
    }
  } finally {
    bar?.stop();
    if (opts.handleSigint) process.removeListener('SIGINT', onSigint);
  }
}

/** The exit-7 error for an operation that ended badly (call after printing the final object). */
export function operationFailure(what: string, o: Obj): CliError | undefined {
  const status = o.status;
  if (status !== 'error' && status !== 'cancelled') return undefined;
  const why = typeof o.error_msg === 'string' && o.error_msg !== '' ? `: ${o.error_msg}` : '';
  return new CliError('operation-failed', `${what} ${String(o.id)} ended in status '${String(status)}'${why}`);
}
