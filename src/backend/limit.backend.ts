import { FifoPool } from '../lib/fifo-pool.js';
import type { Backend, ObjectWriter } from './backend.js';

/** A counting semaphore with a FIFO queue: waiters are served in arrival order. */
class Slots {
  private readonly permits: FifoPool<null>;
  constructor(readonly size: number) {
    this.permits = new FifoPool(Array<null>(size).fill(null));
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.permits.take();
    try {
      return await fn();
    } finally {
      this.permits.give(null); // the slot passes straight to the next waiter
    }
  }
}

/**
 * Wraps a backend so that at most `connections` requests run at once (S3 and NFS servers
 * throttle or stall beyond a point; restic's `-o s3.connections`). Every request holds one
 * slot while it runs. Streams hold a slot per step, never across steps: one per `next()` of a
 * listing and one per `commit`/`abort` of a writer (a `write` none, see limitWriter), so a caller that reads objects
 * while iterating a listing, or keeps several writers open, cannot deadlock the limiter.
 *
 * Put the retry wrapper OUTSIDE this one (`withRetry(withConcurrencyLimit(b, n))`): a request
 * waiting out its backoff then holds no slot.
 */
export function withConcurrencyLimit(inner: Backend, connections: number): Backend {
  if (!Number.isInteger(connections) || connections < 1) throw new RangeError(`connections must be a positive integer, got ${connections}`);
  const slots = new Slots(connections);

  /** A listing whose every step holds a slot while it runs, none between steps. */
  async function* stepped<T>(listing: AsyncIterable<T>): AsyncIterable<T> {
    const it = listing[Symbol.asyncIterator]();
    try {
      for (;;) {
        const r = await slots.run(() => it.next());
        if (r.done) return;
        yield r.value;
      }
    } finally {
      await it.return?.();
    }
  }

  // A write holds no slot: writes are sequential per writer, and a backend's write may wait on
  // its own memory bound (the S3 writer's part buffers) until another writer commits, which a
  // slot held while waiting could prevent.
  const limitWriter = (w: ObjectWriter): ObjectWriter => ({
    write: (parts) => w.write(parts),
    commit: () => slots.run(() => w.commit()),
    abort: () => slots.run(() => w.abort()),
  });

  const b: Backend = {
    ...(inner.buffersWrites ? { buffersWrites: true } : {}),
    put: (key, data) => slots.run(() => inner.put(key, data)),
    get: (key) => slots.run(() => inner.get(key)),
    getRange: (key, offset, length) => slots.run(() => inner.getRange(key, offset, length)),
    stat: (key) => slots.run(() => inner.stat(key)),
    list: (prefix) => stepped(inner.list(prefix)),
    delete: (key) => slots.run(() => inner.delete(key)),
  };
  const { openWriter, getRangeInto, sweepLeftovers, listSizes } = inner;
  if (listSizes) b.listSizes = (prefix) => stepped(listSizes.call(inner, prefix));
  if (openWriter) b.openWriter = async (key) => limitWriter(await slots.run(() => openWriter.call(inner, key)));
  if (getRangeInto) b.getRangeInto = (key, o, l, dst) => slots.run(() => getRangeInto.call(inner, key, o, l, dst));
  if (sweepLeftovers) b.sweepLeftovers = (ms) => slots.run(() => sweepLeftovers.call(inner, ms));
  return b;
}
