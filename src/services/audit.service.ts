import type { Clock } from '../lib/clock.js';
import { newId } from '../lib/ids.js';
import type { Logger } from '../lib/logger.js';
import type { RequestContext } from '../domain/context.js';
import type { Db } from '../store/db.js';
import { insertAuditEntry, listAuditEntries, purgeAuditEntries, type AuditEntry } from '../store/audit.store.js';

export type { AuditEntry } from '../store/audit.store.js';

/** What a state-changing request did, as the HTTP layer saw it. */
export interface AuditEvent {
  objectType: string;
  objectId: string | null;
  objectName: string | null;
  /** The policy action the route is checked against (or `unenforced`). */
  action: string;
  method: string;
  /** The route template, e.g. `/v1/:tenant_id/workloads/:id`. */
  route: string;
  statusCode: number;
}

/** Most entries one query returns (newest first); narrow the range for older ones. */
export const AUDIT_QUERY_LIMIT = 10_000;

/** How often at most the retention purge runs (on the next write after this long). */
const PURGE_EVERY_MS = 60 * 60_000;

/**
 * The audit trail (workloadmgr-api §4.11): every state-changing request is recorded with who,
 * on what, what and when; entries older than the retention are deleted, at most once an hour,
 * by the write that finds the last purge that old (so every API process purges, none needs a
 * timer, and an idle service keeps what it has until the next write).
 */
export class AuditService {
  private lastPurge = Number.NEGATIVE_INFINITY;
  constructor(private readonly d: { db: Db; clock: Clock; log: Logger; retentionDays: number }) {}

  async record(ctx: RequestContext, e: AuditEvent): Promise<void> {
    const now = this.d.clock.now();
    const entry: AuditEntry = {
      id: newId(),
      at: now,
      request_id: ctx.requestId,
      user_id: ctx.userId,
      user_name: ctx.userName,
      project_id: ctx.projectId,
      project_name: ctx.projectName,
      object_type: e.objectType,
      object_id: e.objectId,
      object_name: e.objectName,
      action: e.action,
      method: e.method,
      route: e.route,
      status_code: e.statusCode,
    };
    await insertAuditEntry(this.d.db, entry);
    if (now - this.lastPurge >= PURGE_EVERY_MS) {
      this.lastPurge = now;
      const removed = await purgeAuditEntries(this.d.db, now - this.d.retentionDays * 86_400_000);
      if (removed > 0) this.d.log.info({ removed, retentionDays: this.d.retentionDays }, 'audit log entries past retention deleted');
    }
  }

  /** Entries with `from <= at < to`, newest first (at most AUDIT_QUERY_LIMIT). */
  list(range: { from: number; to: number }): Promise<AuditEntry[]> {
    return listAuditEntries(this.d.db, range, AUDIT_QUERY_LIMIT);
  }

  now(): number {
    return this.d.clock.now();
  }
}
