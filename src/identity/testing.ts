import type { Db } from '../store/db.js';
import { IdentityDirectory, parseIdentityData } from './identity-file.js';

/**
 * A fixed identity for tests:
 *   projects demo (P_DEMO), admin (P_ADMIN), other (P_OTHER)
 *   alice/alice-pw: member on demo, backup on other
 *   root/root-pw:   admin on admin, member on demo  (admin anywhere → admin everywhere)
 *   nobody/nobody-pw: no roles at all
 */
export const P_DEMO = 'd'.repeat(32);
export const P_ADMIN = 'a'.repeat(32);
export const P_OTHER = '0'.repeat(31) + '1';
export const U_ALICE = '1'.repeat(32);
export const U_ROOT = '2'.repeat(32);
export const U_NOBODY = '3'.repeat(32);

export function testIdentity(): IdentityDirectory {
  return new IdentityDirectory(
    parseIdentityData({
      projects: [
        { id: P_DEMO, name: 'demo' },
        { id: P_ADMIN, name: 'admin' },
        { id: P_OTHER, name: 'other' },
      ],
      users: [
        { id: U_ALICE, name: 'alice', password: 'alice-pw', roles: [{ project: 'demo', role: 'member' }, { project: P_OTHER, role: 'backup' }] },
        { id: U_ROOT, name: 'root', password: 'root-pw', roles: [{ project: 'admin', role: 'admin' }, { project: 'demo', role: 'member' }] },
        { id: U_NOBODY, name: 'nobody', password: 'nobody-pw', roles: [] },
      ],
    }),
  );
}

/** A Keystone v3 password auth body, scoped to a project by name in the default domain. */
export function passwordAuth(user: string, password: string, project: string | null): Record<string, unknown> {
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password } } },
      ...(project === null ? {} : { scope: { project: { name: project, domain: { id: 'default' } } } }),
    },
  };
}

// Store access for tests of the layers above identity (http/ may not import store/ itself).
export { storeKinds as identityStoreKinds, type StoreKind } from '../store/testing.js';
export type { StoreHandle } from '../store/db.js';

/** Revokes every token of a user directly in the store, as another process would. */
export async function revokeAllTokensOf(db: Db, userName: string): Promise<void> {
  await db.updateTable('tokens').set({ revoked: 1 }).where('user_name', '=', userName).execute();
}
