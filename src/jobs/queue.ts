import type { DbOrTx } from '../store/db.js';
import { enqueueJob } from '../store/job.store.js';
import type { JobKind, JobPayloads } from './kinds.js';

export interface EnqueueOptions {
  /** The snapshot, restore or workload the job acts on (what the reconciler repairs). */
  resourceId: string;
  /** Epoch ms (the store's clock unit for jobs). */
  now: number;
  /**
   * The node name of the only worker that may run the job (per-host routing: the compute host
   * whose disks the job reads: jobs/routing.ts). Absent: any worker.
   */
  targetNode?: string;
}

/**
 * Queues a job of `kind` with the payload that kind takes (checked at compile time). Call it in
 * the transaction of the state change the job serves, so both commit or neither does (outbox).
 * Returns the job id.
 */
export function enqueue<K extends JobKind>(db: DbOrTx, kind: K, payload: JobPayloads[K], o: EnqueueOptions): Promise<string> {
  return enqueueJob(db, { kind, payload, resourceId: o.resourceId, now: o.now, targetNode: o.targetNode ?? null });
}
