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
  | 'integrity' // stored data failed a hash check
  | 'internal';

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
  constructor(message: string) {
    super('not-found', message);
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

export class IntegrityError extends AppError {
  constructor(message: string) {
    super('integrity', message);
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

/** Best-effort text of any thrown value, for logs and error_msg fields. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
