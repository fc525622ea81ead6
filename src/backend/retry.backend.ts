import { isTransient, type Backend } from './backend.js';

export interface RetryOptions {
  /** Tries per request, the first one included (default 5). 1 turns retrying off. */
  attempts?: number;
  /** Backoff cap before the first retry (default 200 ms); doubles per retry up to `maxDelayMs`. */
  baseDelayMs?: number;
  /** Largest backoff cap (default 10 s). */
  maxDelayMs?: number;
  /** Waits `ms` (tests pass a recorder instead of real time). */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1) (default Math.random). */
  random?: () => number;
  /** Told about each retry before its wait (for logs and metrics); must not throw. */
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  op: string;
  key: string;
  /** The try that failed (1 = the first). */
  attempt: number;
  delayMs: number;
  error: unknown;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Wraps a backend so that requests failing with a TransientError are tried again, up to
 * `attempts` tries, after a "full jitter" backoff: a random wait in [0, cap) where the cap
 * doubles from `baseDelayMs` to `maxDelayMs` (so a fleet of workers hit by the same outage
 * does not come back in lockstep). Permanent errors (NotFoundError, IntegrityError, key
 * errors, anything not marked transient) pass through at once. The last error is rethrown
 * unchanged when the tries run out, so the total time is bounded.
 *
 * Every Backend request is safe to repeat: put replaces whole, delete is idempotent, reads
 * have no effect. Two exceptions by nature of a stream:
 * - `list` restarts the listing after a transient failure and skips keys it already yielded
 *   (a listing is the truth for GC; it must end complete or throw, never short);
 * - a streamed writer (`openWriter`) is retried only while opening: its parts are gone once
 *   written, so a failed `write`/`commit` fails the object and the caller redoes it whole.
 */
export function withRetry(inner: Backend, opts: RetryOptions = {}): Backend {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const base = opts.baseDelayMs ?? 200;
  const max = opts.maxDelayMs ?? 10_000;
  const sleep = opts.sleep ?? defaultSleep;
  const random = opts.random ?? Math.random;

  /** The wait before retry number `attempt` (1-based try that failed), or null: give up. */
  const backoff = (op: string, key: string, attempt: number, error: unknown): number | null => {
    if (!isTransient(error) || attempt >= attempts) return null;
    const delayMs = Math.floor(random() * Math.min(max, base * 2 ** (attempt - 1)));
    opts.onRetry?.({ op, key, attempt, delayMs, error });
    return delayMs;
  };

  async function retrying<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        const delay = backoff(op, key, attempt, e);
        if (delay === null) throw e;
        await sleep(delay);
      }
    }
  }

  /** A listing (of keys, or of objects with sizes) restarted after a transient failure, each key once. */
  async function* restarting<T>(prefix: string, open: () => AsyncIterable<T>, keyOf: (item: T) => string): AsyncIterable<T> {
    const seen = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const item of open()) {
          const k = keyOf(item);
          if (seen.has(k)) continue;
          seen.add(k);
          yield item;
        }
        return;
      } catch (e) {
        const delay = backoff('list', prefix, attempt, e);
        if (delay === null) throw e;
        await sleep(delay);
      }
    }
  }
  const list = (prefix: string) => restarting(prefix, () => inner.list(prefix), (k) => k);

  const b: Backend = {
    ...(inner.buffersWrites ? { buffersWrites: true } : {}),
    put: (key, data) => retrying('put', key, () => inner.put(key, data)),
    get: (key) => retrying('get', key, () => inner.get(key)),
    getRange: (key, offset, length) => retrying('getRange', key, () => inner.getRange(key, offset, length)),
    stat: (key) => retrying('stat', key, () => inner.stat(key)),
    list,
    delete: (key) => retrying('delete', key, () => inner.delete(key)),
  };
  const { openWriter, getRangeInto, sweepLeftovers, listSizes } = inner;
  if (listSizes) b.listSizes = (prefix) => restarting(prefix, () => listSizes.call(inner, prefix), (o) => o.key);
  if (openWriter) b.openWriter = (key) => retrying('openWriter', key, () => openWriter.call(inner, key));
  if (getRangeInto) b.getRangeInto = (key, o, l, dst) => retrying('getRange', key, () => getRangeInto.call(inner, key, o, l, dst));
  if (sweepLeftovers) b.sweepLeftovers = (ms) => retrying('sweepLeftovers', '', () => sweepLeftovers.call(inner, ms));
  return b;
}
