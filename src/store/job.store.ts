import { sql } from 'kysely';
import type { Db, DbOrTx, DialectName } from './db.js';
import type { JobsTable } from './schema.js';
import { newId } from '../lib/ids.js';

/**
 * The durable job queue. A job row is written in the same transaction as the state change it
 * serves (outbox). Workers claim with a lease they renew (heartbeat); a job whose lease
 * expired is never re-run — the reconciler fails it and repairs the resource's state.
 */
export interface Job {
  id: string;
  kind: string;
  payload: unknown;
  resourceId: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  attempts: number;
  error: string | null;
  createdAt: number;
  /** The node name of the only worker that may claim this job; null: any worker. */
  targetNode: string | null;
}

export interface NewJob {
  kind: string;
  payload: unknown;
  resourceId: string;
  now: number;
  targetNode?: string | null;
}

function toJob(r: JobsTable): Job {
  return {
    id: r.id,
    kind: r.kind,
    payload: JSON.parse(r.payload) as unknown,
    resourceId: r.resource_id,
    status: r.status as Job['status'],
    leaseOwner: r.lease_owner,
    leaseExpiresAt: r.lease_expires_at,
    attempts: r.attempts,
    error: r.error,
    createdAt: r.created_at,
    targetNode: r.target_node,
  };
}

/** Untyped: services and handlers enqueue through jobs/queue.ts, which checks kind and payload. */
export async function enqueueJob(db: DbOrTx, job: NewJob): Promise<string> {
  const id = newId();
  await db
    .insertInto('jobs')
    .values({
      id,
      kind: job.kind,
      payload: JSON.stringify(job.payload),
      resource_id: job.resourceId,
      status: 'queued',
      lease_owner: null,
      lease_expires_at: null,
      attempts: 0,
      error: null,
      created_at: job.now,
      updated_at: job.now,
      target_node: job.targetNode ?? null,
    })
    .execute();
  return id;
}

/**
 * Claims the oldest queued job this worker may run: one without a target node, or one for
 * `node`; with `onlyKinds`, one of those kinds only. PostgreSQL: one statement with FOR UPDATE SKIP LOCKED, so many workers never block on
 * or double-claim a row. SQLite: a conditional update on the chosen row (one process writes at
 * a time; the condition still protects a second process).
 */
export async function claimJob(db: Db, dialect: DialectName, owner: string, leaseMs: number, now: number, node: string | null = null, onlyKinds?: readonly string[]): Promise<Job | null> {
  const expires = now + leaseMs;
  if (onlyKinds?.length === 0) return null;
  if (dialect === 'postgres') {
    const ofKinds = onlyKinds ? sql`AND kind IN (${sql.join(onlyKinds)})` : sql``;
    const r = await sql<JobsTable>`
      UPDATE jobs SET status = 'running', lease_owner = ${owner}, lease_expires_at = ${expires},
             attempts = attempts + 1, updated_at = ${now}
      WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND (target_node IS NULL OR target_node = ${node}) ${ofKinds}
                  ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(db);
    const row = r.rows[0];
    return row ? toJob(row) : null;
  }
  for (let tries = 0; tries < 5; tries++) {
    const cand = await db
      .selectFrom('jobs')
      .select('id')
      .where('status', '=', 'queued')
      .where((eb) => (node === null ? eb('target_node', 'is', null) : eb.or([eb('target_node', 'is', null), eb('target_node', '=', node)])))
      .$if(onlyKinds !== undefined, (qb) => qb.where('kind', 'in', onlyKinds!))
      .orderBy('created_at')
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    if (!cand) return null;
    const res = await db
      .updateTable('jobs')
      .set((eb) => ({ status: 'running', lease_owner: owner, lease_expires_at: expires, attempts: eb('attempts', '+', 1), updated_at: now }))
      .where('id', '=', cand.id)
      .where('status', '=', 'queued')
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) {
      const row = await db.selectFrom('jobs').selectAll().where('id', '=', cand.id).executeTakeFirstOrThrow();
      return toJob(row);
    }
  }
  return null;
}

/** Renews the lease; false when this worker no longer holds the job (reconciled meanwhile). */
export async function renewLease(db: Db, id: string, owner: string, leaseMs: number, now: number): Promise<boolean> {
  const res = await db
    .updateTable('jobs')
    .set({ lease_expires_at: now + leaseMs, updated_at: now })
    .where('id', '=', id)
    .where('lease_owner', '=', owner)
    .where('status', '=', 'running')
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Ends a job this worker holds; false when the lease was lost (the reconciler owns it now). */
export async function finishJob(db: DbOrTx, id: string, owner: string, outcome: { status: 'done' | 'failed'; error?: string }, now: number): Promise<boolean> {
  const res = await db
    .updateTable('jobs')
    .set({ status: outcome.status, error: outcome.error ?? null, lease_expires_at: null, updated_at: now })
    .where('id', '=', id)
    .where('lease_owner', '=', owner)
    .where('status', '=', 'running')
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/**
 * Gives a job this worker claimed but never started back to the queue (worker stopping).
 * False when the job is no longer held by `owner`.
 */
export async function releaseJob(db: DbOrTx, id: string, owner: string, now: number): Promise<boolean> {
  const res = await db
    .updateTable('jobs')
    .set({ status: 'queued', lease_owner: null, lease_expires_at: null, updated_at: now })
    .where('id', '=', id)
    .where('lease_owner', '=', owner)
    .where('status', '=', 'running')
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Running jobs whose lease ran out: their worker is gone. */
export async function listExpiredJobs(db: Db, now: number): Promise<Job[]> {
  const rows = await db.selectFrom('jobs').selectAll().where('status', '=', 'running').where('lease_expires_at', '<', now).orderBy('created_at').execute();
  return rows.map(toJob);
}

/** Takes an expired job away from its dead worker (conditional: exactly one reconciler wins). */
export async function failExpiredJob(db: DbOrTx, id: string, error: string, now: number): Promise<boolean> {
  const res = await db
    .updateTable('jobs')
    .set({ status: 'failed', error, lease_expires_at: null, updated_at: now })
    .where('id', '=', id)
    .where('status', '=', 'running')
    .where('lease_expires_at', '<', now)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

/** Queued jobs that only one node may claim (the reconciler checks that node still lives). */
export async function listQueuedTargetedJobs(db: DbOrTx): Promise<Job[]> {
  const rows = await db.selectFrom('jobs').selectAll().where('status', '=', 'queued').where('target_node', 'is not', null).orderBy('created_at').execute();
  return rows.map(toJob);
}

/** Fails a job that is still queued (never started); false when a worker claimed it meanwhile. */
export async function failQueuedJob(db: DbOrTx, id: string, error: string, now: number): Promise<boolean> {
  const res = await db.updateTable('jobs').set({ status: 'failed', error, updated_at: now }).where('id', '=', id).where('status', '=', 'queued').executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}

export async function getJob(db: DbOrTx, id: string): Promise<Job | null> {
  const r = await db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  return r ? toJob(r) : null;
}

/** Removes finished jobs older than `before` (housekeeping). */
export async function purgeFinishedJobs(db: Db, before: number): Promise<number> {
  const res = await db.deleteFrom('jobs').where('status', 'in', ['done', 'failed']).where('updated_at', '<', before).executeTakeFirst();
  return Number(res.numDeletedRows);
}

/**
 * Queued or running jobs acting on a workload: on the workload itself (create, reset, delete,
 * retention) or on one of its snapshots or restores. Oldest first.
 */
export async function activeJobsOfWorkload(db: DbOrTx, workloadId: string): Promise<Job[]> {
  const rows = await db
    .selectFrom('jobs')
    .selectAll()
    .where('status', 'in', ['queued', 'running'])
    .where((eb) =>
      eb.or([
        eb('resource_id', '=', workloadId),
        eb('resource_id', 'in', eb.selectFrom('snapshots').select('id').where('workload_id', '=', workloadId)),
        eb('resource_id', 'in', eb.selectFrom('restores').select('id').where('workload_id', '=', workloadId)),
      ]),
    )
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map(toJob);
}

/**
 * Ends a queued or running job without running (the rest of) it: `failed` with `reason`. A
 * worker running it loses its lease at its next heartbeat (renewLease → false) and aborts; its
 * finishJob then changes nothing. False when the job had already ended (conditional update).
 */
export async function cancelJob(db: DbOrTx, id: string, reason: string, now: number): Promise<boolean> {
  const res = await db
    .updateTable('jobs')
    .set({ status: 'failed', error: reason, lease_expires_at: null, updated_at: now })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'running'])
    .executeTakeFirst();
  return Number(res.numUpdatedRows) === 1;
}
