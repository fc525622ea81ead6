import { NotFoundError } from '../lib/errors.js';
import { isTransient, type Backend, type ObjectWriter } from './backend.js';

/** How a request ended, for the error counter: null when it succeeded. */
export type BackendOutcome = 'transient' | 'not_found' | 'permanent' | null;

/** Told about every finished request; must not throw (lib/metrics.ts LifeboatMetrics.observeBackend fits). */
export interface BackendObserver {
  observeBackend(op: string, seconds: number, outcome: BackendOutcome): void;
}

function outcomeOf(e: unknown): BackendOutcome {
  if (isTransient(e)) return 'transient';
  if (e instanceof NotFoundError) return 'not_found';
  return 'permanent';
}

/**
 * Wraps a backend so that every request reports its latency and how it ended. Put it
 * INNERMOST (`withRetry(withConcurrencyLimit(withMetrics(raw)))`, backend/open.ts): each try of
 * a retried request is one observation, and time spent waiting for a connection slot or a
 * backoff is not backend latency. `stat` of a missing key answers null and is a success; a
 * `get` of one is a not_found error (the repository probes with stat, so not_found on a read
 * is worth seeing). Streams: one observation per `next()` of a listing (op `list`) and per
 * `write`/`commit`/`abort` of a writer (ops `writer.*`).
 */
export function withMetrics(inner: Backend, observer: BackendObserver): Backend {
  async function timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - t0) / 1e9;
    try {
      const r = await fn();
      observer.observeBackend(op, seconds(), null);
      return r;
    } catch (e) {
      observer.observeBackend(op, seconds(), outcomeOf(e));
      throw e;
    }
  }

  /** A listing with one observation per step (op `list`, whatever the listing's kind). */
  async function* timedListing<T>(listing: AsyncIterable<T>): AsyncIterable<T> {
    const it = listing[Symbol.asyncIterator]();
    try {
      for (;;) {
        const r = await timed('list', () => it.next());
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await it.return?.();
    }
  }

  const timedWriter = (w: ObjectWriter): ObjectWriter => ({
    write: (parts) => timed('writer.write', () => w.write(parts)),
    commit: () => timed('writer.commit', () => w.commit()),
    abort: () => timed('writer.abort', () => w.abort()),
  });

  const b: Backend = {
    ...(inner.buffersWrites ? { buffersWrites: true } : {}),
    put: (key, data) => timed('put', () => inner.put(key, data)),
    get: (key) => timed('get', () => inner.get(key)),
    getRange: (key, offset, length) => timed('getRange', () => inner.getRange(key, offset, length)),
    stat: (key) => timed('stat', () => inner.stat(key)),
    list: (prefix) => timedListing(inner.list(prefix)),
    delete: (key) => timed('delete', () => inner.delete(key)),
  };
  const { openWriter, getRangeInto, sweepLeftovers, listSizes } = inner;
  if (listSizes) b.listSizes = (prefix) => timedListing(listSizes.call(inner, prefix));
  if (openWriter) b.openWriter = async (key) => timedWriter(await timed('openWriter', () => openWriter.call(inner, key)));
  if (getRangeInto) b.getRangeInto = (key, o, l, dst) => timed('getRange', () => getRangeInto.call(inner, key, o, l, dst));
  if (sweepLeftovers) b.sweepLeftovers = (ms) => timed('sweepLeftovers', () => sweepLeftovers.call(inner, ms));
  return b;
}
