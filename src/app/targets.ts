import { statfs } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import type { NamedTarget } from '../lib/target.js';
import type { TargetProbe } from '../services/backup-target.service.js';
import { openBackend } from '../backend/open.js';
import type { BackendObserver } from '../backend/metrics.backend.js';
import { Repository } from '../repository/repository.js';
import { readConfig } from '../repository/config.js';
import { RepositorySet } from '../repository/repository-set.js';
import { FileKeySource } from '../repository/key-source.js';
import type { Clock } from '../lib/clock.js';
import type { KeyManager } from '../platform/platform.js';
import type { PlatformSettings } from '../platform/open.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';

/**
 * Opens every configured backup target as the service does (`init`: created and initialised
 * when new) or as the operator tools do (`open`: it must exist). A target that cannot be
 * opened stops the start with BackendConfigError naming it, like a single target always did.
 */
export async function openRepositories(
  config: Config,
  mode: 'init' | 'open',
  /** `keyManager`: the platform's (OpenStack: Barbican), for workloads whose KEK is a secret there. */
  o: { clock?: Clock; log?: Logger; observer?: BackendObserver; keyManager?: KeyManager } = {},
): Promise<RepositorySet> {
  const repos = new Map<string, Repository>();
  const keySource = encryptionKeySource(config);
  const km = o.keyManager;
  const secretKeys = km ? (secretUuid: string) => km.readKey(secretUuid) : null;
  for (const t of config.targets) {
    const backend = await openBackend(t.target, {
      create: mode === 'init',
      connections: config.targetConnections,
      observer: o.observer,
      retry: o.log
        ? { onRetry: (r) => o.log!.warn({ target: t.name, op: r.op, key: r.key, attempt: r.attempt, delayMs: r.delayMs, err: errorMessage(r.error) }, 'backup target request failed; retrying') }
        : undefined,
    });
    const opts = { clock: o.clock, logger: o.log, leaseTtlMs: config.repoLease.ttlMs, graceMs: config.repoLease.graceMs, keySource, secretKeys };
    repos.set(t.name, mode === 'init' ? await Repository.init(backend, {}, opts) : await Repository.open(backend, opts));
  }
  return new RepositorySet(repos, config.defaultTarget);
}

/** The key-encryption key source of encrypted workloads: the key file (config.encryptionKey). */
export function encryptionKeySource(config: Pick<Config, 'encryptionKey'>): FileKeySource {
  return new FileKeySource(config.encryptionKey.path, config.encryptionKey.create);
}

/** The start-up warning when the key file is open to other users (null when it is not, or absent). */
export function encryptionKeyWarning(config: Pick<Config, 'encryptionKey'>): string | null {
  const mode = encryptionKeySource(config).looseMode();
  return mode === null ? null : `the encryption key file (LIFEBOAT_ENCRYPTION_KEY_FILE) is open to other users (mode 0${mode.toString(8)}); run chmod 600 on it`;
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

/** What the platform factory needs from the configuration (platform/open.ts). */
export function platformSettings(config: Config, log?: Logger): PlatformSettings {
  const openstack = config.keystone ? { keystone: config.keystone, ...config.openstack, nodeName: config.nodeName } : undefined;
  return { kind: config.platform, inventoryPath: config.inventory, restoreDir: config.restoreDir, libvirt: config.libvirt, openstack, logger: log };
}
