import { CancelledError, errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

/**
 * Bytes done out of a known total, for a job that copies disks one after another: `finished`
 * counts whole disks, `current` the disk in progress (fed by the datamover's onProgress).
 */
export class ByteProgress {
  private finished = 0;
  private current = 0;

  constructor(readonly total: number) {}

  /** Progress within the disk being copied. */
  update(bytesDone: number): void {
    this.current = bytesDone;
  }

  /** A disk of `size` bytes is over (copied or failed): it counts as done. */
  finishDisk(size: number): void {
    this.finished += size;
    this.current = 0;
  }

  get done(): number {
    return this.finished + this.current;
  }

  /** 0..99: 100 is written only with the final state, in the same update. */
  get percent(): number {
    return this.total === 0 ? 99 : Math.min(99, Math.floor((this.done * 100) / this.total));
  }
}

export interface TickerOptions {
  /** 'Snapshot' or 'Restore': names the CancelledError. */
  what: string;
  everyMs: number;
  log: Logger;
  /** True when a user asked to cancel (the row says `cancelling`). */
  isCancelling(): Promise<boolean>;
  /** Writes progress (only while the row is still in its running state). */
  report(): Promise<void>;
}

export interface Ticker {
  /** Aborted (with a CancelledError) when a cancel request was seen. */
  readonly cancelSignal: AbortSignal;
  /** True when this ticker, not the worker, stopped the job. */
  readonly cancelled: boolean;
  stop(): void;
}

/**
 * The progress/cancel loop shared by snapshot and restore jobs: every `everyMs`, either turn a
 * cancel request into an abort of `cancelSignal`, or write progress. Ticks never overlap (a
 * slow store skips ticks rather than piling them up); a failed tick is logged, not fatal.
 */
export function startTicker(o: TickerOptions): Ticker {
  const ctl = new AbortController();
  let busy = false;
  const tick = async (): Promise<void> => {
    if (await o.isCancelling()) ctl.abort(new CancelledError(o.what));
    else await o.report();
  };
  const timer = setInterval(() => {
    if (busy || ctl.signal.aborted) return;
    busy = true;
    tick()
      .catch((e: unknown) => o.log.warn({ err: errorMessage(e) }, 'progress update failed'))
      .finally(() => (busy = false));
  }, o.everyMs);
  return {
    cancelSignal: ctl.signal,
    get cancelled() {
      return ctl.signal.aborted;
    },
    stop: () => clearInterval(timer),
  };
}
