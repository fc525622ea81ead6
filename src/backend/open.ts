import { mkdir, stat } from 'node:fs/promises';
import { describeTarget, type BackupTarget, type S3Target } from '../lib/target.js';
import type { Backend } from './backend.js';
import { FsBackend } from './fs/fs.backend.js';
import { DEFAULT_PART_SIZE, S3Backend } from './s3/s3.backend.js';
import { S3CredentialsError } from './s3/s3.credentials.js';
import { withConcurrencyLimit } from './limit.backend.js';
import { withRetry, type RetryOptions } from './retry.backend.js';
import { withMetrics, type BackendObserver } from './metrics.backend.js';

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
  /** Told the latency and outcome of every request to the target (metrics). */
  observer?: BackendObserver;
}

/** Opens one kind of target, unwrapped. Each kind has exactly one entry (the registry). */
type Opener<K extends BackupTarget['kind']> = (target: Extract<BackupTarget, { kind: K }>, opts: OpenBackendOptions) => Promise<Backend>;

const OPENERS: { [K in BackupTarget['kind']]: Opener<K> } = {
  file: openFileTarget,
  s3: openS3Target,
};

/** Requests in flight per process when the config does not say (NFS and S3 stall beyond a point). */
const DEFAULT_CONNECTIONS: Record<BackupTarget['kind'], number> = { file: 16, s3: 8 };

/**
 * THE way the service and the operator tools get a Backend: the target's kind picks the
 * implementation, then every backend is wrapped the same way — metrics innermost (one
 * observation per real request), concurrency limit around it, retry of transient failures
 * outside (a request sleeping out its backoff holds no slot).
 */
export async function openBackend(target: BackupTarget, opts: OpenBackendOptions): Promise<Backend> {
  const open = OPENERS[target.kind] as Opener<BackupTarget['kind']>;
  const opened = await open(target, opts);
  const raw = opts.observer ? withMetrics(opened, opts.observer) : opened;
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

/**
 * The bucket must exist and answer (HeadBucket): a wrong name or missing permission stops the
 * process at start with the bucket named, not at the first backup. Buckets are never created
 * here (`create` is about directories): that is the storage admin's call (region, policy).
 */
async function openS3Target(t: S3Target): Promise<Backend> {
  const b = new S3Backend({ ...t, ...(t.uploadBufferMiB === undefined ? {} : { bufferParts: Math.floor((t.uploadBufferMiB * 1024 * 1024) / DEFAULT_PART_SIZE) }) });
  let state: 'ok' | 'missing' | 'forbidden';
  try {
    state = await b.checkBucket();
  } catch (e) {
    b.destroy();
    if (e instanceof S3CredentialsError) throw new BackendConfigError(`backup target ${describeTarget(t)}: ${e.message}`);
    throw new BackendConfigError(`backup target ${describeTarget(t)}: the S3 endpoint cannot be reached (${e instanceof Error ? e.message : 'unknown error'})`);
  }
  if (state !== 'ok') {
    b.destroy();
    throw new BackendConfigError(`backup target ${describeTarget(t)}: bucket ${t.bucket} does not exist or is not accessible with these credentials`);
  }
  return b;
}
