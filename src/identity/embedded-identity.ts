import { createHash, randomBytes } from 'node:crypto';
import type { RequestContext } from '../domain/context.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { NotFoundError, UnauthenticatedError, ValidationError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { formatKeystoneTime } from '../lib/time.js';
import type { Db } from '../store/db.js';
import { findTokenByHash, insertToken, purgeExpiredTokens, revokeToken, type TokenRecord } from '../store/token.store.js';
import { DEFAULT_DOMAIN, roleId, type IdentityDirectory, type Project, type User } from './identity-file.js';
import type { KeystoneCatalogEntry, KeystoneEndpoint, KeystoneTokenBody } from './keystone-token.js';
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
   * method, missing scope or no role on the project → UnauthenticatedError (401). A
   * re-scoped token never outlives the token it came from.
   */
  async authenticate(body: unknown): Promise<IssuedToken> {
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
      user = this.passwordUser(dir, identity.password);
    } else {
      const t = identity.token;
      if (!isObject(t) || typeof t.id !== 'string' || t.id === '') throw new ValidationError("Invalid input for field 'auth.identity.token.id': expecting a string.");
      const rec = await this.liveRecord(t.id, now);
      const u = rec ? dir.userById(rec.userId) : undefined;
      if (!rec || !u) throw new UnauthenticatedError();
      user = u;
      notAfter = rec.expiresAt;
      auditChain = [rec.auditId];
    }

    const project = this.scopedProject(dir, auth.scope);
    const roleNames = dir.rolesOn(user, project.id);
    if (roleNames.length === 0) {
      this.log.info({ userId: user.id, projectId: project.id }, 'token refused: user has no role on the project');
      throw new UnauthenticatedError();
    }
    if (dir.isAdmin(user) && !roleNames.includes('admin')) roleNames.push('admin');

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

  private passwordUser(dir: IdentityDirectory, password: unknown): User {
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
    // Unknown user and wrong password answer alike. The comparison runs for unknown users
    // too, against a dummy, so timing does not reveal which user names exist.
    const ok = dir.checkPassword(user ?? { id: '', name: '', password: '\u0000', roles: [] }, u.password);
    if (!user || !ok) {
      this.log.info({ userId: user?.id ?? null }, 'password authentication failed');
      throw new UnauthenticatedError();
    }
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

  /** The stored record when the token is known, unrevoked and unexpired at `now`. Never cached. */
  private async liveRecord(token: string, now: number): Promise<TokenRecord | undefined> {
    const rec = await findTokenByHash(this.db, hashToken(token));
    if (!rec || rec.revoked || now >= rec.expiresAt) return undefined;
    return rec;
  }

  /**
   * `GET /v3/auth/tokens` body for a subject token, read fresh from the store (no cache, so a
   * remote validator sees revocations at once). Invalid/expired/revoked → NotFoundError (404).
   */
  async inspect(subjectToken: string | undefined): Promise<KeystoneTokenBody> {
    const rec = subjectToken ? await this.liveRecord(subjectToken, this.clock.now()) : undefined;
    if (!rec) throw new NotFoundError(TOKEN_NOT_FOUND);
    return this.tokenBody(rec);
  }

  /** `DELETE /v3/auth/tokens`: revokes the subject token. Unknown or already invalid → NotFoundError. */
  async revoke(subjectToken: string | undefined): Promise<void> {
    const rec = subjectToken ? await this.liveRecord(subjectToken, this.clock.now()) : undefined;
    if (!rec || !(await revokeToken(this.db, rec.idHash))) throw new NotFoundError(TOKEN_NOT_FOUND);
    this.cache.delete(rec.idHash);
    this.log.info({ userId: rec.userId, projectId: rec.projectId }, 'token revoked');
  }

  /**
   * The /v1 auth hook's check. Missing, unknown, expired or revoked → UnauthenticatedError.
   * Cached per token hash for at most cacheWindowMs and never past expires_at.
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
