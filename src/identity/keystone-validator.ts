import type { RequestContext } from '../domain/context.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { UnauthenticatedError, UnavailableError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import type { KeystoneTokenBody } from './keystone-token.js';
import { TokenCache } from './token-cache.js';
import { hashToken, type CachedIdentity, type TokenValidator } from './token-validator.js';

/**
 * Validates user tokens against an external Keystone the way keystonemiddleware's auth_token
 * does (LIFEBOAT_KEYSTONE_URL):
 *  1. obtain a service token with the service user's password, project-scoped; it is reused
 *     until shortly before its expires_at and re-obtained then (or when Keystone rejects it);
 *  2. `GET /v3/auth/tokens?nocatalog` with `X-Auth-Token: <service token>` and
 *     `X-Subject-Token: <user token>`;
 *  3. 200 → context (role names; isAdmin when a role is `admin`); 404 or 401 → 401;
 *     unreachable, timeout, 5xx or an unusable answer → 503 "The Keystone service is
 *     temporarily unavailable." (never 401: an outage must not look like bad credentials).
 * Positive answers are cached by token hash for min(cacheTtlMs (300 s), expires_at − now),
 * in a bounded LRU; a cached token is never accepted past its expires_at. Only
 * project-scoped tokens are accepted (the workloadmgr context needs a project).
 */

export const KEYSTONE_UNAVAILABLE = 'The Keystone service is temporarily unavailable.';

export interface KeystoneValidatorOptions {
  /** Keystone URL, with or without the trailing `/v3` (e.g. `http://ks:5000`, `http://h/identity/v3`). */
  url: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName?: string;
  projectDomainName?: string;
  clock?: Clock;
  /** Per HTTP request (default 5000 ms). */
  timeoutMs?: number;
  /** Extra attempts after a connection failure (not after a timeout); default 2. */
  retries?: number;
  /** keystonemiddleware's token_cache_time, ms (default 300 000; 0 disables). */
  cacheTtlMs?: number;
  cacheMaxEntries?: number;
  log?: Logger;
}

interface ServiceToken {
  token: string;
  expiresAt: number;
  /** Re-authenticate from this instant on. */
  refreshAt: number;
}

/** A header-safe token of sane length; anything else cannot be a Keystone token. */
const TOKEN_RE = /^[\x21-\x7e]{1,8192}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function keystoneV3Url(url: string): string {
  const u = url.replace(/\/+$/, '');
  return /\/v3$/.test(u) ? u : `${u}/v3`;
}

export class KeystoneValidator implements TokenValidator {
  private readonly base: string;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly cacheTtlMs: number;
  private readonly cache: TokenCache<CachedIdentity & { expiresAt: number }>;
  private readonly log: Logger;
  private service: ServiceToken | undefined;
  private serviceInFlight: Promise<ServiceToken> | undefined;

  constructor(private readonly opts: KeystoneValidatorOptions) {
    this.base = keystoneV3Url(opts.url);
    this.clock = opts.clock ?? systemClock;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.retries = opts.retries ?? 2;
    this.cacheTtlMs = opts.cacheTtlMs ?? 300_000;
    this.cache = new TokenCache(this.clock, opts.cacheMaxEntries ?? 10_000);
    this.log = opts.log ?? silentLogger;
  }

  /** `<url>/v3`, for WWW-Authenticate. */
  get identityV3Url(): string {
    return this.base;
  }

  async validate(token: string | undefined, requestId: string): Promise<RequestContext> {
    if (!token || !TOKEN_RE.test(token)) throw new UnauthenticatedError();
    const key = hashToken(token);
    let id = this.cache.get(key);
    if (!id) {
      id = await this.fetchIdentity(token, requestId);
      this.cache.set(key, id, Math.min(this.clock.now() + this.cacheTtlMs, id.expiresAt));
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

  private async fetchIdentity(token: string, requestId: string): Promise<CachedIdentity & { expiresAt: number }> {
    for (let attempt = 0; ; attempt++) {
      const service = await this.serviceToken(requestId);
      const res = await this.call('GET', '/auth/tokens?nocatalog', {
        'x-auth-token': service.token,
        'x-subject-token': token,
        'x-openstack-request-id': requestId,
      });
      if (res.status === 200) return this.parseValidation(await this.json(res));
      await res.body?.cancel();
      if (res.status === 404) throw new UnauthenticatedError();
      if (res.status === 401) {
        // Keystone rejected our service token (revoked, or expired early): get a fresh one once.
        if (this.service === service) this.service = undefined;
        if (attempt === 0) continue;
        throw new UnauthenticatedError();
      }
      this.log.error({ status: res.status, requestId }, 'keystone token validation failed');
      throw new UnavailableError(KEYSTONE_UNAVAILABLE);
    }
  }

  private parseValidation(body: unknown): CachedIdentity & { expiresAt: number } {
    const t = isObject(body) ? (body as Partial<KeystoneTokenBody>).token : undefined;
    if (!isObject(t) || !isObject(t.user) || typeof t.user.id !== 'string' || typeof t.expires_at !== 'string') {
      this.log.error({}, 'keystone answered token validation with an unusable body');
      throw new UnavailableError(KEYSTONE_UNAVAILABLE);
    }
    const expiresAt = Date.parse(t.expires_at);
    if (Number.isNaN(expiresAt)) throw new UnavailableError(KEYSTONE_UNAVAILABLE);
    // keystonemiddleware: reject a token whose expires_at has passed (stale_duration 0).
    if (expiresAt <= this.clock.now()) throw new UnauthenticatedError();
    const project = t.project;
    if (!isObject(project) || typeof project.id !== 'string') throw new UnauthenticatedError();
    const roles = Array.isArray(t.roles) ? t.roles.filter(isObject).map((r) => r.name).filter((n): n is string => typeof n === 'string') : [];
    return {
      userId: t.user.id,
      userName: typeof t.user.name === 'string' ? t.user.name : '',
      projectId: project.id,
      projectName: typeof project.name === 'string' ? project.name : '',
      roles,
      isAdmin: roles.includes('admin'),
      expiresAt,
    };
  }

  /**
   * A read of Keystone's admin API with the service token (projects, users, role assignments:
   * identity lookups of disaster recovery). The status and parsed body; transport failures throw
   * UnavailableError. The service user needs a role that may read them (admin or reader).
   */
  async serviceGet(path: string, requestId: string): Promise<{ status: number; body: unknown }> {
    const s = await this.serviceToken(requestId);
    const res = await this.call('GET', path, { 'x-auth-token': s.token, 'x-openstack-request-id': requestId });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { status: res.status, body: null };
    }
    return { status: 200, body: await this.json(res) };
  }

  /** The current service token; concurrent callers share one authentication. */
  private async serviceToken(requestId: string): Promise<ServiceToken> {
    const s = this.service;
    if (s && this.clock.now() < s.refreshAt) return s;
    this.serviceInFlight ??= this.authenticateService(requestId).finally(() => {
      this.serviceInFlight = undefined;
    });
    const fresh = await this.serviceInFlight;
    this.service = fresh;
    return fresh;
  }

  private async authenticateService(requestId: string): Promise<ServiceToken> {
    const o = this.opts;
    const body = {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: o.username, domain: { name: o.userDomainName ?? 'Default' }, password: o.password } },
        },
        scope: { project: { name: o.projectName, domain: { name: o.projectDomainName ?? 'Default' } } },
      },
    };
    const res = await this.call('POST', '/auth/tokens?nocatalog', { 'content-type': 'application/json', 'x-openstack-request-id': requestId }, JSON.stringify(body));
    if (res.status !== 201 && res.status !== 200) {
      await res.body?.cancel();
      // Our own credentials failing is an operator problem, not the user's: 503, logged loudly.
      this.log.error({ status: res.status, user: o.username, project: o.projectName }, 'keystone refused the service credentials');
      throw new UnavailableError(KEYSTONE_UNAVAILABLE);
    }
    const token = res.headers.get('x-subject-token');
    const parsed = await this.json(res);
    const expiresAt = isObject(parsed) && isObject(parsed.token) && typeof parsed.token.expires_at === 'string' ? Date.parse(parsed.token.expires_at) : NaN;
    if (!token || Number.isNaN(expiresAt)) {
      this.log.error({}, 'keystone answered service authentication without a token');
      throw new UnavailableError(KEYSTONE_UNAVAILABLE);
    }
    const now = this.clock.now();
    // Renew a minute early (or half-way for short-lived tokens) so a validation never goes
    // out with a token that expires in flight.
    const margin = Math.min(60_000, Math.max(0, (expiresAt - now) / 2));
    return { token, expiresAt, refreshAt: expiresAt - margin };
  }

  private async json(res: Response): Promise<unknown> {
    try {
      return await res.json();
    } catch (e) {
      throw new UnavailableError(KEYSTONE_UNAVAILABLE, { cause: e });
    }
  }

  /**
   * One HTTP exchange with Keystone. Connection failures are retried `retries` times; a
   * timeout is not (it would multiply the wait). Any transport failure → UnavailableError.
   */
  private async call(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fetch(`${this.base}${path}`, { method, headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
      } catch (e) {
        const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
        if (!timedOut && attempt < this.retries) continue;
        this.log.error({ url: `${this.base}${path.replace(/\?.*$/, '')}`, err: e instanceof Error ? e.message : String(e), timedOut }, 'keystone unreachable');
        throw new UnavailableError(KEYSTONE_UNAVAILABLE, { cause: e });
      }
    }
  }
}
