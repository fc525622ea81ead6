import { CliError, kindOfStatus, usageError } from './exit-codes.js';

/**
 * Authentication and HTTP for the client commands, the way every python-*client does it:
 * credentials from OS_* variables (flags override), a Keystone v3 password token (or a given
 * token), and the `workloads` endpoint from the token's catalog (or an explicit override).
 * Everything goes over HTTP; src/cli never touches server internals.
 */

/** Credentials and endpoint choice after flags and environment are merged. */
export interface AuthSettings {
  authUrl?: string;
  username?: string;
  userId?: string;
  password?: string;
  projectName?: string;
  projectId?: string;
  userDomainName?: string;
  userDomainId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  token?: string;
  /** Endpoint override, e.g. `http://host:8780/v1/<project>`. */
  workloadsUrl?: string;
  /** Catalog interface: public (default), internal, admin; `publicURL` style accepted. */
  interface?: string;
  regionName?: string;
  /** Per-request timeout in ms. */
  timeoutMs?: number;
}

/** The `--os-*` flags (commander attribute names) that override the environment. */
export interface AuthFlags {
  osAuthUrl?: string;
  osUsername?: string;
  osPassword?: string;
  osProjectName?: string;
  osProjectId?: string;
  osUserDomainName?: string;
  osProjectDomainName?: string;
  osToken?: string;
  osWorkloadsUrl?: string;
  osInterface?: string;
  osRegionName?: string;
  timeout?: string;
}

type Env = Record<string, string | undefined>;

function pick(...vals: (string | undefined)[]): string | undefined {
  for (const v of vals) if (v !== undefined && v !== '') return v;
  return undefined;
}

/**
 * Merges flags over the environment. Legacy names (OS_TENANT_*) and the workloadmgr client's
 * own WORKLOADMGR_USERNAME/PASSWORD/PROJECT_ID are accepted after the OS_* ones.
 */
export function authSettings(flags: AuthFlags, env: Env): AuthSettings {
  const s: AuthSettings = {};
  const set = <K extends keyof AuthSettings>(k: K, v: AuthSettings[K] | undefined) => {
    if (v !== undefined) s[k] = v;
  };
  set('authUrl', pick(flags.osAuthUrl, env.OS_AUTH_URL));
  set('username', pick(flags.osUsername, env.OS_USERNAME, env.WORKLOADMGR_USERNAME));
  set('userId', pick(env.OS_USER_ID));
  set('password', pick(flags.osPassword, env.OS_PASSWORD, env.WORKLOADMGR_PASSWORD));
  set('projectName', pick(flags.osProjectName, env.OS_PROJECT_NAME, env.OS_TENANT_NAME));
  set('projectId', pick(flags.osProjectId, env.OS_PROJECT_ID, env.OS_TENANT_ID, env.WORKLOADMGR_PROJECT_ID));
  set('userDomainName', pick(flags.osUserDomainName, env.OS_USER_DOMAIN_NAME));
  set('userDomainId', pick(env.OS_USER_DOMAIN_ID));
  set('projectDomainName', pick(flags.osProjectDomainName, env.OS_PROJECT_DOMAIN_NAME));
  set('projectDomainId', pick(env.OS_PROJECT_DOMAIN_ID));
  set('token', pick(flags.osToken, env.OS_TOKEN, env.OS_AUTH_TOKEN));
  set('workloadsUrl', pick(flags.osWorkloadsUrl, env.OS_WORKLOADS_URL, env.OS_URL));
  set('interface', pick(flags.osInterface, env.OS_INTERFACE, env.OS_ENDPOINT_TYPE));
  set('regionName', pick(flags.osRegionName, env.OS_REGION_NAME));
  const t = pick(flags.timeout, env.LIFEBOAT_CLIENT_TIMEOUT);
  if (t !== undefined) {
    const n = Number(t);
    if (!Number.isFinite(n) || n <= 0) throw usageError(`--timeout must be a positive number of seconds, got '${t}'`);
    s.timeoutMs = n * 1000;
  }
  return s;
}

export interface HttpResult {
  status: number;
  headers: Headers;
  /** Parsed JSON body, undefined for an empty body. */
  body: unknown;
}

export type FetchFn = typeof fetch;

const DEFAULT_TIMEOUT_MS = 60_000;

function requestIdOf(h: Headers): string | undefined {
  return h.get('x-openstack-request-id') ?? h.get('x-compute-request-id') ?? undefined;
}

/**
 * The message of an OpenStack fault body: `{"<faultName>": {"code", "message"}}`
 * (keystonemiddleware's 401 uses `{"error": {...}}`, the same shape). Falls back to the text.
 */
export function faultMessage(body: unknown, text: string, status: number): string {
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const first = Object.values(body as Record<string, unknown>)[0];
    if (first && typeof first === 'object') {
      const m = (first as Record<string, unknown>).message;
      if (typeof m === 'string' && m !== '') return m;
    }
    const m = (body as Record<string, unknown>).message;
    if (typeof m === 'string' && m !== '') return m;
  }
  const t = text.trim();
  if (t !== '' && t.length < 500) return t;
  return `HTTP ${status}`;
}

/** One HTTP call with JSON in and out; any non-2xx becomes a CliError with the fault message. */
export async function httpJson(
  fetchFn: FetchFn,
  method: string,
  url: string,
  opts: { headers?: Record<string, string>; body?: unknown; timeoutMs?: number; debug?: (line: string) => void } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'lifeboat-client', ...opts.headers };
  let payload: string | undefined;
  if (opts.body !== undefined) {
    payload = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  opts.debug?.(`REQ: ${method} ${url}${payload !== undefined ? ` ${redact(payload)}` : ''}`);
  let res: Response;
  try {
    res = await fetchFn(url, { method, headers, body: payload, signal: AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) });
  } catch (e) {
    const cause = e instanceof Error ? ((e.cause as Error | undefined)?.message ?? e.message) : String(e);
    const what = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError') ? 'Request timed out' : 'Unable to establish connection';
    throw new CliError('unavailable', `${what} to ${url}: ${cause}`, { cause: e });
  }
  const text = await res.text();
  let body: unknown = undefined;
  let parsed = true;
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      parsed = false;
    }
  }
  const requestId = requestIdOf(res.headers);
  opts.debug?.(`RESP: ${res.status}${requestId ? ` ${requestId}` : ''} ${text.length > 2000 ? text.slice(0, 2000) + '…' : text}`);
  if (res.status < 200 || res.status >= 300) {
    const message = faultMessage(body, text, res.status);
    throw new CliError(kindOfStatus(res.status, message), message, { httpStatus: res.status, ...(requestId ? { requestId } : {}) });
  }
  if (!parsed) {
    throw new CliError('unavailable', `Invalid JSON in the response of ${method} ${url}`, { httpStatus: res.status, ...(requestId ? { requestId } : {}) });
  }
  return { status: res.status, headers: res.headers, body };
}

/** Hides passwords in --debug output. */
function redact(payload: string): string {
  return payload.replace(/("password"\s*:\s*)"(?:[^"\\]|\\.)*"/g, '$1"***"');
}

/** `http://h/identity`, `http://h:5000/`, `http://h:5000/v2.0` → the v3 base URL. */
export function keystoneV3Base(authUrl: string): string {
  let u = authUrl.replace(/\/+$/, '');
  if (/\/v2\.0$/.test(u)) u = u.slice(0, -'/v2.0'.length);
  if (!/\/v3$/.test(u)) u = `${u}/v3`;
  return u;
}

interface CatalogEndpoint {
  interface?: string;
  region?: string;
  region_id?: string;
  url?: string;
}
interface CatalogEntry {
  type?: string;
  endpoints?: CatalogEndpoint[];
}

const ENDPOINT_TEMPLATES = [/\$\(tenant_id\)s/g, /%\(tenant_id\)s/g, /\$\(project_id\)s/g, /%\(project_id\)s/g];

function substituteProject(url: string, projectId: string | undefined): string {
  let u = url.replace(/\/+$/, '');
  if (projectId) for (const re of ENDPOINT_TEMPLATES) u = u.replace(re, projectId);
  return u;
}

/**
 * The `workloads` endpoint of a Keystone v3 catalog for the wanted interface (and region).
 * Accepts `publicURL`/`internalURL`/`adminURL` spellings of the interface.
 */
export function workloadsEndpoint(catalog: unknown, iface: string | undefined, region: string | undefined, projectId: string | undefined): string {
  const want = (iface ?? 'public').replace(/URL$/, '');
  const entries = Array.isArray(catalog) ? (catalog as CatalogEntry[]) : [];
  const svc = entries.find((e) => e.type === 'workloads');
  if (!svc) throw new CliError('not-found', "The token's service catalog has no 'workloads' service; set OS_WORKLOADS_URL (or --os-workloads-url) to the endpoint");
  const ep = (svc.endpoints ?? []).find((e) => e.interface === want && (!region || e.region === region || e.region_id === region) && typeof e.url === 'string');
  if (!ep?.url) throw new CliError('not-found', `The 'workloads' service has no ${want} endpoint${region ? ` in region ${region}` : ''}`);
  return substituteProject(ep.url, projectId);
}

/** An authenticated connection to the workloads API: request(method, '/workloads', body). */
export class WlmSession {
  constructor(
    private readonly fetchFn: FetchFn,
    readonly token: string,
    /** `http://host:port/v1/<project>` without trailing slash. */
    readonly baseUrl: string,
    readonly projectId: string | undefined,
    private readonly timeoutMs: number | undefined,
    private readonly debug: ((line: string) => void) | undefined,
  ) {}

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { 'x-auth-token': this.token };
    if (this.projectId) headers['x-auth-project-id'] = this.projectId;
    const r = await httpJson(this.fetchFn, method, `${this.baseUrl}${path}`, {
      headers,
      body,
      ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}),
      ...(this.debug ? { debug: this.debug } : {}),
    });
    return r.body as T;
  }
}

interface TokenBody {
  token?: { project?: { id?: string }; catalog?: unknown };
}

/** Authenticates as configured and resolves the workloads endpoint. */
export async function openSession(s: AuthSettings, fetchFn: FetchFn, debug?: (line: string) => void): Promise<WlmSession> {
  const opt = { ...(s.timeoutMs !== undefined ? { timeoutMs: s.timeoutMs } : {}), ...(debug ? { debug } : {}) };
  // Token + endpoint override: no Keystone round trip at all.
  if (s.token && s.workloadsUrl) {
    const projectId = s.projectId ?? projectFromUrl(s.workloadsUrl);
    return new WlmSession(fetchFn, s.token, substituteProject(s.workloadsUrl, projectId), projectId, s.timeoutMs, debug);
  }
  if (!s.authUrl) {
    throw usageError(
      s.token
        ? 'With a token you must also provide the workloads endpoint via --os-workloads-url or env[OS_WORKLOADS_URL], or an auth url via --os-auth-url or env[OS_AUTH_URL] to look it up'
        : 'You must provide an auth url via either --os-auth-url or env[OS_AUTH_URL] (or a token via --os-token/env[OS_TOKEN] with --os-workloads-url/env[OS_WORKLOADS_URL])',
    );
  }
  const v3 = keystoneV3Base(s.authUrl);
  let token: string;
  let body: TokenBody;
  if (s.token) {
    // Validate the given token to read its project and catalog.
    const r = await httpJson(fetchFn, 'GET', `${v3}/auth/tokens`, { headers: { 'x-auth-token': s.token, 'x-subject-token': s.token }, ...opt });
    token = s.token;
    body = r.body as TokenBody;
  } else {
    if (!s.username && !s.userId) throw usageError('You must provide a username via either --os-username or env[OS_USERNAME]');
    if (!s.password) throw usageError('You must provide a password via either --os-password or env[OS_PASSWORD]');
    if (!s.projectId && !s.projectName) {
      throw usageError('You must provide a project via either --os-project-name/--os-project-id or env[OS_PROJECT_NAME]/env[OS_PROJECT_ID] (legacy OS_TENANT_NAME/OS_TENANT_ID)');
    }
    const userDomain = s.userDomainId ? { id: s.userDomainId } : { name: s.userDomainName ?? 'Default' };
    const user = s.userId ? { id: s.userId, password: s.password } : { name: s.username, domain: userDomain, password: s.password };
    const projectDomain = s.projectDomainId ? { id: s.projectDomainId } : { name: s.projectDomainName ?? 'Default' };
    const project = s.projectId ? { id: s.projectId } : { name: s.projectName, domain: projectDomain };
    const r = await httpJson(fetchFn, 'POST', `${v3}/auth/tokens`, {
      body: { auth: { identity: { methods: ['password'], password: { user } }, scope: { project } } },
      ...opt,
    });
    const t = r.headers.get('x-subject-token');
    if (!t) throw new CliError('unavailable', `Keystone at ${v3} returned no X-Subject-Token`, { httpStatus: r.status });
    token = t;
    body = r.body as TokenBody;
  }
  const projectId = body.token?.project?.id ?? s.projectId;
  const base = s.workloadsUrl ? substituteProject(s.workloadsUrl, projectId) : workloadsEndpoint(body.token?.catalog, s.interface, s.regionName, projectId);
  return new WlmSession(fetchFn, token, base, projectId, s.timeoutMs, debug);
}

/** The project id in `.../v1/<32-hex or uuid>` (how Trilio's own clients recover it). */
function projectFromUrl(url: string): string | undefined {
  const m = /\/v1\/([0-9a-fA-F]{32}|[0-9a-fA-F-]{36})\/?$/.exec(url);
  return m?.[1];
}
