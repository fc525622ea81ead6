/** Job kinds: the one list services enqueue by and handlers register under. */
export const WORKLOAD_JOBS = {
  create: 'workload.create',
  reset: 'workload.reset',
  delete: 'workload.delete',
} as const;

export const SNAPSHOT_JOBS = {
  take: 'snapshot.take',
  delete: 'snapshot.delete',
} as const;

export const RESTORE_JOBS = {
  run: 'restore.run',
} as const;
