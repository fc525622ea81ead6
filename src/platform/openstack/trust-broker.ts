import { ValidationError } from '../../lib/errors.js';
import { OpenStackError } from '../../openstack/errors.js';
import { OpenStackSession, type PasswordAuth, type SessionOptions } from '../../openstack/session.js';
import { createTrust, deleteTrust } from '../../openstack/trusts.js';
import type { TrustBroker } from '../platform.js';

interface KeystoneTrust {
  id: string;
  project_id: string;
  trustor_user_id: string;
  expires_at: string | null;
}

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
    for (const t of await this.projectTrusts(projectId)) {
      if (await this.validate(t.id)) return this.session(t.id);
    }
    return null;
  }

  /**
   * A scheduled run of a workload acts for its owner long after their token expired: a new
   * trust-scoped token (trust tokens cannot be refreshed, so one per run) from the newest
   * trust the owner gave Lifeboat on the project. Throws an error saying why and how to fix
   * it when the owner has no trust, or Keystone no longer honours any (deleted, expired, the
   * owner lost the role or was disabled): a scheduled run without one fails, never skips.
   */
  async sessionForScheduledRun(projectId: string, ownerUserId: string): Promise<{ session: OpenStackSession; trustId: string }> {
    const owned = (await this.projectTrusts(projectId)).filter((t) => t.trustor_user_id === ownerUserId);
    const refused: string[] = [];
    for (const t of owned) {
      const session = this.session(t.id);
      try {
        await session.tokenInfo();
        return { session, trustId: t.id };
      } catch (e) {
        if (!(e instanceof OpenStackError && (e.status === 401 || e.status === 403 || e.status === 404))) throw e;
        refused.push(`trust ${t.id}: ${e.detail || `HTTP ${e.status}`}${e.requestId ? ` (request id ${e.requestId})` : ''}`);
      }
    }
    const how = 'the workload owner must create one with POST /trusts {"trusts": {"role_name": "member"}}';
    if (refused.length === 0) throw new Error(`Scheduled snapshots act for the workload's owner (user ${ownerUserId}) through a Keystone trust to Lifeboat, and the owner has none on project ${projectId} (deleted or expired): ${how}`);
    throw new Error(`Keystone refused every trust of the workload's owner (user ${ownerUserId}) on project ${projectId}: ${refused.join('; ')}; ${how}`);
  }

  /** Trusts to Lifeboat on `projectId` that have not expired, newest first. */
  private async projectTrusts(projectId: string): Promise<KeystoneTrust[]> {
    const me = (await this.service.tokenInfo()).userId;
    const r = await this.service.call<{ trusts: KeystoneTrust[] }>('identity', 'GET', `/OS-TRUST/trusts?trustee_user_id=${encodeURIComponent(me)}`);
    const now = Date.now();
    return r.data.trusts.filter((t) => t.project_id === projectId && (!t.expires_at || Date.parse(t.expires_at) > now)).reverse();
  }

  /** A session acting through the trust (the trustor's project and roles); one per run: trust tokens cannot be refreshed. */
  session(trustId: string): OpenStackSession {
    const a = this.serviceOptions.auth;
    return new OpenStackSession({ ...this.serviceOptions, auth: { kind: 'trust', username: a.username, password: a.password, userDomainName: a.userDomainName, trustId } });
  }
}
