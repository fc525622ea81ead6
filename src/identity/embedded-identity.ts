import { createHash, randomBytes } from 'node:crypto';
import type { RequestContext } from '../domain/context.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { ForbiddenError, NotFoundError, UnauthenticatedError, ValidationError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { formatKeystoneTime } from '../lib/time.js';
import type { Db } from '../store/db.js';
import { findTokenByHash, insertToken, purgeExpiredTokens, revokeToken, type TokenRecord } from '../store/token.store.js';
import { DEFAULT_DOMAIN, roleId, type IdentityDirectory, type Project, type User } from './identity-file.js';
import type { KeystoneCatalogEntry, KeystoneEndpoint, KeystoneTokenBody } from './keystone-token.js';
import { LoginGuard, type LoginLimits } from './login-guard.js';
import { TokenCache } from './token-cache.js';
import { hashToken, type CachedIdentity, type TokenValidator } from './token-validator.js';

/**
 * The embedded Keystone v3 subset: password (and token re-scope) authentication against the
 * identity file, project-scoped bearer tokens, validation, revocation.
 *
 * Tokens are 32 random bytes (base64url). Only their sha256 is stored (tokens table), so
 * validation works in every API process sharing the store, and a database copy holds no
 * usable tokens. Positive validations are cached in-process for `cacheWindowMs` (default
 * 2 s, never past expires_at): a revocation made by ANOTHER process takes effect here within
 * that window; one made by this process takes effect at once.
 *
 * Tokens follow the identity file: every validation (cached or not), inspection and re-scope
 * re-checks the token against the directory as it is now — the user and the project must
 * still exist and the user must still hold every role the token carries — so a user removed
 * or demoted in the file loses access on the next request, not at the token's expiry
 * (Keystone revokes tokens on such changes too). Roles gained later are not added to old tokens.
 *
 * Password logins are limited per user and per client address (login-guard.ts); every
 * refusal is the same 401, the log says why.
 *
 * Legacy rule made explicit: a user holding `admin` on any project gets the `admin` role in
 * every token they obtain, so "admin anywhere is admin everywhere" holds for the policy
 * (`role:admin`) and for external validators reading the token alike.
 */

export interface EmbeddedIdentityOptions {
  db: Db;
  /** The directory, or a getter so the caller can swap it (e.g. after reloading the file). */
  identity: IdentityDirectory | (() => IdentityDirectory);
  /** Base URL clients reach this server at, without trailing slash, e.g. `http://127.0.0.1:8780`. */
  publicUrl: string;
  clock?: Clock;
  /** Token lifetime in seconds (Keystone's default 3600). */
  tokenTtlSeconds?: number;
  /** How long a positive validation is cached in-process, ms (default 2000; 0 disables). */
  cacheWindowMs?: number;
  cacheMaxEntries?: number;
  region?: string;
  log?: Logger;
  /** Lockout and issuance limits (login-guard.ts DEFAULT_LOGIN_LIMITS when absent). */
  loginLimits?: LoginLimits;
}

/** Who asks, for the token inspection/revocation rule (owner, admin or service). */
export interface TokenCaller {
  userId: string;
  roles: readonly string[];
  isAdmin: boolean;
}

/** What the HTTP layer knows about a login attempt beyond its body. */
export interface LoginMeta {
  /** Client address (the socket peer), for the per-address lockout. */
  address?: string;
}

export interface IssuedToken {
  /** The bearer token: goes in the X-Subject-Token header, nowhere else. */
  token: string;
  body: KeystoneTokenBody;
}

const TOKEN_NOT_FOUND = 'Could not find token.';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Stable ids for catalog entries, so every process serves the same catalog. */
function stableId(s: string): string {
  return createHash('sha256').update(`lifeboat-catalog:${s}`).digest('hex').slice(0, 32);
}

/** The roles a token for `user` on `projectId` carries: the file's roles, plus `admin` for admins anywhere. */
function currentRoles(dir: IdentityDirectory, user: User, projectId: string): string[] {
  const roles = dir.rolesOn(user, projectId);
  if (roles.length > 0 && dir.isAdmin(user) && !roles.includes('admin')) roles.push('admin');
  return roles;
}

/** Whether the user still exists, the project too, and the user still holds every role of the token. */
function stillEntitled(dir: IdentityDirectory, t: { userId: string; projectId: string; roles: readonly string[] }): boolean {
  const user = dir.userById(t.userId);
  if (!user || !dir.projectById(t.projectId)) return false;
  const held = currentRoles(dir, user, t.projectId);
  return t.roles.every((r) => held.includes(r));
}

function isDefaultDomain(d: unknown, where: string): boolean {
  if (!isObject(d)) throw new ValidationError(`Invalid input for field '${where}': expecting an object with "id" or "name".`);
  if (typeof d.id === 'string') return d.id === DEFAULT_DOMAIN.id;
  if (typeof d.name === 'string') return d.name === DEFAULT_DOMAIN.name;
  throw new ValidationError(`Invalid input for field '${where}': expecting "id" or "name".`);
}

export class EmbeddedIdentity implements TokenValidator {
  private readonly db: Db;
  private readonly directory: () => IdentityDirectory;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly cacheWindowMs: number;
  private readonly cache: TokenCache<CachedIdentity & { expiresAt: number }>;
  private readonly region: string;
  private readonly log: Logger;
  private readonly guard: LoginGuard;
  readonly publicUrl: string;

  constructor(opts: EmbeddedIdentityOptions) {
    this.db = opts.db;
    const id = opts.identity;
    this.directory = typeof id === 'function' ? id : () => id;
    this.clock = opts.clock ?? systemClock;
    const ttl = opts.tokenTtlSeconds ?? 3600;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new Error(`token TTL must be a positive number of seconds, got ${ttl}`);
    this.ttlMs = Math.round(ttl * 1000);
    this.cacheWindowMs = opts.cacheWindowMs ?? 2000;
    this.cache = new TokenCache(this.clock, opts.cacheMaxEntries ?? 10_000);
    this.region = opts.region ?? 'RegionOne';
    this.log = opts.log ?? silentLogger;
    this.guard = new LoginGuard(this.clock, opts.loginLimits);
    this.publicUrl = opts.publicUrl.replace(/\/+$/, '');
  }

  /** `<publicUrl>/identity/v3`: the Keystone URL of this server (catalog, WWW-Authenticate). */
  get identityV3Url(): string {
    return `${this.publicUrl}/identity/v3`;
  }

  /**
   * `POST /v3/auth/tokens`. Accepts the password method (user by id, or by name + default
   * domain) and the token method (re-scope), with a project scope (by id, or by name +
   * default domain). Malformed body → ValidationError (400); bad credentials, unsupported
   * method, missing scope, no role on the project or a locked-out user/address →
   * UnauthenticatedError (401); too many tokens for one user in a minute → RateLimitedError
   * (429). A re-scoped token never outlives the token it came from.
   */
  async authenticate(body: unknown, meta: LoginMeta = {}): Promise<IssuedToken> {
    if (!isObject(body) || !isObject(body.auth)) throw new ValidationError("Invalid input for field 'auth': expecting an object.");
    const auth = body.auth;
    if (!isObject(auth.identity)) throw new ValidationError("Invalid input for field 'auth.identity': expecting an object.");
    const identity = auth.identity;
    const methods = identity.methods;
    if (!Array.isArray(methods) || methods.length === 0 || !methods.every((m) => typeof m === 'string')) {
      throw new ValidationError("Invalid input for field 'auth.identity.methods': expecting a non-empty list of strings.");
    }
    if (methods.length !== 1 || (methods[0] !== 'password' && methods[0] !== 'token')) {
      throw new UnauthenticatedError('Attempted to authenticate with an unsupported method.');
    }
    const method = methods[0] as 'password' | 'token';
    const dir = this.directory();
    const now = this.clock.now();

    let user: User;
    let notAfter = Infinity;
    let auditChain: string[] = [];
    if (method === 'password') {
      user = await this.passwordUser(dir, identity.password, meta.address);
    } else {
      const t = identity.token;
      if (!isObject(t) || typeof t.id !== 'string' || t.id === '') throw new ValidationError("Invalid input for field 'auth.identity.token.id': expecting a string.");
      const rec = await this.liveRecord(t.id, now, dir);
      const u = rec ? dir.userById(rec.userId) : undefined;
      if (!rec || !u) throw new UnauthenticatedError();
      user = u;
      notAfter = rec.expiresAt;
      auditChain = [rec.auditId];
    }

    const project = this.scopedProject(dir, auth.scope);
    const roleNames = currentRoles(dir, user, project.id);
    if (roleNames.length === 0) {
      this.log.info({ userId: user.id, projectId: project.id }, 'token refused: user has no role on the project');
      throw new UnauthenticatedError();
    }
    this.guard.takeIssuance(user.id);

    const token = randomBytes(32).toString('base64url');
    const rec: TokenRecord = {
      idHash: hashToken(token),
      userId: user.id,
      userName: user.name,
      projectId: project.id,
      projectName: project.name,
      roles: roleNames.map((name) => ({ id: roleId(name), name })),
      methods: [method],
      auditId: randomBytes(16).toString('base64url'),
      issuedAt: now,
      expiresAt: Math.min(now + this.ttlMs, notAfter),
      revoked: false,
    };
    await insertToken(this.db, rec);
    this.log.info({ userId: user.id, projectId: project.id, method }, 'token issued');
    const body2 = this.tokenBody(rec);
    body2.token.audit_ids.push(...auditChain);
    return { token, body: body2 };
  }

  private async passwordUser(dir: IdentityDirectory, password: unknown, address: string | undefined): Promise<User> {
    if (!isObject(password) || !isObject(password.user)) {
      throw new ValidationError("Invalid input for field 'auth.identity.password.user': expecting an object.");
    }
    const u = password.user;
    if (typeof u.password !== 'string') throw new ValidationError("Invalid input for field 'auth.identity.password.user.password': expecting a string.");
    let user: User | undefined;
    if (typeof u.id === 'string') {
      user = dir.userById(u.id);
    } else if (typeof u.name === 'string') {
      if (u.domain === undefined) throw new ValidationError("Invalid input for field 'auth.identity.password.user.domain': required with 'name'.");
      user = isDefaultDomain(u.domain, 'auth.identity.password.user.domain') ? dir.userByName(u.name) : undefined;
    } else {
      throw new ValidationError("Invalid input for field 'auth.identity.password.user': expecting 'id' or 'name'.");
    }
    // Unknown user, wrong password and lockout answer alike. The comparison runs for unknown
    // users too, against a dummy, so timing does not reveal which user names exist; unknown
    // names are counted for lockout like real ones.
    const key = user ? `id:${user.id}` : `unknown:${typeof u.id === 'string' ? u.id : String(u.name)}`;
    const locked = this.guard.lockReason(key, address);
    if (locked) {
      this.log.warn({ userId: user?.id ?? null, address, reason: locked }, 'password authentication refused: locked out');
      throw new UnauthenticatedError();
    }
    if (!(await dir.checkPassword(user, u.password)) || !user) {
      const { userLocked, addressLocked } = this.guard.failed(key, address);
      this.log.info({ userId: user?.id ?? null, address }, 'password authentication failed');
      if (userLocked || addressLocked) this.log.warn({ userId: user?.id ?? null, address, userLocked, addressLocked }, 'too many failed logins: locked out');
      throw new UnauthenticatedError();
    }
    this.guard.succeeded(key);
    return user;
  }

  private scopedProject(dir: IdentityDirectory, scope: unknown): Project {
    if (scope === undefined || scope === null) throw new UnauthenticatedError(); // unscoped tokens are not offered
    if (!isObject(scope)) throw new ValidationError("Invalid input for field 'auth.scope': expecting an object.");
    if (!isObject(scope.project)) throw new UnauthenticatedError(); // domain/system scope: not offered
    const p = scope.project;
    let project: Project | undefined;
    if (typeof p.id === 'string') project = dir.projectById(p.id);
    else if (typeof p.name === 'string') {
      if (p.domain === undefined) throw new ValidationError("Invalid input for field 'auth.scope.project.domain': required with 'name'.");
      project = isDefaultDomain(p.domain, 'auth.scope.project.domain') ? dir.projectByName(p.name) : undefined;
    } else throw new ValidationError("Invalid input for field 'auth.scope.project': expecting 'id' or 'name'.");
    if (!project) throw new UnauthenticatedError();
    return project;
  }

  /**
   * The stored record when the token is known, unrevoked, unexpired at `now` and still
   * entitled by the directory. Never cached.
   */
  private async liveRecord(token: string, now: number, dir = this.directory()): Promise<TokenRecord | undefined> {
    const rec = await findTokenByHash(this.db, hashToken(token));
    if (!rec || rec.revoked || now >= rec.expiresAt) return undefined;
    if (!stillEntitled(dir, { userId: rec.userId, projectId: rec.projectId, roles: rec.roles.map((r) => r.name) })) return undefined;
    return rec;
  }

  /**
   * The subject token's record for `caller`, Keystone's rule for validate/revoke: invalid →
   * NotFoundError (404); valid but neither the caller's own token nor the caller admin or
   * service → ForbiddenError (403).
   */
  private async subjectRecord(subjectToken: string | undefined, caller: TokenCaller, action: string): Promise<TokenRecord> {
    const rec = subjectToken ? await this.liveRecord(subjectToken, this.clock.now()) : undefined;
    if (!rec) throw new NotFoundError(TOKEN_NOT_FOUND);
    if (rec.userId !== caller.userId && !caller.isAdmin && !caller.roles.includes('service')) {
      this.log.info({ userId: caller.userId, subjectUserId: rec.userId, action }, 'token access refused: not the owner, an admin or a service');
      throw new ForbiddenError(`You are not authorized to perform the requested action: ${action}.`);
    }
    return rec;
  }

  /**
   * `GET /v3/auth/tokens` body for a subject token, read fresh from the store (no cache, so a
   * remote validator sees revocations at once). See subjectRecord for 404/403.
   */
  async inspect(subjectToken: string | undefined, caller: TokenCaller): Promise<KeystoneTokenBody> {
    return this.tokenBody(await this.subjectRecord(subjectToken, caller, 'identity:validate_token'));
  }

  /** `DELETE /v3/auth/tokens`: revokes the subject token. See subjectRecord for 404/403. */
  async revoke(subjectToken: string | undefined, caller: TokenCaller): Promise<void> {
    const rec = await this.subjectRecord(subjectToken, caller, 'identity:revoke_token');
    if (!(await revokeToken(this.db, rec.idHash))) throw new NotFoundError(TOKEN_NOT_FOUND);
    this.cache.delete(rec.idHash);
    this.log.info({ userId: rec.userId, projectId: rec.projectId }, 'token revoked');
  }

  /**
   * `GET /v3/auth/projects`: the projects the caller's user can scope a token to (holds a role
   * on), so a client can offer a project switch (re-scope with the token method). The token
   * must be valid (else UnauthenticatedError); projects are sorted by name.
   */
  async projectsOf(token: string | undefined, requestId: string): Promise<{ id: string; name: string }[]> {
    const ctx = await this.validate(token, requestId);
    const dir = this.directory();
    const user = dir.userById(ctx.userId);
    if (!user) throw new UnauthenticatedError();
    return dir.data.projects
      .filter((p) => currentRoles(dir, user, p.id).length > 0)
      .map((p) => ({ id: p.id, name: p.name }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The /v1 auth hook's check. Missing, unknown, expired or revoked → UnauthenticatedError;
   * so is a token whose user, project or roles the identity file no longer grants (checked on
   * every call, cache or not). The store lookup is cached per token hash for at most
   * cacheWindowMs and never past expires_at.
   */
  async validate(token: string | undefined, requestId: string): Promise<RequestContext> {
    if (!token) throw new UnauthenticatedError();
    const key = hashToken(token);
    const now = this.clock.now();
    let id = this.cache.get(key);
    if (!id) {
      const rec = await findTokenByHash(this.db, key);
      if (!rec || rec.revoked || now >= rec.expiresAt) throw new UnauthenticatedError();
      const roles = rec.roles.map((r) => r.name);
      id = {
        userId: rec.userId,
        userName: rec.userName,
        projectId: rec.projectId,
        projectName: rec.projectName,
        roles,
        isAdmin: roles.includes('admin'),
        expiresAt: rec.expiresAt,
      };
      this.cache.set(key, id, Math.min(now + this.cacheWindowMs, rec.expiresAt));
    }
    if (!stillEntitled(this.directory(), id)) {
      this.log.info({ userId: id.userId, projectId: id.projectId }, 'token refused: the identity file no longer grants its user, project or roles');
      throw new UnauthenticatedError();
    }
    return {
      requestId,
      userId: id.userId,
      userName: id.userName,
      projectId: id.projectId,
      projectName: id.projectName,
      roles: [...id.roles],
      isAdmin: id.isAdmin,
    };
  }

  /** Deletes tokens expired more than `graceMs` ago; call periodically. Returns the count. */
  purgeExpired(graceMs = 0): Promise<number> {
    return purgeExpiredTokens(this.db, this.clock.now() - graceMs);
  }

  /** The catalog a token scoped to `projectId` carries. */
  catalog(projectId: string): KeystoneCatalogEntry[] {
    const endpoints = (service: string, url: string): KeystoneEndpoint[] =>
      (['public', 'internal', 'admin'] as const).map((iface) => ({
        id: stableId(`${service}:${iface}`),
        interface: iface,
        region: this.region,
        region_id: this.region,
        url,
      }));
    return [
      { id: stableId('workloads'), type: 'workloads', name: 'TrilioVaultWLM', endpoints: endpoints('workloads', `${this.publicUrl}/v1/${projectId}`) },
      { id: stableId('identity'), type: 'identity', name: 'keystone', endpoints: endpoints('identity', this.identityV3Url) },
    ];
  }

  private tokenBody(rec: TokenRecord): KeystoneTokenBody {
    const domain = { id: DEFAULT_DOMAIN.id, name: DEFAULT_DOMAIN.name };
    return {
      token: {
        methods: [...rec.methods],
        user: { id: rec.userId, name: rec.userName, domain: { ...domain }, password_expires_at: null },
        project: { id: rec.projectId, name: rec.projectName, domain: { ...domain } },
        roles: rec.roles.map((r) => ({ id: r.id, name: r.name })),
        expires_at: formatKeystoneTime(rec.expiresAt),
        issued_at: formatKeystoneTime(rec.issuedAt),
        audit_ids: [rec.auditId],
        catalog: this.catalog(rec.projectId),
        is_domain: false,
      },
    };
  }
}
