import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../lib/clock.js';
import { UnauthenticatedError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { endpointFor, type CatalogEntry, type EndpointInterface } from './catalog.js';
import { errorDetail, OpenStackError } from './errors.js';
import { retryPause } from './wait.js';

/**
 * A Keystone-authenticated session against one OpenStack cloud: Lifeboat's own service user
 * (password, project-scoped) or a trust-scoped token made from it (scheduled work).
 *
 * Contracts:
 *  * The token is obtained lazily, shared by concurrent callers, and renewed before it expires
 *    (5 min early, or half-way for short-lived tokens); a 401 from any service drops it and the
 *    call is retried once with a fresh one. A trust-scoped token cannot be refreshed (Keystone
 *    refuses re-scoping), so renewal authenticates again with the trustee's password.
 *  * Endpoints come from the token's catalog (LIFEBOAT_OS_INTERFACE / _REGION), never from
 *    configuration; microversions are pinned (MICROVERSIONS) and sent on every call.
 *  * Every call has a timeout. Connection failures and 5xx answers are retried (`retries`
 *    times, pausing 1 s then 2 s: wait.ts retryPause) when repeating the call cannot do anything twice:
 *    GET/HEAD/PUT/DELETE always, POST only when the connection was refused (never sent) or
 *    the caller marks it `idempotent`.
 *  * A failure throws OpenStackError naming the service, method, path, status and the
 *    request id OpenStack gave it. Tokens and passwords never go into errors or logs.
 */

export type ServiceType = 'compute' | 'volumev3' | 'image' | 'network' | 'key-manager';

/** Pinned microversions (Zed supports compute ≤ 2.93, volume ≤ 3.70; these were verified there). */
export const MICROVERSIONS: Readonly<Partial<Record<ServiceType, string>>> = { compute: '2.79', volumev3: '3.60' };

const CATALOG_TYPES: Record<ServiceType, readonly string[]> = {
  compute: ['compute'],
  volumev3: ['volumev3', 'block-storage', 'volume'],
  image: ['image'],
  network: ['network'],
  'key-manager': ['key-manager'],
};
/** Path prefix under each endpoint (Glance and Neutron register bare host:port endpoints). */
const VERSION_PREFIX: Record<ServiceType, string> = { compute: '', volumev3: '', image: '/v2', network: '/v2.0', 'key-manager': '/v1' };

export interface PasswordAuth {
  kind: 'password';
  username: string;
  password: string;
  userDomainName: string;
  projectName: string;
  projectDomainName: string;
}

/** The trustee (Lifeboat's service user) acting through a Keystone trust. */
export interface TrustAuth {
  kind: 'trust';
  username: string;
  password: string;
  userDomainName: string;
  trustId: string;
}

export interface SessionOptions {
  /** Keystone URL, with or without `/v3`. */
  authUrl: string;
  auth: PasswordAuth | TrustAuth;
  interface: EndpointInterface;
  region: string | null;
  /** Per HTTP exchange (default 60 s; uploads/downloads pass their own). */
  timeoutMs?: number;
  retries?: number;
  clock?: Clock;
  log?: Logger;
}

export interface TokenInfo {
  token: string;
  expiresAt: number;
  refreshAt: number;
  catalog: CatalogEntry[];
  userId: string;
  projectId: string;
  roles: string[];
}

export interface CallOptions {
  /** JSON body (sets content-type). */
  json?: unknown;
  /** Raw body (e.g. a Glance upload stream) with its content type. */
  body?: RequestInit['body'];
  contentType?: string;
  headers?: Record<string, string>;
  /** Statuses that count as success (default: any 2xx). */
  expect?: number[];
  timeoutMs?: number;
  /** Return the Response unread (downloads); the caller must consume or cancel its body. */
  raw?: boolean;
  /**
   * The caller vouches that sending this POST twice does no more than once (an admin's
   * reset-state, setting a status): it is retried on 5xx like a PUT.
   */
  idempotent?: boolean;
}

export interface CallResult<T = unknown> {
  status: number;
  requestId: string | null;
  headers: Headers;
  data: T;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);
const RETRY_STATUS = new Set([500, 502, 503, 504]);

export function keystoneV3(url: string): string {
  const u = url.replace(/\/+$/, '');
  return /\/v3$/.test(u) ? u : `${u}/v3`;
}

export class OpenStackSession {
  readonly authUrl: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private current: TokenInfo | undefined;
  private inFlight: Promise<TokenInfo> | undefined;

  constructor(private readonly opts: SessionOptions) {
    this.authUrl = keystoneV3(opts.authUrl);
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? silentLogger;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.retries = opts.retries ?? 2;
  }

  /** The session's valid token (authenticating or renewing first when needed). */
  async tokenInfo(): Promise<TokenInfo> {
    const t = this.current;
    if (t && this.clock.now() < t.refreshAt) return t;
    this.inFlight ??= this.authenticate().finally(() => {
      this.inFlight = undefined;
    });
    this.current = await this.inFlight;
    return this.current;
  }

  /** The base URL of a service (catalog endpoint + API version prefix). */
  async endpoint(service: ServiceType): Promise<string> {
    const t = await this.tokenInfo();
    return endpointFor(t.catalog, CATALOG_TYPES[service], this.opts.interface, this.opts.region) + VERSION_PREFIX[service];
  }

  /** One call to an OpenStack service; see the class contract for retries and errors. */
  async call<T = unknown>(service: ServiceType | 'identity', method: string, path: string, o: CallOptions = {}): Promise<CallResult<T>> {
    for (let reauth = 0; ; reauth++) {
      const info = await this.tokenInfo();
      const base = service === 'identity' ? this.authUrl : await this.endpoint(service);
      const headers: Record<string, string> = { accept: 'application/json', 'x-auth-token': info.token, ...o.headers };
      const mv = service === 'identity' ? undefined : MICROVERSIONS[service];
      // A call may ask for a newer microversion of its own (e.g. Cinder's os-reimage, 3.68).
      if (mv && !o.headers?.['openstack-api-version']) headers['openstack-api-version'] = `${service === 'compute' ? 'compute' : 'volume'} ${mv}`;
      if (o.json !== undefined) headers['content-type'] = 'application/json';
      else if (o.contentType) headers['content-type'] = o.contentType;
      const res = await this.exchange(service, method, base, path, headers, o);
      if (res.status === 401 && reauth === 0) {
        await res.body?.cancel();
        if (this.current === info) this.current = undefined;
        continue;
      }
      return this.result<T>(service, method, path, res, o);
    }
  }

  /** Sends one request, retrying transport failures and 5xx as the contract allows. */
  private async exchange(service: string, method: string, base: string, path: string, headers: Record<string, string>, o: CallOptions): Promise<Response> {
    const body = o.json !== undefined ? JSON.stringify(o.json) : o.body;
    // A stream body can be sent only once: no retry then.
    const replayable = body === undefined || typeof body === 'string' || body instanceof Uint8Array;
    const repeatable = IDEMPOTENT.has(method) || o.idempotent === true;
    for (let attempt = 0; ; attempt++) {
      const started = Date.now();
      try {
        const init: RequestInit & { duplex?: 'half' } = { method, headers, body, signal: AbortSignal.timeout(o.timeoutMs ?? this.timeoutMs) };
        if (body !== undefined && !replayable) init.duplex = 'half';
        const res = await fetch(`${base}${path}`, init);
        this.log.debug({ service, method, path: stripQuery(path), status: res.status, requestId: requestIdOf(res.headers), ms: Date.now() - started }, 'openstack call');
        if (RETRY_STATUS.has(res.status) && repeatable && replayable && attempt < this.retries) {
          await res.body?.cancel();
          await backoff(attempt);
          continue;
        }
        return res;
      } catch (e) {
        const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
        const refused = causeCode(e) === 'ECONNREFUSED';
        const retry = !timedOut && replayable && attempt < this.retries && (repeatable || refused);
        if (retry) {
          await backoff(attempt);
          continue;
        }
        const why = timedOut ? `timed out after ${o.timeoutMs ?? this.timeoutMs} ms` : `${causeCode(e) ?? (e instanceof Error ? e.message : String(e))}`;
        throw new OpenStackError(service, method, stripQuery(path), 0, null, why, { cause: e });
      }
    }
  }

  private async result<T>(service: string, method: string, path: string, res: Response, o: CallOptions): Promise<CallResult<T>> {
    const requestId = requestIdOf(res.headers);
    const ok = o.expect ? o.expect.includes(res.status) : res.status >= 200 && res.status < 300;
    if (!ok) {
      const text = await res.text().catch(() => '');
      throw new OpenStackError(service, method, stripQuery(path), res.status, requestId, errorDetail(text));
    }
    if (o.raw) return { status: res.status, requestId, headers: res.headers, data: res as T };
    const text = await res.text();
    let data: unknown = null;
    if (text && (res.headers.get('content-type') ?? '').includes('json')) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        throw new OpenStackError(service, method, stripQuery(path), res.status, requestId, 'unparseable JSON answer', { cause: e });
      }
    }
    return { status: res.status, requestId, headers: res.headers, data: data as T };
  }

  private async authenticate(): Promise<TokenInfo> {
    const a = this.opts.auth;
    const identity = { methods: ['password'], password: { user: { name: a.username, domain: { name: a.userDomainName }, password: a.password } } };
    const scope = a.kind === 'trust' ? { 'OS-TRUST:trust': { id: a.trustId } } : { project: { name: a.projectName, domain: { name: a.projectDomainName } } };
    const headers = { 'content-type': 'application/json', accept: 'application/json', 'x-openstack-request-id': `req-${randomUUID()}` };
    const res = await this.exchange('identity', 'POST', this.authUrl, '/auth/tokens', headers, { json: { auth: { identity, scope } } });
    const requestId = requestIdOf(res.headers);
    if (res.status === 401 || res.status === 403 || res.status === 404) {
      const detail = errorDetail(await res.text().catch(() => ''));
      this.log.error({ status: res.status, user: a.username, requestId, kind: a.kind }, 'keystone refused Lifeboat\'s credentials');
      // The trust's or the service user's failure is not a tenant's missing token, but the
      // job must name it: keep Keystone's reason.
      throw new OpenStackError('identity', 'POST', '/auth/tokens', res.status, requestId, detail || 'authentication refused', { cause: new UnauthenticatedError() });
    }
    const { data } = await this.result<{ token?: RawToken }>('identity', 'POST', '/auth/tokens', res, {});
    const token = res.headers.get('x-subject-token');
    const t = data?.token;
    const expiresAt = t?.expires_at ? Date.parse(t.expires_at) : NaN;
    if (!token || !t || Number.isNaN(expiresAt) || !t.project?.id || !t.user?.id) {
      throw new OpenStackError('identity', 'POST', '/auth/tokens', res.status, requestId, 'answer without a project-scoped token');
    }
    const now = this.clock.now();
    const margin = Math.min(300_000, Math.max(0, (expiresAt - now) / 2));
    return { token, expiresAt, refreshAt: expiresAt - margin, catalog: t.catalog ?? [], userId: t.user.id, projectId: t.project.id, roles: (t.roles ?? []).map((r) => r.name) };
  }
}

interface RawToken {
  expires_at?: string;
  catalog?: CatalogEntry[];
  user?: { id: string };
  project?: { id: string };
  roles?: { name: string }[];
}

export function requestIdOf(h: Headers): string | null {
  return h.get('x-openstack-request-id') ?? h.get('x-compute-request-id') ?? null;
}

function stripQuery(path: string): string {
  return path.replace(/\?.*$/, '');
}

function causeCode(e: unknown): string | undefined {
  const c = e instanceof Error ? (e.cause as { code?: unknown } | undefined) : undefined;
  return typeof c?.code === 'string' ? c.code : undefined;
}

function backoff(attempt: number): Promise<void> {
  return retryPause(attempt + 1);
}
