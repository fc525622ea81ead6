import type { IdentityLookup } from '../domain/identity-lookup.js';
import type { IdentityDirectory } from './identity-file.js';

/** IdentityLookup over the embedded identity file (always followed: see identity-source.ts). */
export function fileIdentityLookup(current: () => IdentityDirectory): IdentityLookup {
  return {
    projectExists: async (id) => current().projectById(id) !== undefined,
    userExists: async (id) => current().userById(id) !== undefined,
    userInProject: async (userId, projectId) => {
      const dir = current();
      const u = dir.userById(userId);
      return u !== undefined && dir.rolesOn(u, projectId).length > 0;
    },
    projectName: async (id) => current().projectById(id)?.name ?? null,
  };
}
