/**
 * `fn` over every item with at most `limit` calls in flight; the results in the items' order.
 * For many small independent requests to a backend (an object store answers each in tens of
 * milliseconds: one at a time, a thousand of them take as many tens of seconds).
 *
 * The first failure stops new calls; the ones in flight are waited for (nothing keeps running
 * after the caller moved on), then that failure is thrown.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  let failure: unknown;
  const lane = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        if (!failed) failure = e;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed) throw failure;
  return out;
}
