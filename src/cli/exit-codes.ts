import type { ErrorKind } from '../lib/errors.js';

/**
 * THE error → exit-code table of the `lifeboat` client commands (the CLI counterpart of
 * http/faults.ts). Every failure a client command reports ends as a CliError whose kind picks
 * the exit code here; nothing else in src/cli chooses an exit code.
 *
 *   0  success
 *   1  unexpected client failure (a bug: anything that is not a CliError)
 *   2  usage: bad/missing arguments or options, unreadable --filename, missing credentials
 *   3  authentication/authorization: HTTP 401 (bad credentials/token), 403 (policy denial)
 *   4  not found: HTTP 404 (unknown or foreign id), no `workloads` endpoint in the catalog
 *   5  bad request / invalid state: HTTP 400, 409, 413, 415, 429 and any other 4xx
 *   6  server or service unavailable: HTTP 5xx, connection refused, timeout, non-JSON answer
 *   7  the awaited operation (--wait) ended in `error` or `cancelled`
 *
 * Server kinds (lib/errors ErrorKind) are recovered from the HTTP status of a fault; `usage`
 * and `operation-failed` exist only on the client side.
 */
export type CliErrorKind = ErrorKind | 'usage' | 'operation-failed';

export const EXIT_OK = 0;
export const EXIT_UNEXPECTED = 1;

export const EXIT_CODES: Readonly<Record<CliErrorKind, number>> = {
  usage: 2,
  unauthenticated: 3,
  forbidden: 3,
  'not-found': 4,
  validation: 5,
  'invalid-state': 5,
  conflict: 5,
  'too-large': 5,
  'unsupported-media': 5,
  'rate-limited': 5,
  unavailable: 6,
  upstream: 6,
  integrity: 6,
  'corrupt-metadata': 6,
  'missing-object': 6,
  internal: 6,
  'operation-failed': 7,
};

/** A client-side failure with everything the `ERROR: ...` line needs. */
export class CliError extends Error {
  readonly kind: CliErrorKind;
  /** HTTP status of the fault that caused it, when there was one. */
  readonly httpStatus: number | undefined;
  /** `req-<uuid>` from x-openstack-request-id / x-compute-request-id, when there was one. */
  readonly requestId: string | undefined;

  constructor(kind: CliErrorKind, message: string, opts: { httpStatus?: number; requestId?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CliError';
    this.kind = kind;
    this.httpStatus = opts.httpStatus;
    this.requestId = opts.requestId;
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }
}

export function usageError(message: string): CliError {
  return new CliError('usage', message);
}

/** The error kind a fault status stands for (inverse of http/faults.ts KIND_STATUS). */
export function kindOfStatus(status: number, message: string): CliErrorKind {
  switch (status) {
    case 400:
      return message.startsWith('Invalid state') ? 'invalid-state' : 'validation';
    case 401:
      return 'unauthenticated';
    case 403:
      return 'forbidden';
    case 404:
      return 'not-found';
    case 409:
      return 'conflict';
    case 413:
      return 'too-large';
    case 415:
      return 'unsupported-media';
    case 429:
      return 'rate-limited';
    case 502:
      return 'upstream';
    case 503:
      return 'unavailable';
    default:
      return status >= 500 ? 'internal' : 'validation';
  }
}

/**
 * The stderr line of python-*client heritage:
 * `ERROR: <message> (HTTP <code>) (Request-ID: req-...)`; the suffixes only when known.
 */
export function formatCliError(e: CliError): string {
  let s = `ERROR: ${e.message}`;
  if (e.httpStatus !== undefined) s += ` (HTTP ${e.httpStatus})`;
  if (e.requestId) s += ` (Request-ID: ${e.requestId})`;
  return s;
}
