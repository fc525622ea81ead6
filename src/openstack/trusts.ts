import { errorDetail, OpenStackError } from './errors.js';
import { requestIdOf, type OpenStackSession } from './session.js';

/**
 * Keystone trusts (OS-TRUST) from a tenant user to Lifeboat's service user, so that scheduled
 * and long-running work can act in the user's project after the user's token expired
 * (OpenStack-in-a-box README §7.6: impersonation gives a token for the trustor's project that
 * Nova, Cinder and Glance accept; trust tokens cannot be refreshed, so each run makes a new one).
 */

export interface TrustRequest {
  trustorUserId: string;
  projectId: string;
  roleNames: string[];
}

/**
 * Creates the trust with the trustor's own token (only the trustor may delegate its roles).
 * Returns the Keystone trust id. A role the trustor does not hold → OpenStackError 404/403.
 */
export async function createTrust(service: OpenStackSession, trustorToken: string, r: TrustRequest): Promise<string> {
  const trustee = (await service.tokenInfo()).userId;
  const body = {
    trust: {
      trustor_user_id: r.trustorUserId,
      trustee_user_id: trustee,
      project_id: r.projectId,
      roles: r.roleNames.map((name) => ({ name })),
      impersonation: true,
    },
  };
  const path = '/OS-TRUST/trusts';
  let res: Response;
  try {
    res = await fetch(`${service.authUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-auth-token': trustorToken },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    throw new OpenStackError('identity', 'POST', path, 0, null, e instanceof Error ? e.message : String(e), { cause: e });
  }
  const text = await res.text();
  if (res.status !== 201) throw new OpenStackError('identity', 'POST', path, res.status, requestIdOf(res.headers), errorDetail(text));
  const id = (JSON.parse(text) as { trust?: { id?: string } }).trust?.id;
  if (!id) throw new OpenStackError('identity', 'POST', path, res.status, requestIdOf(res.headers), 'answer without a trust id');
  return id;
}

/** Deletes a trust with the service identity (admin); an already deleted trust is fine. */
export async function deleteTrust(service: OpenStackSession, trustId: string): Promise<void> {
  await service.call('identity', 'DELETE', `/OS-TRUST/trusts/${encodeURIComponent(trustId)}`, { expect: [204, 404] });
}
