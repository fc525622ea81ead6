/**
 * Waits for an OpenStack resource to reach a state: polls `read` once a second (the issue's
 * bound: never faster than 1 s, never slower than 2 s), returns the resource when `done`
 * says so, throws when it enters a failure state or `timeoutMs` passes, and stops at once
 * when `signal` aborts (cancel).
 */
export async function waitUntil<T>(
  what: string,
  read: () => Promise<T | null>,
  done: (v: T) => boolean,
  o: { failed?: (v: T) => string | null; timeoutMs: number; signal?: AbortSignal; goneIsDone?: boolean },
): Promise<T | null> {
  const end = Date.now() + o.timeoutMs;
  for (;;) {
    o.signal?.throwIfAborted();
    const v = await read();
    if (v === null) {
      if (o.goneIsDone) return null;
      throw new Error(`${what} disappeared`);
    }
    if (done(v)) return v;
    const why = o.failed?.(v);
    if (why) throw new Error(`${what} failed: ${why}`);
    if (Date.now() > end) throw new Error(`${what}: not ready after ${Math.round(o.timeoutMs / 1000)} s`);
    await sleep(1000, o.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
