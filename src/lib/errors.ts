import { getSystemErrorMap } from 'node:util';

/**
 * The typed errors every layer throws. Each carries the user-facing message; `http/` maps the
 * kind to a fault (one table, http/faults.ts) and `cli/` maps it to an exit code. Nothing below
 * `http/` knows about status codes.
 */
export type ErrorKind =
  | 'validation' // bad input: 400 badRequest
  | 'invalid-state' // operation not allowed in the current state: 400 badRequest
  | 'not-found' // unknown or foreign id: 404 itemNotFound
  | 'unauthenticated' // missing/invalid token: 401
  | 'forbidden' // policy denial: 403 forbidden
  | 'conflict' // 409 conflictingRequest
  | 'too-large' // 413 overLimit
  | 'unsupported-media' // 415 badMediaType
  | 'unavailable' // a dependency is down: 503 serviceUnavailable
  | 'rate-limited' // too many requests of this kind: 429 overLimit (+ Retry-After)
  | 'upstream' // a remote server the caller pointed us at failed: 502 badGateway
  // Engine faults (EngineFaultKind): the backup target holds damaged or incomplete data.
  | 'integrity' // stored data failed a hash or length check: 500
  | 'corrupt-metadata' // a manifest, index or repository config is unreadable or inconsistent: 500
  | 'missing-object' // an object the repository references is absent from the target: 500, never 404
  | 'internal';

/**
 * Faults of the backup engine, not of the request: never answered as 4xx (a corrupt manifest
 * is not a bad request, a lost pack is not an unknown id). http/ answers them 500 with a
 * message telling an operator to run `lifeboat repo verify`; job records keep the detail.
 */
export type EngineFaultKind = 'integrity' | 'corrupt-metadata' | 'missing-object';

export function isEngineFault(e: unknown): e is AppError & { kind: EngineFaultKind } {
  return e instanceof AppError && (e.kind === 'integrity' || e.kind === 'corrupt-metadata' || e.kind === 'missing-object');
}

export class AppError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = new.target.name;
  }
}

export class ValidationError extends AppError {
  constructor(message: string) {
    super('validation', message);
  }
}

/** Message gets the legacy `Invalid state: ` prefix, as workloadmgr's InvalidState did. */
export class InvalidStateError extends AppError {
  constructor(message: string) {
    super('invalid-state', `Invalid state: ${message}`);
  }
}

export class NotFoundError extends AppError {
  constructor(message: string, kind: 'not-found' | 'missing-object' = 'not-found') {
    super(kind, message);
  }
  /** `Workload <id> could not be found.` — the same text for unknown and foreign ids. */
  static of(resource: string, id: string): NotFoundError {
    return new NotFoundError(`${resource} ${id} could not be found.`);
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'The request you have made requires authentication.') {
    super('unauthenticated', message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message: string) {
    super('forbidden', message);
  }
}

/**
 * Over-quota is 403 Forbidden: the request is well-formed but the project may not do this now
 * (Nova answers quota exhaustion with 403 too; 413 would carry Retry-After, which a quota
 * never satisfies by waiting, and 400 would blame the request body).
 */
export class QuotaExceededError extends ForbiddenError {
  constructor(
    readonly quotaType: string,
    allowed: number,
    inUse: number,
    requested: number,
    unit = '',
  ) {
    super(`Quota exceeded for ${quotaType}: allowed ${allowed}${unit}, in use ${inUse}${unit}, requested ${requested}${unit} more.`);
  }
}

export class ConflictError extends AppError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export class UnavailableError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
  }
}

/**
 * An encrypted workload's data cannot be opened here: its key-encryption key is missing or is
 * not the one that wrapped the workload's data key, or the wrapped data key is gone from the
 * target. The message names the workload; a job or a client gets it instead of any data.
 */
export class EncryptionKeyError extends UnavailableError {}

/** Too many attempts; `retryAfterSeconds` goes into the Retry-After header. */
export class RateLimitedError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('rate-limited', message);
  }
}

/** A remote server named by the caller (e.g. their SMTP server) failed or answered nonsense. */
export class UpstreamError extends AppError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('upstream', message, options);
  }
}

/** Stored data failed a hash or length check (engine fault). */
export class IntegrityError extends AppError {
  constructor(message: string, kind: 'integrity' | 'corrupt-metadata' = 'integrity') {
    super(kind, message);
  }
}

/** A manifest, index, pack trailer or repository config is unreadable or inconsistent (engine fault). */
export class CorruptMetadataError extends IntegrityError {
  constructor(message: string) {
    super(message, 'corrupt-metadata');
  }
}

/**
 * A key is absent from the backup target. A NotFoundError, so code for which absence is a
 * normal answer (no GC plan yet, a lease released meanwhile) catches it as such; when it
 * escapes to a client it is an engine fault (500), never a 404 about the client's id.
 */
export class MissingObjectError extends NotFoundError {
  constructor(message: string) {
    super(message, 'missing-object');
  }
}

/** A running operation stopped because a user asked (snapshot/restore cancel); never shown as a fault. */
export class CancelledError extends Error {
  constructor(what: string) {
    super(`${what} cancelled`);
    this.name = 'CancelledError';
  }
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/** Whether `e` is a Node system error with this errno code (e.g. 'ENOENT'). */
export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

let errnoTexts: Map<string, string> | undefined;

/**
 * What an errno name means, in strerror's words ('ENOSPC' → 'No space left on device'), from
 * libuv's table; undefined for a name it does not know. For messages that give the code alone
 * where an operator or tenant needs the cause ("disk full", not "ENOSPC").
 */
export function errnoText(code: string): string | undefined {
  errnoTexts ??= new Map([...getSystemErrorMap().values()].map(([name, text]) => [name, text.charAt(0).toUpperCase() + text.slice(1)]));
  return errnoTexts.get(code);
}

/** Best-effort text of any thrown value, for logs and error_msg fields. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
