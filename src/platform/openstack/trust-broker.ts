import { ValidationError } from '../../lib/errors.js';
import { OpenStackError } from '../../openstack/errors.js';
import { OpenStackSession, type PasswordAuth, type SessionOptions } from '../../openstack/session.js';
import { createTrust, deleteTrust } from '../../openstack/trusts.js';
import type { TrustBroker } from '../platform.js';

/** Keystone trusts to Lifeboat's service user (see openstack/trusts.ts). */
export class KeystoneTrustBroker implements TrustBroker {
  constructor(
    private readonly service: OpenStackSession,
    private readonly serviceOptions: SessionOptions & { auth: PasswordAuth },
  ) {}

  async create(userToken: string, caller: { userId: string; projectId: string }, roleNames: string[]): Promise<string> {
    try {
      return await createTrust(this.service, userToken, { trustorUserId: caller.userId, projectId: caller.projectId, roleNames });
    } catch (e) {
      // Keystone: a role the trustor does not hold is "Could not find role" (404) or 403.
      if (e instanceof OpenStackError && (e.status === 404 || e.status === 403 || e.status === 400)) {
        throw new ValidationError(`Keystone refused the trust for role(s) ${roleNames.join(', ')}: ${e.detail || `HTTP ${e.status}`}; a trust can delegate only roles you hold in this project`);
      }
      throw e;
    }
  }

  delete(trustId: string): Promise<void> {
    return deleteTrust(this.service, trustId);
  }

  async validate(trustId: string): Promise<boolean> {
    try {
      await this.session(trustId).tokenInfo();
      return true;
    } catch (e) {
      if (e instanceof OpenStackError && (e.status === 401 || e.status === 403 || e.status === 404)) return false;
      throw e;
    }
  }

  /**
   * A session acting in `projectId` through the newest trust to Lifeboat that Keystone still
   * honours, or null when no user of the project has made one.
   */
  async sessionForProject(projectId: string): Promise<OpenStackSession | null> {
    const me = (await this.service.tokenInfo()).userId;
    const r = await this.service.call<{ trusts: { id: string; project_id: string; expires_at: string | null }[] }>('identity', 'GET', `/OS-TRUST/trusts?trustee_user_id=${encodeURIComponent(me)}`);
    const now = Date.now();
    const candidates = r.data.trusts.filter((t) => t.project_id === projectId && (!t.expires_at || Date.parse(t.expires_at) > now)).reverse();
    for (const t of candidates) {
      const s = this.session(t.id);
      if (await this.validate(t.id)) return s;
    }
    return null;
  }

  /** A session acting through the trust (the trustor's project and roles); one per run: trust tokens cannot be refreshed. */
  session(trustId: string): OpenStackSession {
    const a = this.serviceOptions.auth;
    return new OpenStackSession({ ...this.serviceOptions, auth: { kind: 'trust', username: a.username, password: a.password, userDomainName: a.userDomainName, trustId } });
  }
}
