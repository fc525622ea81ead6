/**
 * Waiting in tests of every layer: on a condition, never on a fixed sleep (a loaded machine
 * makes any sleep too short). Not used by production code.
 */

/** Polls `fn` every 20 ms until it returns a truthy value, which it returns; throws naming `what` after `ms`. */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 10_000, what = 'condition'): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
