import { randomUUID } from 'node:crypto';
import type { IdentityLookup } from '../domain/identity-lookup.js';
import { isAppError } from '../lib/errors.js';
import type { KeystoneValidator } from './keystone-validator.js';

/**
 * IdentityLookup over an external Keystone's v3 API, with the service credentials: 200 = it
 * exists, 404 = it does not, anything else (403: the service user may not read it, 5xx,
 * unreachable) = cannot tell (null), which callers must never read as "gone".
 */
export function keystoneIdentityLookup(k: KeystoneValidator): IdentityLookup {
  const get = async (path: string): Promise<{ status: number; body: unknown } | null> => {
    try {
      return await k.serviceGet(path, `req-${randomUUID()}`);
    } catch (e) {
      if (isAppError(e)) return null;
      throw e;
    }
  };
  const exists = async (path: string): Promise<boolean | null> => {
    const r = await get(path);
    if (!r) return null;
    if (r.status === 200) return true;
    return r.status === 404 ? false : null;
  };
  const seg = encodeURIComponent;
  return {
    projectExists: (id) => exists(`/projects/${seg(id)}`),
    userExists: (id) => exists(`/users/${seg(id)}`),
    userInProject: async (userId, projectId) => {
      const r = await get(`/role_assignments?user.id=${seg(userId)}&scope.project.id=${seg(projectId)}&effective`);
      if (!r || r.status !== 200) return null;
      const list = (r.body as { role_assignments?: unknown } | null)?.role_assignments;
      return Array.isArray(list) ? list.length > 0 : null;
    },
    projectName: async (id) => {
      const r = await get(`/projects/${seg(id)}`);
      const name = r?.status === 200 ? (r.body as { project?: { name?: unknown } } | null)?.project?.name : undefined;
      return typeof name === 'string' ? name : null;
    },
  };
}
