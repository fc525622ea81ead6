import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { isHexId, newHexId } from '../lib/ids.js';
import { hashPasswordSync, passwordKind, verifyPassword } from './password-hash.js';

/**
 * Users, projects and role assignments of the embedded identity, read from a JSON file
 * (LIFEBOAT_IDENTITY):
 *
 *   {"projects": [{"id": "<32 hex>", "name": "demo"}],
 *    "users": [{"id": "<32 hex>", "name": "alice", "password": "s3cret",
 *               "roles": [{"project": "demo", "role": "member"}]}]}
 *
 * `project` names a project by id or by name (id wins). Everything lives in the Keystone
 * domain `default`. `password` is an scrypt or bcrypt hash or plain text (see
 * password-hash.ts; plain text is accepted with a warning). The file may hold passwords, so it
 * is created 0600 and should be kept that way. Legacy rule: a user with role `admin` on ANY
 * project is a cloud admin.
 */

export const DEFAULT_DOMAIN = { id: 'default', name: 'Default' } as const;

export interface Project {
  id: string;
  name: string;
}

export interface RoleAssignment {
  projectId: string;
  role: string;
}

export interface User {
  id: string;
  name: string;
  password: string;
  roles: RoleAssignment[];
}

export interface IdentityData {
  projects: Project[];
  users: User[];
}

/** Thrown for an unreadable or invalid identity file; the message names the path and the fault. */
export class IdentityFileError extends Error {
  override name = 'IdentityFileError';
}

/** Keystone role ids: derived from the name so every process (and restart) agrees on them. */
export function roleId(name: string): string {
  return createHash('sha256').update(`lifeboat-role:${name}`).digest('hex').slice(0, 32);
}

/**
 * Checked for unknown users, so that a login for a name that does not exist costs as much as
 * one with a wrong password (ln=15 scrypt, like hashPassword's).
 */
const DUMMY_HASH = '$scrypt$ln=15,r=8,p=1$bGlmZWJvYXQtZHVtbXk$3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

/** Read-only view over the identity data with the lookups authentication needs. */
export class IdentityDirectory {
  private readonly byUserId = new Map<string, User>();
  private readonly byUserName = new Map<string, User>();
  private readonly byProjectId = new Map<string, Project>();
  private readonly byProjectName = new Map<string, Project>();

  constructor(readonly data: IdentityData) {
    for (const p of data.projects) {
      this.byProjectId.set(p.id, p);
      this.byProjectName.set(p.name, p);
    }
    for (const u of data.users) {
      this.byUserId.set(u.id, u);
      this.byUserName.set(u.name, u);
    }
  }

  userById(id: string): User | undefined {
    return this.byUserId.get(id);
  }
  userByName(name: string): User | undefined {
    return this.byUserName.get(name);
  }
  projectById(id: string): Project | undefined {
    return this.byProjectId.get(id);
  }
  projectByName(name: string): Project | undefined {
    return this.byProjectName.get(name);
  }

  /**
   * Password check against the stored hash or plain text (constant time per form). Without a
   * user, a dummy scrypt hash is checked so unknown names take as long as known ones.
   */
  async checkPassword(user: User | undefined, password: string): Promise<boolean> {
    const ok = await verifyPassword(user?.password ?? DUMMY_HASH, password);
    return ok && user !== undefined;
  }

  /** Names of users whose password is stored as plain text (for the loader's warning). */
  plainTextUsers(): string[] {
    return this.data.users.filter((u) => passwordKind(u.password) === 'plain').map((u) => u.name);
  }

  /** Role names the user holds on the project (deduplicated, file order). */
  rolesOn(user: User, projectId: string): string[] {
    const out: string[] = [];
    for (const r of user.roles) if (r.projectId === projectId && !out.includes(r.role)) out.push(r.role);
    return out;
  }

  /** Legacy "admin anywhere is admin everywhere". */
  isAdmin(user: User): boolean {
    return user.roles.some((r) => r.role === 'admin');
  }
}

const NAME_RE = /^[^\s].{0,254}$/s;
const ROLE_RE = /^[A-Za-z0-9_.-]{1,64}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, allowed: string[], where: string, errors: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) errors.push(`${where}: unknown key "${k}" (allowed: ${allowed.join(', ')})`);
}

/**
 * Validates parsed JSON strictly and returns the identity data. Collects every problem and
 * throws one IdentityFileError listing them as `<source>: <json path>: <what is wrong>`.
 */
export function parseIdentityData(raw: unknown, source = 'identity file'): IdentityData {
  const errors: string[] = [];
  const projects: Project[] = [];
  const users: User[] = [];
  if (!isObject(raw)) throw new IdentityFileError(`${source}: top level must be an object with "projects" and "users"`);
  checkKeys(raw, ['projects', 'users'], '$', errors);

  if (!Array.isArray(raw.projects)) errors.push('$.projects: must be an array');
  else {
    raw.projects.forEach((p, i) => {
      const at = `$.projects[${i}]`;
      if (!isObject(p)) return void errors.push(`${at}: must be an object {"id", "name"}`);
      checkKeys(p, ['id', 'name'], at, errors);
      if (!isHexId(p.id)) errors.push(`${at}.id: must be 32 lowercase hex characters`);
      if (typeof p.name !== 'string' || !NAME_RE.test(p.name)) errors.push(`${at}.name: must be a non-empty string (max 255, no leading space)`);
      if (isHexId(p.id) && typeof p.name === 'string') {
        if (projects.some((q) => q.id === p.id)) errors.push(`${at}.id: duplicate project id ${p.id}`);
        if (projects.some((q) => q.name === p.name)) errors.push(`${at}.name: duplicate project name "${p.name}"`);
        projects.push({ id: p.id, name: p.name });
      }
    });
  }

  if (!Array.isArray(raw.users)) errors.push('$.users: must be an array');
  else {
    raw.users.forEach((u, i) => {
      const at = `$.users[${i}]`;
      if (!isObject(u)) return void errors.push(`${at}: must be an object {"id", "name", "password", "roles"}`);
      checkKeys(u, ['id', 'name', 'password', 'roles'], at, errors);
      let ok = true;
      if (!isHexId(u.id)) {
        errors.push(`${at}.id: must be 32 lowercase hex characters`);
        ok = false;
      }
      if (typeof u.name !== 'string' || !NAME_RE.test(u.name)) {
        errors.push(`${at}.name: must be a non-empty string (max 255, no leading space)`);
        ok = false;
      }
      if (typeof u.password !== 'string' || u.password.length === 0) {
        errors.push(`${at}.password: must be a non-empty string`);
        ok = false;
      } else {
        const kind = passwordKind(u.password);
        if (typeof kind === 'object') {
          errors.push(`${at}.password: ${kind.error}`);
          ok = false;
        }
      }
      const roles: RoleAssignment[] = [];
      if (!Array.isArray(u.roles)) {
        errors.push(`${at}.roles: must be an array (may be empty)`);
        ok = false;
      } else {
        u.roles.forEach((r, j) => {
          const rat = `${at}.roles[${j}]`;
          if (!isObject(r)) return void errors.push(`${rat}: must be an object {"project", "role"}`);
          checkKeys(r, ['project', 'role'], rat, errors);
          if (typeof r.role !== 'string' || !ROLE_RE.test(r.role)) errors.push(`${rat}.role: must be a role name of letters, digits, "_", "." or "-" (max 64)`);
          if (typeof r.project !== 'string' || r.project === '') return void errors.push(`${rat}.project: must be a project id or name`);
          const p = projects.find((q) => q.id === r.project) ?? projects.find((q) => q.name === r.project);
          if (!p) return void errors.push(`${rat}.project: no project with id or name "${r.project}"`);
          if (typeof r.role === 'string') roles.push({ projectId: p.id, role: r.role });
        });
      }
      if (ok) {
        const id = u.id as string;
        const name = u.name as string;
        if (users.some((v) => v.id === id)) errors.push(`${at}.id: duplicate user id ${id}`);
        if (users.some((v) => v.name === name)) errors.push(`${at}.name: duplicate user name "${name}"`);
        users.push({ id, name, password: u.password as string, roles });
      }
    });
  }

  if (errors.length > 0) throw new IdentityFileError(`${source} is invalid:\n  ${errors.join('\n  ')}`);
  return { projects, users };
}

/** Reads and validates an identity file. */
export function loadIdentityFile(path: string): IdentityDirectory {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new IdentityFileError(`cannot read identity file ${path}: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new IdentityFileError(`identity file ${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return new IdentityDirectory(parseIdentityData(raw, `identity file ${path}`));
}

export interface CreatedCredentials {
  user: string;
  password: string;
  project: string;
}

export interface LoadResult {
  identity: IdentityDirectory;
  /** Credentials generated because the file did not exist; print them once, never log them. */
  created: CreatedCredentials[];
  /** Problems worth a log line that do not stop startup (e.g. file readable by others). */
  warnings: string[];
}

function permissionWarnings(path: string): string[] {
  const mode = statSync(path).mode & 0o777;
  return mode & 0o077 ? [`identity file ${path} holds passwords but has mode 0${mode.toString(8)}; run chmod 600 on it`] : [];
}

function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/**
 * The initial identity: project+user `admin` (role admin), and with `demo` project+user `demo`
 * (role member). Passwords are generated, returned in `created` once and stored only as scrypt hashes.
 */
export function initialIdentity(opts: { demo?: boolean } = {}): { data: IdentityData; created: CreatedCredentials[] } {
  const adminProject = { id: newHexId(), name: 'admin' };
  const adminPw = generatePassword();
  const data: IdentityData = {
    projects: [adminProject],
    users: [{ id: newHexId(), name: 'admin', password: hashPasswordSync(adminPw), roles: [{ projectId: adminProject.id, role: 'admin' }] }],
  };
  const created: CreatedCredentials[] = [{ user: 'admin', password: adminPw, project: 'admin' }];
  if (opts.demo) {
    const demoProject = { id: newHexId(), name: 'demo' };
    const demoPw = generatePassword();
    data.projects.push(demoProject);
    data.users.push({ id: newHexId(), name: 'demo', password: hashPasswordSync(demoPw), roles: [{ projectId: demoProject.id, role: 'member' }] });
    created.push({ user: 'demo', password: demoPw, project: 'demo' });
  }
  return { data, created };
}

/** The file form of identity data (roles name projects by name, as a human would write them). */
export function serializeIdentity(data: IdentityData): string {
  const nameOf = (id: string) => data.projects.find((p) => p.id === id)?.name ?? id;
  const doc = {
    projects: data.projects.map((p) => ({ id: p.id, name: p.name })),
    users: data.users.map((u) => ({
      id: u.id,
      name: u.name,
      password: u.password,
      roles: u.roles.map((r) => ({ project: nameOf(r.projectId), role: r.role })),
    })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * Writes `text` to `path` only if `path` does not exist yet, atomically: temp file (0600) in
 * the same directory, fsync, then link(2) to the final name (fails with EEXIST instead of
 * overwriting, so two processes starting at once cannot clobber each other's credentials),
 * then the directory is fsynced. Returns false when the file already existed.
 */
function createFileExclusive(path: string, text: string): boolean {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
  return true;
}

/**
 * Loads the identity file, creating it first when it does not exist (see initialIdentity).
 * `created` lists generated credentials only when this call created the file.
 */
export function loadOrCreateIdentityFile(path: string, opts: { demo?: boolean } = {}): LoadResult {
  try {
    const identity = loadIdentityFile(path);
    return { identity, created: [], warnings: permissionWarnings(path) };
  } catch (e) {
    const cause = (e as Error).cause as NodeJS.ErrnoException | undefined;
    if (!(e instanceof IdentityFileError) || cause?.code !== 'ENOENT') throw e;
  }
  const { data, created } = initialIdentity(opts);
  if (!createFileExclusive(path, serializeIdentity(data))) {
    // Another process created it between our read and our link: use theirs.
    return { identity: loadIdentityFile(path), created: [], warnings: permissionWarnings(path) };
  }
  return { identity: new IdentityDirectory(data), created, warnings: [] };
}
