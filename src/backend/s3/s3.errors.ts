import { STATUS_CODES } from 'node:http';
import { TransientError } from '../backend.js';
import { S3CredentialsError } from './s3.credentials.js';

/** What the SDK puts on its errors (service faults and network failures alike). */
interface SdkErrorShape {
  name?: unknown;
  code?: unknown;
  Code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $retryable?: unknown;
}

function shape(e: unknown): SdkErrorShape {
  return typeof e === 'object' && e !== null ? (e as SdkErrorShape) : {};
}

/** The HTTP status of a failed S3 request, or undefined when no answer came (network failure). */
export function httpStatus(e: unknown): number | undefined {
  const s = shape(e).$metadata?.httpStatusCode;
  return typeof s === 'number' ? s : undefined;
}

/** The S3 error code (`NoSuchKey`, `SlowDown`) or the system error code (`ECONNRESET`). */
export function errorCode(e: unknown): string {
  const s = shape(e);
  for (const c of [s.Code, s.code, s.name]) if (typeof c === 'string' && c !== '' && c !== 'Error') return c;
  return 'unknown error';
}

/** S3 answers that mean "slow down, try again" whatever their status (AWS, Ceph RGW, MinIO). */
const THROTTLE_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'XMinioServerNotInitialized',
]);

/** Failures below HTTP: the connection broke, timed out, or could not be made for now. */
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'TimeoutError',
  'AbortError',
  'RequestTimeout',
  'UND_ERR_SOCKET',
]);

/**
 * True for a failure the same request may not see a moment later: 5xx, 429, throttling codes,
 * resets, refused connections and timeouts (our per-request timeout aborts with AbortError /
 * TimeoutError). A 4xx other than those is permanent (bad credentials, missing bucket).
 */
export function isTransientS3Error(e: unknown): boolean {
  const status = httpStatus(e);
  const code = errorCode(e);
  if (THROTTLE_CODES.has(code) || NETWORK_CODES.has(code)) return true;
  if (status === undefined) {
    // No HTTP answer at all: a network failure whose code we do not list is still worth a retry.
    const cause = shape(e) as { cause?: unknown };
    return cause.cause !== undefined && NETWORK_CODES.has(errorCode(cause.cause));
  }
  return status >= 500 || status === 429;
}

/**
 * The code and status of a failure: `SlowDown, HTTP 503`. An answer without a body (a HEAD's)
 * has no S3 code and the SDK says `Unknown`: then the status's reason phrase stands in
 * (`HTTP 503 Service Unavailable`). A network failure has the system code alone.
 */
function describeFailure(e: unknown): string {
  const code = errorCode(e);
  const status = httpStatus(e);
  if (status === undefined) return code;
  if (code === 'Unknown' || code === 'unknown error') return `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`;
  return `${code}, HTTP ${status}`;
}

/**
 * Turns an SDK failure into the error the Backend contract names: TransientError when worth
 * retrying, a plain Error otherwise. The message names the operation, the object key (without
 * the bucket prefix) and the S3 code and status — never the endpoint URL, the SDK's message or
 * anything of the credentials, since it can reach job records a tenant reads.
 */
export function classifyS3Error(e: unknown, op: string, key: string): Error {
  if (e instanceof S3CredentialsError) return e; // permanent, and its message names no secret
  const message = `s3 backend: ${op} ${key || '/'} failed (${describeFailure(e)})`;
  if (isTransientS3Error(e)) return new TransientError(message, { cause: e });
  return new Error(message, { cause: e });
}

/** The object (or the multipart upload) is not there. */
export function isNotFound(e: unknown): boolean {
  const code = errorCode(e);
  return httpStatus(e) === 404 || code === 'NoSuchKey' || code === 'NotFound' || code === 'NoSuchUpload';
}
