import type { OpenStackSession } from './session.js';

/**
 * Barbican (OpenStack Key Manager, `key-manager` in the catalog, API v1): the payload of a
 * secret, as the session's identity may read it (Barbican caps payloads at
 * max_allowed_secret_in_bytes, 10 000 by default). Barbican answers 404 for an unknown secret
 * (or one without a payload) and 403 when the identity is neither allowed in the secret's
 * project nor on its read ACL; both come back as OpenStackError with the status (errors.ts).
 */
export async function readSecretPayload(session: OpenStackSession, secretUuid: string): Promise<Buffer> {
  const r = await session.call<Response>('key-manager', 'GET', `/secrets/${encodeURIComponent(secretUuid)}/payload`, {
    headers: { accept: 'application/octet-stream' },
    raw: true,
    timeoutMs: 30_000,
  });
  return Buffer.from(await r.data.arrayBuffer());
}
