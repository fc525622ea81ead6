import { createHash } from 'node:crypto';
import type { RequestContext } from '../domain/context.js';

/**
 * THE token-validator interface (the only one): what the /v1 auth hook calls. Implemented by
 * the embedded identity and by the external Keystone validator, so the hook does not care
 * which one is configured; tests pass structural fakes.
 *
 * Contract: resolves to the context of a valid, project-scoped, unexpired, unrevoked token;
 * rejects with UnauthenticatedError for a missing/invalid/expired/revoked token (→ 401) and
 * with UnavailableError when the identity service cannot be asked (→ 503). The context comes
 * only from the token, never from client headers.
 */
export interface TokenValidator {
  validate(token: string, requestId: string): Promise<RequestContext>;
}

/** sha256 hex of a token: the only form in which tokens are stored, cached or logged. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The identity part of a context, as cached (the request id differs per request). */
export type CachedIdentity = Omit<RequestContext, 'requestId'>;
