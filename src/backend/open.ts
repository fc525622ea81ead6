import { mkdir, stat } from 'node:fs/promises';
import { describeTarget, type BackupTarget } from '../lib/target.js';
import type { Backend } from './backend.js';
import { FsBackend } from './fs/fs.backend.js';
import { withConcurrencyLimit } from './limit.backend.js';
import { withRetry, type RetryOptions } from './retry.backend.js';

/**
 * A backup target that cannot be opened as configured (unsupported kind, missing directory).
 * Reported at start like a configuration error: the message names the target, never a secret.
 */
export class BackendConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendConfigError';
  }
}

export interface OpenBackendOptions {
  /** Create the target when it does not exist (the service); false: it must exist (operator tools). */
  create: boolean;
  /** Most requests in flight at once; default per kind (DEFAULT_CONNECTIONS). */
  connections?: number | null;
  retry?: RetryOptions;
}

/** Opens one kind of target, unwrapped. Each kind has exactly one entry (the registry). */
type Opener<K extends BackupTarget['kind']> = (target: Extract<BackupTarget, { kind: K }>, opts: OpenBackendOptions) => Promise<Backend>;

const OPENERS: { [K in BackupTarget['kind']]: Opener<K> } = {
  file: openFileTarget,
  s3: async (t) => {
    throw new BackendConfigError(`backup target ${describeTarget(t)}: S3 targets are not supported by this version yet; use file://<absolute dir>`);
  },
};

/** Requests in flight per process when the config does not say (NFS and S3 stall beyond a point). */
const DEFAULT_CONNECTIONS: Record<BackupTarget['kind'], number> = { file: 16, s3: 8 };

/**
 * THE way the service and the operator tools get a Backend: the target's kind picks the
 * implementation, then every backend is wrapped the same way — concurrency limit inside,
 * retry of transient failures outside (a request sleeping out its backoff holds no slot).
 */
export async function openBackend(target: BackupTarget, opts: OpenBackendOptions): Promise<Backend> {
  const open = OPENERS[target.kind] as Opener<BackupTarget['kind']>;
  const raw = await open(target, opts);
  const connections = opts.connections ?? DEFAULT_CONNECTIONS[target.kind];
  return withRetry(withConcurrencyLimit(raw, connections), opts.retry);
}

async function openFileTarget(t: { kind: 'file'; path: string }, opts: OpenBackendOptions): Promise<Backend> {
  if (opts.create) await mkdir(t.path, { recursive: true });
  let isDir = false;
  try {
    isDir = (await stat(t.path)).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new BackendConfigError(`backup target ${describeTarget(t)} does not exist or is not a directory`);
  return new FsBackend(t.path);
}
