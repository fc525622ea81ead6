import { statfs } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import type { NamedTarget } from '../lib/target.js';
import type { TargetProbe } from '../services/backup-target.service.js';
import { openBackend } from '../backend/open.js';
import type { BackendObserver } from '../backend/metrics.backend.js';
import { Repository } from '../repository/repository.js';
import { readConfig } from '../repository/config.js';
import { RepositorySet } from '../repository/repository-set.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';

/**
 * Opens every configured backup target as the service does (`init`: created and initialised
 * when new) or as the operator tools do (`open`: it must exist). A target that cannot be
 * opened stops the start with BackendConfigError naming it, like a single target always did.
 */
export async function openRepositories(config: Config, mode: 'init' | 'open', o: { clock?: Clock; log?: Logger; observer?: BackendObserver } = {}): Promise<RepositorySet> {
  const repos = new Map<string, Repository>();
  for (const t of config.targets) {
    const backend = await openBackend(t.target, {
      create: mode === 'init',
      connections: config.targetConnections,
      observer: o.observer,
      retry: o.log
        ? { onRetry: (r) => o.log!.warn({ target: t.name, op: r.op, key: r.key, attempt: r.attempt, delayMs: r.delayMs, err: errorMessage(r.error) }, 'backup target request failed; retrying') }
        : undefined,
    });
    const opts = { clock: o.clock, logger: o.log, leaseTtlMs: config.repoLease.ttlMs, graceMs: config.repoLease.graceMs };
    repos.set(t.name, mode === 'init' ? await Repository.init(backend, {}, opts) : await Repository.open(backend, opts));
  }
  return new RepositorySet(repos, config.defaultTarget);
}

/**
 * Capacity and reachability of one target for the admin list: a file system's size and free
 * space (statfs of the directory), nothing for S3 (a bucket has no size); reachable when the
 * repository config can be read. Never throws: an unreachable target is reported, not an error.
 */
export async function probeTarget(repos: RepositorySet, t: NamedTarget): Promise<TargetProbe> {
  let reachable = true;
  try {
    reachable = (await readConfig(repos.get(t.name).backend)) !== null;
  } catch {
    reachable = false;
  }
  if (t.target.kind !== 'file' || !reachable) return { reachable, capacity: null, available: null };
  try {
    const s = await statfs(t.target.path);
    return { reachable, capacity: s.blocks * s.bsize, available: s.bavail * s.bsize };
  } catch {
    return { reachable, capacity: null, available: null };
  }
}
