import { inTransaction, type Db } from '../store/db.js';
import { getWorkload, markWorkloadDeleted, transitionWorkload } from '../store/workload.store.js';
import type { Platform } from '../platform/platform.js';
import type { Clock } from '../lib/clock.js';
import { toSecond } from '../lib/time.js';
import { WORKLOAD_JOBS } from './kinds.js';
import type { AnyJobHandler, KindJob } from './runner.js';

/** Creating → available once every member VM is confirmed by the platform (else error). */
export async function completeWorkloadCreate(db: Db, platform: Platform, workloadId: string, now: number): Promise<void> {
  const w = await getWorkload(db, { admin: true }, workloadId);
  if (!w || w.status !== 'creating') return;
  const missing: string[] = [];
  for (const m of w.instances) if (!(await platform.getInstance(w.project_id, m.id))) missing.push(m.id);
  if (missing.length > 0) {
    await transitionWorkload(db, w.id, { admin: true }, ['creating'], 'error', now, { error_msg: `Instances not found: ${missing.join(', ')}` });
  } else {
    await transitionWorkload(db, w.id, { admin: true }, ['creating'], 'available', now);
  }
}

export async function completeWorkloadDelete(db: Db, workloadId: string, now: number): Promise<void> {
  await inTransaction(db, async (tx) => {
    const w = await getWorkload(tx, { admin: true }, workloadId);
    if (!w || w.status !== 'deleting') return;
    await markWorkloadDeleted(tx, workloadId, now);
  });
}

/** Puts a workload left in a transient state by a dead job back where users can act on it. */
export async function recoverWorkload(db: Db, workloadId: string, now: number): Promise<void> {
  await transitionWorkload(db, workloadId, { admin: true }, ['creating'], 'error', now, { error_msg: 'Workload creation did not finish' });
  await transitionWorkload(db, workloadId, { admin: true }, ['resetting', 'deleting'], 'available', now);
}

/** Handlers that finish workload create, reset and delete. */
export function workloadJobHandlers(db: Db, platform: Platform, clock: Clock): AnyJobHandler[] {
  const now = () => toSecond(clock.now());
  const onLost = async (job: KindJob<'workload.create' | 'workload.reset' | 'workload.delete'>) => recoverWorkload(db, job.payload.workloadId, now());
  return [
    { kind: WORKLOAD_JOBS.create, run: async (job) => completeWorkloadCreate(db, platform, job.payload.workloadId, now()), onLost },
    {
      kind: WORKLOAD_JOBS.reset,
      run: async (job) => {
        await transitionWorkload(db, job.payload.workloadId, { admin: true }, ['resetting'], 'available', now());
      },
      onLost,
    },
    { kind: WORKLOAD_JOBS.delete, run: async (job) => completeWorkloadDelete(db, job.payload.workloadId, now()), onLost },
  ];
}
