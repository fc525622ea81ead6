import type { Clock } from '../lib/clock.js';
import { RateLimitedError } from '../lib/errors.js';

/**
 * Brute-force limits of the embedded identity, modelled on Keystone's
 * `lockout_failure_attempts` / `lockout_duration`:
 *
 *  * per user: after `userFailures` failed password logins in a row (each within
 *    `lockoutMs` of the previous one) the user is locked for `lockoutMs`; every login of a
 *    locked user is refused, the right password included. A successful login resets the count.
 *  * per client address: after `addressFailures` failed logins from one address (each within
 *    `lockoutMs` of the previous one) that address is locked for `lockoutMs`. Success does not
 *    reset it (one valid account must not buy an attacker more guesses at others).
 *  * token issuance: at most `issuesPerMinute` tokens per user in any sliding minute
 *    (password and re-scope alike), else 429 with Retry-After.
 *
 * Unknown user names are counted like users, so a lockout tells nothing about which names
 * exist. Counters live in this process only: with N API processes an attacker gets at most N
 * times the limit (the store is not written on every failed login). 0 disables a limit.
 * Memory is bounded: at most `maxEntries` keys per table, the oldest forgotten first.
 */
export interface LoginLimits {
  userFailures: number;
  addressFailures: number;
  lockoutMs: number;
  issuesPerMinute: number;
}

export const DEFAULT_LOGIN_LIMITS: Readonly<LoginLimits> = Object.freeze({
  userFailures: 6,
  addressFailures: 30,
  lockoutMs: 900_000,
  issuesPerMinute: 120,
});

interface Failures {
  count: number;
  last: number;
  lockedUntil: number;
}

/** Why a login is refused before its password is looked at; undefined = may proceed. */
export type LockReason = 'user-locked' | 'address-locked' | undefined;

class FailureTable {
  private readonly entries = new Map<string, Failures>();

  constructor(
    private readonly threshold: number,
    private readonly lockoutMs: number,
    private readonly maxEntries: number,
  ) {}

  locked(key: string, now: number): boolean {
    const e = this.entries.get(key);
    return e !== undefined && now < e.lockedUntil;
  }

  /** Counts a failure; returns true when it locked the key. */
  fail(key: string, now: number): boolean {
    if (this.threshold <= 0) return false;
    let e = this.entries.get(key);
    if (!e || now - e.last >= this.lockoutMs) e = { count: 0, last: now, lockedUntil: 0 };
    this.entries.delete(key); // re-insert: Map order = least recently failed first
    e.count += 1;
    e.last = now;
    const locks = e.count >= this.threshold;
    if (locks) {
      e.lockedUntil = now + this.lockoutMs;
      e.count = 0;
    }
    this.entries.set(key, e);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    return locks;
  }

  reset(key: string): void {
    this.entries.delete(key);
  }
}

export class LoginGuard {
  private readonly users: FailureTable;
  private readonly addresses: FailureTable;
  private readonly issues = new Map<string, number[]>();

  constructor(
    private readonly clock: Clock,
    readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS,
    private readonly maxEntries = 100_000,
  ) {
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isInteger(v) || v < 0) throw new Error(`login limit ${k} must be a non-negative integer, got ${v}`);
    }
    this.users = new FailureTable(limits.userFailures, limits.lockoutMs, maxEntries);
    this.addresses = new FailureTable(limits.addressFailures, limits.lockoutMs, maxEntries);
  }

  /** Whether a login for `userKey` from `address` is refused outright (locked out). */
  lockReason(userKey: string, address: string | undefined): LockReason {
    const now = this.clock.now();
    if (this.users.locked(userKey, now)) return 'user-locked';
    if (address !== undefined && this.addresses.locked(address, now)) return 'address-locked';
    return undefined;
  }

  /** Records a failed password; returns which keys this failure locked (for the log). */
  failed(userKey: string, address: string | undefined): { userLocked: boolean; addressLocked: boolean } {
    const now = this.clock.now();
    return { userLocked: this.users.fail(userKey, now), addressLocked: address !== undefined && this.addresses.fail(address, now) };
  }

  succeeded(userKey: string): void {
    this.users.reset(userKey);
  }

  /**
   * Takes one token issuance for `userId` from its sliding minute; throws RateLimitedError
   * (429, Retry-After = seconds until the oldest issuance leaves the window) when exhausted.
   */
  takeIssuance(userId: string): void {
    const max = this.limits.issuesPerMinute;
    if (max <= 0) return;
    const now = this.clock.now();
    const recent = (this.issues.get(userId) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= max) {
      this.issues.set(userId, recent);
      throw new RateLimitedError('Too many tokens requested for this user; try again later.', (recent[0]! + 60_000 - now) / 1000);
    }
    recent.push(now);
    this.issues.delete(userId);
    this.issues.set(userId, recent);
    while (this.issues.size > this.maxEntries) this.issues.delete(this.issues.keys().next().value as string);
  }
}
