/**
 * The signed-in user: a project-scoped Keystone token kept in sessionStorage (gone when the
 * tab closes), never in localStorage or a cookie.
 */
export interface Session {
  token: string;
  userName: string;
  projectId: string;
  projectName: string;
  roles: string[];
  /** ISO time the token expires (Keystone's expires_at). */
  expiresAt: string;
}

const KEY = 'lifeboat.session';

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  try {
    const s = JSON.parse(raw) as Session;
    if (typeof s.token !== 'string' || Date.parse(s.expiresAt) <= Date.now()) return null;
    return s;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export function isAdmin(s: Session): boolean {
  return s.roles.includes('admin');
}
