import { AppError, type ErrorKind } from '../lib/errors.js';

/**
 * Why an NBD operation failed:
 * - `protocol`: the server broke the protocol (bad magic, unknown handle, chunk outside the
 *   request, …); the connection is closed and every pending request fails with this error;
 * - `server`: the server answered one request (or option) with an error; the connection stays usable;
 * - `unsupported`: the server lacks something the caller asked for (fixed newstyle, NBD_OPT_GO,
 *   structured replies needed for block status);
 * - `not-found`: the export name is unknown to the server;
 * - `closed`: the connection ended (server gone, socket error, or close() called) before a reply;
 * - `timeout`: no byte arrived for the configured time while requests were pending.
 */
export type NbdFailure = 'protocol' | 'server' | 'unsupported' | 'not-found' | 'closed' | 'timeout';

const KIND: Record<NbdFailure, ErrorKind> = {
  protocol: 'internal',
  server: 'unavailable',
  unsupported: 'unavailable',
  'not-found': 'not-found',
  closed: 'unavailable',
  timeout: 'unavailable',
};

/** Errno values the NBD protocol defines for replies (the spec's list, not the host's). */
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  5: 'EIO',
  12: 'ENOMEM',
  22: 'EINVAL',
  28: 'ENOSPC',
  75: 'EOVERFLOW',
  95: 'ENOTSUP',
  108: 'ESHUTDOWN',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** Every error the NBD client throws. Messages name the export and operation, never a socket path. */
export class NbdError extends AppError {
  readonly failure: NbdFailure;
  /** The NBD error value of a `server` failure (e.g. 22 = EINVAL). */
  readonly errno: number | undefined;

  constructor(failure: NbdFailure, message: string, options?: { errno?: number; cause?: unknown }) {
    super(KIND[failure], `NBD: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.failure = failure;
    this.errno = options?.errno;
  }
}

export function protocolError(message: string): NbdError {
  return new NbdError('protocol', `protocol violation: ${message}`);
}
