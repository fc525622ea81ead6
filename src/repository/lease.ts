import { hostname } from 'node:os';
import type { Backend } from '../backend/backend.js';
import { listAll } from '../backend/backend.js';
import type { Clock } from '../lib/clock.js';
import { NotFoundError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { keys, parse } from './keys.js';

/**
 * Leases (`locks/<id>.json`) announce running writers, readers (restore, verify) and GC to
 * other processes. They are shared, not exclusive: any number of writers run at once. GC reads
 * them to decide what it may delete (see gc.ts). A lease is live while its heartbeat is younger
 * than ttl + grace (grace covers clock skew between hosts); a holder whose own heartbeat fell
 * more than ttl behind must stop before publishing anything (fencing).
 */
export type LeaseKind = 'writer' | 'reader' | 'gc';

export interface LeaseRecord {
  id: string;
  kind: LeaseKind;
  projectId: string | null;
  snapshotId: string | null;
  host: string;
  pid: number;
  startedAt: number;
  heartbeatAt: number;
  ttlMs: number;
  /** Id of the GC plan this holder read when it started (writers exclude condemned packs). */
  gcPlanSeen: string | null;
}

export function isLive(l: LeaseRecord, now: number, graceMs: number): boolean {
  return now - l.heartbeatAt <= l.ttlMs + graceMs;
}

export class Lease {
  private timer: NodeJS.Timeout | null = null;
  private lastOk: number;
  private failure: unknown = null;
  private released = false;

  private constructor(
    private readonly backend: Backend,
    private readonly clock: Clock,
    private readonly logger: Logger,
    readonly record: LeaseRecord,
  ) {
    this.lastOk = record.heartbeatAt;
  }

  static async acquire(
    backend: Backend,
    clock: Clock,
    logger: Logger,
    fields: Omit<LeaseRecord, 'host' | 'pid' | 'startedAt' | 'heartbeatAt'>,
  ): Promise<Lease> {
    const now = clock.now();
    const record: LeaseRecord = { ...fields, host: hostname(), pid: process.pid, startedAt: now, heartbeatAt: now };
    await backend.put(keys.lease(record.id), Buffer.from(JSON.stringify(record)));
    const lease = new Lease(backend, clock, logger, record);
    lease.timer = setInterval(() => void lease.beat(), Math.max(10, Math.floor(record.ttlMs / 3)));
    lease.timer.unref();
    return lease;
  }

  /** Renews the heartbeat now (also called by the timer). */
  async beat(): Promise<void> {
    if (this.released) return;
    const now = this.clock.now();
    const rec = { ...this.record, heartbeatAt: now };
    try {
      await this.backend.put(keys.lease(this.record.id), Buffer.from(JSON.stringify(rec)));
      this.record.heartbeatAt = now;
      this.lastOk = now;
    } catch (e) {
      this.failure = e;
      this.logger.warn({ lease: this.record.id, err: String(e) }, 'lease heartbeat failed');
    }
  }

  /** Throws when the lease may have expired in the eyes of GC: the holder must not publish. */
  assertValid(): void {
    if (this.released) throw new Error('lease already released');
    if (this.clock.now() - this.lastOk > this.record.ttlMs) {
      throw new Error(`lease ${this.record.id} expired (last heartbeat ${this.clock.now() - this.lastOk} ms ago${this.failure ? `: ${String(this.failure)}` : ''})`);
    }
  }

  /** Stops heartbeats; `remove` deletes the lease object (normal end), false simulates a crash. */
  async release(remove = true): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.released) return;
    this.released = true;
    if (remove) await this.backend.delete(keys.lease(this.record.id));
  }
}

/** All lease records; unreadable ones (torn by a foreign tool) count as live, to be safe. */
export async function listLeases(backend: Backend): Promise<{ key: string; record: LeaseRecord | null }[]> {
  const out: { key: string; record: LeaseRecord | null }[] = [];
  for (const key of await listAll(backend, 'locks/')) {
    if (parse.lease(key) === null) continue;
    try {
      out.push({ key, record: JSON.parse((await backend.get(key)).toString('utf8')) as LeaseRecord });
    } catch (e) {
      if (e instanceof NotFoundError) continue; // released meanwhile
      out.push({ key, record: null });
    }
  }
  return out;
}
