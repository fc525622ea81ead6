import { hostname } from 'node:os';
import { TARGET_NAME_RE, type NamedTarget } from '../lib/target.js';
import { isAbsolute, join, resolve } from 'node:path';
import type { BackupTarget } from '../lib/target.js';
import { METRICS_ACCESS, type MetricsAccess } from '../lib/metrics.js';

/**
 * The one place configuration comes from: LIFEBOAT_* environment variables, validated at
 * start. A bad value stops the process with a message naming the variable and what is wrong.
 * The README's configuration table documents exactly these.
 */
export interface Config {
  home: string;
  listen: { host: string; port: number };
  /** Base URL clients reach this service at (for links and the Keystone catalog). */
  publicUrl: string;
  db: string;
  /** The default target (where backups go unless a workload chose another); the URL scheme picks the kind (backend/open.ts opens it). */
  target: BackupTarget;
  /** Every configured target, the default first (LIFEBOAT_TARGETS; else LIFEBOAT_TARGET named `default`). */
  targets: NamedTarget[];
  /** Name of the default target. */
  defaultTarget: string;
  /** Most backend requests in flight at once per process; null: the backend kind's default. */
  targetConnections: number | null;
  /** Where VMs live (LIFEBOAT_PLATFORM). */
  platform: PlatformKind;
  inventory: string;
  /** libvirt platform: the connection URI and where QEMU puts NBD sockets and scratch files. */
  libvirt: { uri: string; scratchDir: string };
  identity: string;
  keystone: { url: string; user: string; password: string; project: string; userDomain: string; projectDomain: string } | null;
  /** OpenStack platform: which catalog endpoints Lifeboat's service user calls (LIFEBOAT_OS_*). */
  openstack: { interface: 'public' | 'internal' | 'admin'; region: string | null; dataPath: OsDataPath };
  policy: string | null;
  nodeName: string;
  restoreDir: string;
  /**
   * File-level recovery (src/recovery): LIFEBOAT_APPLIANCE_TCG=1 runs the libguestfs appliance
   * under TCG even when /dev/kvm exists (nested KVM that crashes QEMU); LIFEBOAT_MOUNT_IDLE
   * (seconds, default 1800) dismounts a snapshot mount nobody browsed for that long.
   */
  fileRecovery: { forceTcg: boolean; mountIdleSeconds: number };
  tokenTtlSeconds: number;
  /** LIFEBOAT_SMTP_ALLOW: SMTP targets the server may connect to; null = any an admin saved. */
  smtpAllow: { host: string; port: number | null }[] | null;
  /** Brute-force limits of the embedded identity (identity/login-guard.ts); 0 disables one. */
  login: { userFailures: number; addressFailures: number; lockoutMs: number; issuesPerMinute: number };
  /** A worker that has not renewed its job lease for this long is considered dead. */
  jobLeaseSeconds: number;
  /**
   * The key that seals secret settings (LIFEBOAT_SETTINGS_KEY_FILE). Named explicitly, the file
   * must exist (every host of a scale-out install reads the same one); by default it is
   * created in LIFEBOAT_HOME on first start.
   */
  settingsKey: { path: string; create: boolean };
  /**
   * The key-encryption key of encrypted workloads (LIFEBOAT_ENCRYPTION_KEY_FILE; repository
   * README "Encrypted workloads"). Named explicitly, the file must exist (every worker of a
   * scale-out install needs the same one); by default LIFEBOAT_HOME/encryption.key, created on
   * the first snapshot of an encrypted workload.
   */
  encryptionKey: { path: string; create: boolean };
  /**
   * Repository leases on the target (CONCURRENCY.md): a holder renews every ttl/3; GC treats a
   * lease as dead, and collects what its writer left, after ttl + grace without a renewal.
   */
  repoLease: { ttlMs: number; graceMs: number };
  /** Jobs one worker process runs at once (LIFEBOAT_WORKER_CONCURRENCY). */
  workerConcurrency: number;
  /** SIGTERM/SIGINT: how long running jobs may still finish before they are cancelled (0: at once). */
  shutdownGraceSeconds: number;
  logLevel: string;
  /** LIFEBOAT_METRICS_ACCESS: who may read /metrics (lib/metrics.ts METRICS_ACCESS). */
  metricsAccess: MetricsAccess;
  /** LIFEBOAT_METRICS_LISTEN: a second listener with only /metrics, /healthz, /readyz (http/ops.server.ts); null: none. */
  metricsListen: { host: string; port: number } | null;
  /** LIFEBOAT_AUDIT_RETENTION_DAYS: audit log entries older than this are deleted. */
  auditRetentionDays: number;
}

export class ConfigError extends Error {}

/** The platforms LIFEBOAT_PLATFORM may name (platform/open.ts opens each). */
export const PLATFORM_KINDS = ['local', 'libvirt', 'openstack'] as const;

/**
 * LIFEBOAT_OS_DATA_PATH: how the OpenStack platform reads a server's disks. `host`: only through
 * libvirt by the Lifeboat worker of the server's compute host (LIFEBOAT_NODE_NAME = the host);
 * `api`: only through Cinder/Glance/Nova from any worker; `auto` (default): the host path when a
 * live worker serves the host, else the API path.
 */
export const OS_DATA_PATHS = ['auto', 'host', 'api'] as const;
export type OsDataPath = (typeof OS_DATA_PATHS)[number];
export type PlatformKind = (typeof PLATFORM_KINDS)[number];

function parsePlatform(env: Env): PlatformKind {
  const v = nonEmpty(env, 'LIFEBOAT_PLATFORM') ?? 'local';
  const kind = PLATFORM_KINDS.find((k) => k === v);
  if (!kind) throw new ConfigError(`LIFEBOAT_PLATFORM must be one of ${PLATFORM_KINDS.join(', ')}; got ${JSON.stringify(v)}`);
  return kind;
}

type Env = Record<string, string | undefined>;

function nonEmpty(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  if (v.trim() === '') throw new ConfigError(`${name} is set but empty`);
  return v;
}

function parseListen(v: string, name = 'LIFEBOAT_LISTEN'): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  if (!m) throw new ConfigError(`${name} must be host:port (e.g. 127.0.0.1:8780), got ${JSON.stringify(v)}`);
  const port = Number(m[2]);
  if (port < 0 || port > 65535) throw new ConfigError(`${name} port must be 0..65535, got ${port}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function positiveInt(env: Env, name: string, dflt: number): number {
  const v = nonEmpty(env, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) <= 0) throw new ConfigError(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

/**
 * LIFEBOAT_SMTP_ALLOW: comma-separated `host`, `host:port`, `[ipv6]` or `[ipv6]:port`; a host
 * name or IP literal, compared case-insensitively, no wildcards. Unset → null (no list).
 */
function parseSmtpAllow(env: Env): Config['smtpAllow'] {
  const v = nonEmpty(env, 'LIFEBOAT_SMTP_ALLOW');
  if (v === undefined) return null;
  return v.split(',').map((raw) => {
    const e = raw.trim();
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*)(?::(\d{1,5}))?$/.exec(e);
    const bracketless = m && !m[1]!.startsWith('[') && m[1]!.includes(':');
    if (!m || (bracketless && m[2] !== undefined)) {
      throw new ConfigError(`LIFEBOAT_SMTP_ALLOW entries must be host, host:port, [ipv6] or [ipv6]:port; got ${JSON.stringify(e)}`);
    }
    const port = m[2] === undefined ? null : Number(m[2]);
    if (port !== null && (port < 1 || port > 65535)) throw new ConfigError(`LIFEBOAT_SMTP_ALLOW port must be 1..65535, got ${JSON.stringify(e)}`);
    return { host: m[1]!.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, ''), port };
  });
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], dflt: T): T {
  const v = nonEmpty(env, name) ?? dflt;
  const hit = allowed.find((a) => a === v);
  if (hit === undefined) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}; got ${JSON.stringify(v)}`);
  return hit;
}

function nonNegativeInt(env: Env, name: string, dflt: number): number {
  const v = nonEmpty(env, name);
  if (v === undefined) return dflt;
  if (!/^\d{1,9}$/.test(v)) throw new ConfigError(`${name} must be a non-negative integer (0 disables), got ${JSON.stringify(v)}`);
  return Number(v);
}

function flag(env: Env, name: string): boolean {
  const v = env[name];
  if (v === undefined || v === '' || v === '0' || v === 'false') return false;
  if (v === '1' || v === 'true') return true;
  throw new ConfigError(`${name} must be 0/1 or true/false, got ${JSON.stringify(v)}`);
}

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const home = resolve(cwd, nonEmpty(env, 'LIFEBOAT_HOME') ?? '.lifeboat');
  const listen = parseListen(nonEmpty(env, 'LIFEBOAT_LISTEN') ?? '127.0.0.1:8780');

  const dbRaw = nonEmpty(env, 'LIFEBOAT_DB') ?? `sqlite:${join(home, 'lifeboat.db')}`;
  let db: string;
  if (dbRaw.startsWith('sqlite:')) {
    const p = dbRaw.slice('sqlite:'.length);
    if (p === '') throw new ConfigError('LIFEBOAT_DB sqlite: needs a path, e.g. sqlite:/var/lib/lifeboat/lifeboat.db');
    db = p === ':memory:' ? dbRaw : `sqlite:${resolve(cwd, p)}`;
  } else if (/^postgres(ql)?:\/\/.+/.test(dbRaw)) {
    db = dbRaw;
  } else {
    throw new ConfigError(`LIFEBOAT_DB must be sqlite:<path> or postgres://..., got ${JSON.stringify(dbRaw)}`);
  }

  const { targets, defaultTarget } = parseTargets(env, home);
  const target = targets[0]!.target;
  const targetConnections = env.LIFEBOAT_TARGET_CONNECTIONS === undefined ? null : positiveInt(env, 'LIFEBOAT_TARGET_CONNECTIONS', 1);

  const kUrl = nonEmpty(env, 'LIFEBOAT_KEYSTONE_URL');
  let keystone: Config['keystone'] = null;
  if (kUrl !== undefined) {
    let u: URL;
    try {
      u = new URL(kUrl);
    } catch {
      throw new ConfigError(`LIFEBOAT_KEYSTONE_URL is not a URL: ${JSON.stringify(kUrl)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError('LIFEBOAT_KEYSTONE_URL must be http(s)://');
    const user = nonEmpty(env, 'LIFEBOAT_KEYSTONE_USER');
    const password = nonEmpty(env, 'LIFEBOAT_KEYSTONE_PASSWORD');
    const project = nonEmpty(env, 'LIFEBOAT_KEYSTONE_PROJECT');
    if (!user || !password || !project) {
      throw new ConfigError('LIFEBOAT_KEYSTONE_URL needs LIFEBOAT_KEYSTONE_USER, LIFEBOAT_KEYSTONE_PASSWORD and LIFEBOAT_KEYSTONE_PROJECT');
    }
    const userDomain = nonEmpty(env, 'LIFEBOAT_KEYSTONE_USER_DOMAIN') ?? 'Default';
    const projectDomain = nonEmpty(env, 'LIFEBOAT_KEYSTONE_PROJECT_DOMAIN') ?? 'Default';
    keystone = { url: kUrl.replace(/\/+$/, ''), user, password, project, userDomain, projectDomain };
  }
  const platform = parsePlatform(env);
  // The OpenStack platform acts as Lifeboat's own Keystone user, and tenants' tokens must be
  // the cloud's: the embedded identity cannot be used with it.
  if (platform === 'openstack' && !keystone) throw new ConfigError('LIFEBOAT_PLATFORM=openstack needs LIFEBOAT_KEYSTONE_URL (and _USER, _PASSWORD, _PROJECT of Lifeboat\'s service user)');

  const publicHost = listen.host === '0.0.0.0' || listen.host === '::' ? hostname() : listen.host;
  const publicUrl = (nonEmpty(env, 'LIFEBOAT_PUBLIC_URL') ?? `http://${publicHost.includes(':') ? `[${publicHost}]` : publicHost}:${listen.port}`).replace(/\/+$/, '');

  const logLevel = nonEmpty(env, 'LIFEBOAT_LOG_LEVEL') ?? 'info';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError(`LIFEBOAT_LOG_LEVEL must be one of fatal,error,warn,info,debug,trace,silent; got ${JSON.stringify(logLevel)}`);
  }

  return {
    home,
    listen,
    publicUrl,
    db,
    target,
    targets,
    defaultTarget,
    targetConnections,
    platform,
    openstack: parseOpenStack(env),
    inventory: resolve(cwd, nonEmpty(env, 'LIFEBOAT_INVENTORY') ?? join(home, 'inventory.json')),
    libvirt: { uri: nonEmpty(env, 'LIFEBOAT_LIBVIRT_URI') ?? 'qemu:///system', scratchDir: resolve(cwd, nonEmpty(env, 'LIFEBOAT_LIBVIRT_SCRATCH_DIR') ?? join(home, 'libvirt-scratch')) },
    identity: resolve(cwd, nonEmpty(env, 'LIFEBOAT_IDENTITY') ?? join(home, 'identity.json')),
    keystone,
    policy: env.LIFEBOAT_POLICY ? resolve(cwd, env.LIFEBOAT_POLICY) : null,
    nodeName: nonEmpty(env, 'LIFEBOAT_NODE_NAME') ?? hostname(),
    restoreDir: resolve(cwd, nonEmpty(env, 'LIFEBOAT_RESTORE_DIR') ?? join(home, 'instances')),
    fileRecovery: { forceTcg: flag(env, 'LIFEBOAT_APPLIANCE_TCG'), mountIdleSeconds: positiveInt(env, 'LIFEBOAT_MOUNT_IDLE', 1800) },
    tokenTtlSeconds: positiveInt(env, 'LIFEBOAT_TOKEN_TTL', 3600),
    smtpAllow: parseSmtpAllow(env),
    login: {
      userFailures: nonNegativeInt(env, 'LIFEBOAT_LOCKOUT_FAILURES', 6),
      addressFailures: nonNegativeInt(env, 'LIFEBOAT_LOCKOUT_ADDRESS_FAILURES', 30),
      lockoutMs: positiveInt(env, 'LIFEBOAT_LOCKOUT_DURATION', 900) * 1000,
      issuesPerMinute: nonNegativeInt(env, 'LIFEBOAT_TOKEN_RATE', 120),
    },
    jobLeaseSeconds: positiveInt(env, 'LIFEBOAT_JOB_LEASE', 30),
    settingsKey: env.LIFEBOAT_SETTINGS_KEY_FILE === undefined ? { path: join(home, 'settings.key'), create: true } : { path: resolve(cwd, nonEmpty(env, 'LIFEBOAT_SETTINGS_KEY_FILE')!), create: false },
    encryptionKey:
      env.LIFEBOAT_ENCRYPTION_KEY_FILE === undefined ? { path: join(home, 'encryption.key'), create: true } : { path: resolve(cwd, nonEmpty(env, 'LIFEBOAT_ENCRYPTION_KEY_FILE')!), create: false },
    repoLease: { ttlMs: positiveInt(env, 'LIFEBOAT_REPO_LEASE_TTL', 300) * 1000, graceMs: nonNegativeInt(env, 'LIFEBOAT_REPO_LEASE_GRACE', 300) * 1000 },
    workerConcurrency: positiveInt(env, 'LIFEBOAT_WORKER_CONCURRENCY', 2),
    shutdownGraceSeconds: nonNegativeInt(env, 'LIFEBOAT_SHUTDOWN_GRACE', 20),
    logLevel,
    metricsAccess: oneOf(env, 'LIFEBOAT_METRICS_ACCESS', METRICS_ACCESS, 'loopback'),
    metricsListen: env.LIFEBOAT_METRICS_LISTEN === undefined ? null : parseListen(nonEmpty(env, 'LIFEBOAT_METRICS_LISTEN') ?? '', 'LIFEBOAT_METRICS_LISTEN'),
    auditRetentionDays: positiveInt(env, 'LIFEBOAT_AUDIT_RETENTION_DAYS', 90),
  };
}

/** LIFEBOAT_OS_INTERFACE (public|internal|admin, default public), LIFEBOAT_OS_REGION (default: any), LIFEBOAT_OS_DATA_PATH (auto|host|api, default auto). */
function parseOpenStack(env: Env): Config['openstack'] {
  const iface = nonEmpty(env, 'LIFEBOAT_OS_INTERFACE') ?? 'public';
  if (iface !== 'public' && iface !== 'internal' && iface !== 'admin') throw new ConfigError(`LIFEBOAT_OS_INTERFACE must be public, internal or admin; got ${JSON.stringify(iface)}`);
  const dataPath = nonEmpty(env, 'LIFEBOAT_OS_DATA_PATH') ?? 'auto';
  if (!(OS_DATA_PATHS as readonly string[]).includes(dataPath)) throw new ConfigError(`LIFEBOAT_OS_DATA_PATH must be auto, host or api; got ${JSON.stringify(dataPath)}`);
  return { interface: iface, region: nonEmpty(env, 'LIFEBOAT_OS_REGION') ?? null, dataPath: dataPath as OsDataPath };
}

const TARGET_HELP = 'file://<absolute dir> or s3://<bucket>[/<prefix>][?endpoint=<http(s) url>&region=<name>&upload_buffer_mib=<n>]';

/**
 * LIFEBOAT_TARGET → BackupTarget. The scheme picks the kind; each kind's URL is checked in full
 * here so a typo stops the process at start, not at the first backup. Credentials never go in
 * the URL (it is shown in snapshot records and logs): S3 takes them from the AWS variables.
 */
export function parseTarget(raw: string): BackupTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (scheme === 'file') {
    const path = raw.slice('file://'.length);
    if (!isAbsolute(path)) throw new ConfigError(`LIFEBOAT_TARGET must name an absolute directory (file:///srv/backups), got ${JSON.stringify(raw)}`);
    return { kind: 'file', path: resolve(path) };
  }
  if (scheme === 's3') return parseS3Target(raw);
  throw new ConfigError(`LIFEBOAT_TARGET must be ${TARGET_HELP}; unknown scheme in ${JSON.stringify(raw)}`);
}

const S3_BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const S3_PREFIX_SEGMENT_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

function parseS3Target(raw: string): BackupTarget {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`LIFEBOAT_TARGET is not a valid URL; expected ${TARGET_HELP}`);
  }
  if (u.username || u.password) {
    throw new ConfigError('LIFEBOAT_TARGET must not carry credentials; S3 keys come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS credentials file');
  }
  const bucket = u.hostname;
  if (!S3_BUCKET_RE.test(bucket) || u.port !== '') {
    throw new ConfigError(`LIFEBOAT_TARGET s3:// needs a bucket name (3-63 of a-z 0-9 . -), got ${JSON.stringify(u.host)}; put the server in ?endpoint=`);
  }
  const prefix = u.pathname.replace(/^\/+|\/+$/g, '');
  if (prefix !== '' && !prefix.split('/').every((seg) => S3_PREFIX_SEGMENT_RE.test(seg))) {
    throw new ConfigError(`LIFEBOAT_TARGET s3:// prefix may hold only /-separated segments of A-Z a-z 0-9 . _ -, got ${JSON.stringify(prefix)}`);
  }
  if (u.hash) throw new ConfigError('LIFEBOAT_TARGET s3:// takes no #fragment');
  let endpoint: string | null = null;
  let region: string | null = null;
  let uploadBufferMiB: number | null = null;
  for (const [name, value] of u.searchParams) {
    if (name === 'endpoint') endpoint = checkEndpoint(value);
    else if (name === 'upload_buffer_mib') {
      uploadBufferMiB = Number(value);
      if (!/^\d{1,4}$/.test(value) || uploadBufferMiB < 5 || uploadBufferMiB > 4096) {
        throw new ConfigError(`LIFEBOAT_TARGET upload_buffer_mib must be a whole number of MiB from 5 to 4096, got ${JSON.stringify(value.slice(0, 16))}`);
      }
    }
    else if (name === 'region') {
      if (!/^[a-z0-9-]{1,64}$/.test(value)) throw new ConfigError(`LIFEBOAT_TARGET region must be like us-east-1, got ${JSON.stringify(value)}`);
      region = value;
    } else throw new ConfigError(`LIFEBOAT_TARGET s3:// knows only ?endpoint=, ?region= and ?upload_buffer_mib=, got ?${name}=`);
  }
  return { kind: 's3', bucket, prefix, endpoint, region, ...(uploadBufferMiB === null ? {} : { uploadBufferMiB }) };
}

function checkEndpoint(v: string): string {
  let e: URL;
  try {
    e = new URL(v);
  } catch {
    throw new ConfigError(`LIFEBOAT_TARGET endpoint is not a URL: ${JSON.stringify(v)}`);
  }
  if ((e.protocol !== 'http:' && e.protocol !== 'https:') || e.username || e.password || e.search || e.hash) {
    throw new ConfigError('LIFEBOAT_TARGET endpoint must be http(s)://host[:port][/path], without credentials or query');
  }
  return v.replace(/\/+$/, '');
}

/**
 * LIFEBOAT_TARGETS=`name=url;name=url…` declares several targets (LIFEBOAT_DEFAULT_TARGET
 * names the default, else the first); without it LIFEBOAT_TARGET is the one target, named
 * `default`. Setting both is refused: which one would be the default is not obvious.
 * The returned list has the default first.
 */
function parseTargets(env: Env, home: string): { targets: NamedTarget[]; defaultTarget: string } {
  const list = nonEmpty(env, 'LIFEBOAT_TARGETS');
  if (list === undefined) {
    if (nonEmpty(env, 'LIFEBOAT_DEFAULT_TARGET') !== undefined) throw new ConfigError('LIFEBOAT_DEFAULT_TARGET needs LIFEBOAT_TARGETS');
    return { targets: [{ name: 'default', target: parseTarget(nonEmpty(env, 'LIFEBOAT_TARGET') ?? `file://${join(home, 'target')}`) }], defaultTarget: 'default' };
  }
  if (env.LIFEBOAT_TARGET !== undefined) throw new ConfigError('set either LIFEBOAT_TARGET (one target) or LIFEBOAT_TARGETS (several), not both');
  const targets: NamedTarget[] = [];
  for (const entry of list.split(';').map((e) => e.trim()).filter((e) => e !== '')) {
    const eq = entry.indexOf('=');
    const name = eq > 0 ? entry.slice(0, eq).trim() : '';
    if (!TARGET_NAME_RE.test(name)) throw new ConfigError(`LIFEBOAT_TARGETS entries must be name=url with a name of a-z 0-9 _ - (at most 63, starting with a letter or digit); got ${JSON.stringify(entry.slice(0, 80))}`);
    if (targets.some((t) => t.name === name)) throw new ConfigError(`LIFEBOAT_TARGETS names target ${name} twice`);
    targets.push({ name, target: parseTarget(entry.slice(eq + 1).trim()) });
  }
  if (targets.length === 0) throw new ConfigError('LIFEBOAT_TARGETS declares no target');
  const defaultTarget = nonEmpty(env, 'LIFEBOAT_DEFAULT_TARGET') ?? targets[0]!.name;
  const dflt = targets.find((t) => t.name === defaultTarget);
  if (!dflt) throw new ConfigError(`LIFEBOAT_DEFAULT_TARGET ${JSON.stringify(defaultTarget)} is not one of the targets in LIFEBOAT_TARGETS (${targets.map((t) => t.name).join(', ')})`);
  return { targets: [dflt, ...targets.filter((t) => t !== dflt)], defaultTarget };
}
