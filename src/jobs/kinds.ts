import type { RestorePlan } from '../domain/restore.js';

/**
 * Every job kind and the payload it carries: the one list. Services enqueue by it
 * (jobs/queue.ts `enqueue`), handlers register under it (jobs/runner.ts `JobHandler<K>`), and a
 * kind missing here cannot be enqueued or handled. Payloads are stored as JSON, so they hold
 * plain data only; a payload type may grow optional fields, never change the meaning of one
 * (jobs queued by an older process are run by a newer one).
 */
export interface JobPayloads {
  /** creating → available once the platform confirms every member VM (else error). */
  'workload.create': { workloadId: string };
  /** resetting → available (the reset itself set force_full). */
  'workload.reset': { workloadId: string };
  /** deleting → deleted. */
  'workload.delete': { workloadId: string };
  /** Runs a snapshot started by services/snapshot-start.service.ts. */
  'snapshot.take': { snapshotId: string };
  /** One compute host's share of a split snapshot (jobs/snapshot-part.job.ts); always targeted at that host. */
  'snapshot.part': { snapshotId: string; partId: string };
  /** Removes a `deleting` snapshot from the repository; finishes its task when there is one. */
  'snapshot.delete': { snapshotId: string; taskId?: string };
  /** Deletes snapshots that retention already moved to `deleting`, then unlocks the workload. */
  'retention.delete': { workloadId: string; snapshotIds: string[] };
  /** Runs a restore with the plan validated by the restore service. */
  'restore.run': { restoreId: string; plan: RestorePlan };
  /** Runs a file search created by services/file-search.service.ts. */
  'file_search.run': { searchId: number };
  /** Runs a `repo verify` of one backup target started by services/repo-verify.service.ts. */
  'repo.verify': { verificationId: string };
}

export type JobKind = keyof JobPayloads;

/** The kinds at run time (exactly the keys of JobPayloads: a missing or extra key does not compile). */
const KIND_SET: { readonly [K in JobKind]: true } = {
  'workload.create': true,
  'workload.reset': true,
  'workload.delete': true,
  'snapshot.take': true,
  'snapshot.part': true,
  'snapshot.delete': true,
  'retention.delete': true,
  'restore.run': true,
  'file_search.run': true,
  'repo.verify': true,
};

export const JOB_KINDS: readonly JobKind[] = Object.keys(KIND_SET).filter(isJobKind);

export function isJobKind(kind: string): kind is JobKind {
  return Object.hasOwn(KIND_SET, kind);
}

// Names by area, for readable call sites; each value is checked against the list above.
export const WORKLOAD_JOBS = { create: 'workload.create', reset: 'workload.reset', delete: 'workload.delete' } as const satisfies Record<string, JobKind>;
export const SNAPSHOT_JOBS = { take: 'snapshot.take', part: 'snapshot.part', delete: 'snapshot.delete' } as const satisfies Record<string, JobKind>;
export const RETENTION_JOBS = { delete: 'retention.delete' } as const satisfies Record<string, JobKind>;
export const RESTORE_JOBS = { run: 'restore.run' } as const satisfies Record<string, JobKind>;
export const FILE_SEARCH_JOBS = { run: 'file_search.run' } as const satisfies Record<string, JobKind>;
export const REPO_JOBS = { verify: 'repo.verify' } as const satisfies Record<string, JobKind>;
