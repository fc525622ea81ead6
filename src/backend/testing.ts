import { TransientError, type Backend } from './backend.js';

/** Which request a fault applies to: the operation name and the key (or list prefix). */
export type FaultOp = 'put' | 'get' | 'getRange' | 'stat' | 'list' | 'delete' | 'openWriter';

/**
 * A test decorator that makes requests fail on purpose, to prove what wrappers and callers do
 * with failures (restic's test backends do the same). `decide` is asked before each request;
 * returning an Error throws it instead of calling the inner backend. For `list`, `afterItems`
 * lets the listing (either kind) yield that many items before failing (a connection reset mid-listing).
 * `calls` counts requests per operation, faulted ones included.
 */
export function faultyBackend(
  inner: Backend,
  decide: (op: FaultOp, key: string, call: number) => Error | { error: Error; afterItems: number } | null,
): Backend & { calls: Record<FaultOp, number> } {
  const calls: Record<FaultOp, number> = { put: 0, get: 0, getRange: 0, stat: 0, list: 0, delete: 0, openWriter: 0 };
  const gate = (op: FaultOp, key: string) => {
    const d = decide(op, key, ++calls[op]);
    if (d instanceof Error) throw d;
    return d;
  };
  const b: Backend & { calls: typeof calls } = {
    calls,
    put: async (key, data) => (gate('put', key), inner.put(key, data)),
    get: async (key) => (gate('get', key), inner.get(key)),
    getRange: async (key, o, l) => (gate('getRange', key), inner.getRange(key, o, l)),
    stat: async (key) => (gate('stat', key), inner.stat(key)),
    delete: async (key) => (gate('delete', key), inner.delete(key)),
    list: (prefix) => faulted(prefix, inner.list(prefix)),
  };
  /** A listing that fails as `decide` says (both kinds count as op `list`). */
  async function* faulted<T>(prefix: string, listing: AsyncIterable<T>): AsyncIterable<T> {
    const d = gate('list', prefix);
    let n = 0;
    for await (const item of listing) {
      if (d && n++ >= d.afterItems) throw d.error;
      yield item;
    }
    if (d) throw d.error;
  }
  const { openWriter, getRangeInto, listSizes } = inner;
  if (listSizes) b.listSizes = (prefix) => faulted(prefix, listSizes.call(inner, prefix));
  if (openWriter) b.openWriter = async (key) => (gate('openWriter', key), openWriter.call(inner, key));
  if (getRangeInto) b.getRangeInto = async (key, o, l, dst) => (gate('getRange', key), getRangeInto.call(inner, key, o, l, dst));
  return b;
}

/** A transient failure as a real backend reports it (S3 503 SlowDown, NFS timeout). */
export function transient(what = 'simulated 503 SlowDown'): TransientError {
  return new TransientError(what);
}
