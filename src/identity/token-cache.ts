import type { Clock } from '../lib/clock.js';

/**
 * Bounded LRU of positive token validations, keyed by token hash. Each entry carries its own
 * deadline (epoch ms, by the injected clock); callers set it to min(cache window, token
 * expires_at), so an entry is never served past the token's expiry. When full, the least
 * recently used entry is evicted.
 */
export class TokenCache<V> {
  private readonly entries = new Map<string, { value: V; until: number }>();

  constructor(
    private readonly clock: Clock,
    readonly maxEntries: number,
  ) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new Error(`token cache size must be a non-negative integer, got ${maxEntries}`);
  }

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.clock.now() >= e.until) {
      this.entries.delete(key);
      return undefined;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.value;
  }

  /** Caches `value` until `until` (epoch ms); a deadline already past caches nothing. */
  set(key: string, value: V, until: number): void {
    if (this.maxEntries === 0 || until <= this.clock.now()) return;
    this.entries.delete(key);
    this.entries.set(key, { value, until });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
