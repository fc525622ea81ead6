/**
 * The one way Lifeboat waits on OpenStack (issue 12's target: no step waits by polling faster
 * than 1 s or slower than 2 s). Reads start POLL_MIN_MS apart: after a read that took `r` ms
 * the next one starts `max(0, POLL_MIN_MS - r)` ms later, so the start of one read to the start
 * of the next is POLL_MIN_MS, or the read's own time when that is longer (a read is never cut
 * short; one slower than POLL_MAX_MS is the service's time, not a wait). Retry pauses of calls
 * that failed transiently (retryPause) stay within the same bounds.
 */
export const POLL_MIN_MS = 1000;
export const POLL_MAX_MS = 2000;

/** Time as the waits see it: real, or a fake one in unit tests. */
export interface WaitClock {
  now(): number;
  /** Resolves after `ms`, rejects with the signal's reason as soon as it aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realWaitClock: WaitClock = { now: () => Date.now(), sleep };

/** The pause after a read that took `readMs`: the next read starts POLL_MIN_MS after this one started. */
export function pollPauseMs(readMs: number): number {
  return Math.max(0, POLL_MIN_MS - Math.max(0, readMs));
}

/** The pause before retry `attempt` + 1 of a call that failed transiently: 1 s, then 2 s (never longer). */
export function retryPauseMs(attempt: number): number {
  return Math.min(POLL_MAX_MS, POLL_MIN_MS * Math.max(1, attempt));
}

/** Sleeps retryPauseMs(attempt). */
export function retryPause(attempt: number, signal?: AbortSignal, clock: WaitClock = realWaitClock): Promise<void> {
  return clock.sleep(retryPauseMs(attempt), signal);
}

export interface WaitOptions<T> {
  /** A state that will not turn into the wanted one: the wait fails naming it. */
  failed?: (v: T) => string | null;
  timeoutMs: number;
  signal?: AbortSignal;
  /** `read` answering null (the resource is gone) ends the wait with null instead of failing. */
  goneIsDone?: boolean;
  clock?: WaitClock;
}

/**
 * Waits for an OpenStack resource to reach a state: reads it (pacing as above), returns it when
 * `done` says so, throws when it enters a failure state or `timeoutMs` passes, and stops at once
 * when `signal` aborts (cancel).
 */
export async function waitUntil<T>(what: string, read: () => Promise<T | null>, done: (v: T) => boolean, o: WaitOptions<T>): Promise<T | null> {
  const clock = o.clock ?? realWaitClock;
  const end = clock.now() + o.timeoutMs;
  for (;;) {
    o.signal?.throwIfAborted();
    const started = clock.now();
    const v = await read();
    if (v === null) {
      if (o.goneIsDone) return null;
      throw new Error(`${what} disappeared`);
    }
    if (done(v)) return v;
    const why = o.failed?.(v);
    if (why) throw new Error(`${what} failed: ${why}`);
    const now = clock.now();
    if (now > end) throw new Error(`${what}: not ready after ${Math.round(o.timeoutMs / 1000)} s`);
    await clock.sleep(pollPauseMs(now - started), o.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
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
