import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLifeboat, type Lifeboat } from '../src/app/app.js';
import { loadConfig } from '../src/config/config.js';
import { silentLogger } from '../src/lib/logger.js';
import { freePort } from '../src/lib/testing.js';
import { OpenStackError } from '../src/openstack/errors.js';
import { OpenStackSession, type ServiceType } from '../src/openstack/session.js';

/**
 * The loopback OpenStack for tests (../shared/openstack/openstack-in-a-box.sh, `up` with
 * OIB_LIBVIRT=1; .ci/run starts it). Keystone at LIFEBOAT_TEST_OS_AUTH_URL (default
 * http://127.0.0.1:5000/v3), admin password OIB_PASSWORD (default `secret`).
 *
 * Every resource a test makes is named `lbt-<run id>-…` (tests of several helpers share the
 * stack) and registered for cleanup, which runs in reverse order and waits for deletions
 * that must finish before the next (a server before its network).
 */
export const OS_AUTH_URL = process.env.LIFEBOAT_TEST_OS_AUTH_URL ?? 'http://127.0.0.1:5000/v3';
export const OS_PASSWORD = process.env.OIB_PASSWORD ?? 'secret';

/** false when the stack answers; else why the test skips (with CI=true the test runs and fails instead). */
export async function openstackSkip(): Promise<string | false> {
  try {
    const r = await fetch(OS_AUTH_URL, { signal: AbortSignal.timeout(3000) });
    await r.body?.cancel();
    if (r.ok) return false;
  } catch {
    // fall through
  }
  if (process.env.CI === 'true') return false;
  return `the loopback OpenStack is not up at ${OS_AUTH_URL} (start it: OIB_LIBVIRT=1 bash ../shared/openstack/openstack-in-a-box.sh up); with CI=true this test fails instead`;
}

export function passwordSession(username: string, password: string, projectName: string, o: { region?: string | null } = {}): OpenStackSession {
  return new OpenStackSession({
    authUrl: OS_AUTH_URL,
    auth: { kind: 'password', username, password, userDomainName: 'Default', projectName, projectDomainName: 'Default' },
    interface: 'public',
    region: o.region ?? null,
  });
}

export interface OsUser {
  id: string;
  name: string;
  password: string;
}

export interface OsProject {
  id: string;
  name: string;
}

/** Polls every second (OpenStack state changes take seconds) until `fn` is truthy. */
export async function pollFor<T>(fn: () => Promise<T | null | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export class OsFixture {
  readonly admin = passwordSession('admin', OS_PASSWORD, 'admin');
  readonly run = `lbt-${randomBytes(4).toString('hex')}`;
  private readonly cleanups: { what: string; fn: () => Promise<void> }[] = [];

  name(what: string): string {
    return `${this.run}-${what}`;
  }

  /** Registers an undo step (run in reverse by cleanup()). */
  onCleanup(what: string, fn: () => Promise<void>): void {
    this.cleanups.push({ what, fn });
  }

  /** Deletes everything registered; returns what could not be deleted (a test asserts it is empty). */
  async cleanup(): Promise<string[]> {
    const failed: string[] = [];
    for (const c of this.cleanups.reverse()) {
      try {
        await c.fn();
      } catch (e) {
        if (!(e instanceof OpenStackError && e.status === 404)) failed.push(`${c.what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.cleanups.length = 0;
    return failed;
  }

  async roleId(name: string): Promise<string> {
    const r = await this.admin.call<{ roles: { id: string }[] }>('identity', 'GET', `/roles?name=${encodeURIComponent(name)}`);
    const id = r.data.roles[0]?.id;
    if (!id) throw new Error(`no role ${name}`);
    return id;
  }

  async projectByName(name: string): Promise<OsProject> {
    const r = await this.admin.call<{ projects: OsProject[] }>('identity', 'GET', `/projects?name=${encodeURIComponent(name)}`);
    const p = r.data.projects[0];
    if (!p) throw new Error(`no project ${name}`);
    return p;
  }

  async project(what: string): Promise<OsProject> {
    const name = this.name(what);
    const r = await this.admin.call<{ project: OsProject }>('identity', 'POST', '/projects', { json: { project: { name, domain_id: 'default' } } });
    const p = r.data.project;
    this.onCleanup(`project ${name}`, async () => {
      await this.admin.call('identity', 'PATCH', `/projects/${p.id}`, { json: { project: { enabled: false } } });
      await this.admin.call('identity', 'DELETE', `/projects/${p.id}`);
    });
    return p;
  }

  /** A user with `roles` on `project`. */
  async user(what: string, project: OsProject, roles: string[]): Promise<OsUser> {
    const name = this.name(what);
    const password = randomBytes(12).toString('hex');
    const r = await this.admin.call<{ user: { id: string } }>('identity', 'POST', '/users', { json: { user: { name, password, domain_id: 'default' } } });
    const id = r.data.user.id;
    this.onCleanup(`user ${name}`, async () => void (await this.admin.call('identity', 'DELETE', `/users/${id}`)));
    for (const role of roles) await this.admin.call('identity', 'PUT', `/projects/${project.id}/users/${id}/roles/${await this.roleId(role)}`);
    return { id, name, password };
  }

  /** Lifeboat's own service user: `admin` + `service` on the `service` project (README §7.6). */
  async serviceUser(): Promise<OsUser> {
    return this.user('lifeboat', await this.projectByName('service'), ['admin', 'service']);
  }

  sessionOf(u: OsUser, p: OsProject): OpenStackSession {
    return passwordSession(u.name, u.password, p.name);
  }

  /** Creates with POST and registers a DELETE (waiting for 404 when `waitGone`). */
  async create<T extends { id: string }>(s: OpenStackSession, service: ServiceType, path: string, key: string, body: unknown, waitGone = false): Promise<T> {
    const r = await s.call<Record<string, T>>(service, 'POST', path, { json: { [key]: body } });
    const obj = r.data[key]!;
    const url = `${path}/${obj.id}`;
    this.onCleanup(`${service} ${url}`, async () => {
      await s.call(service, 'DELETE', url);
      if (waitGone) await pollFor(async () => (await s.call(service, 'GET', url, { expect: [200, 404] })).status === 404, 300_000, `${url} to be deleted`);
    });
    return obj;
  }

  /** A raw Glance image holding `bytes` (admin-owned, public so every test project can boot it). */
  async image(bytes: Buffer): Promise<string> {
    const img = await this.admin.call<{ id: string }>('image', 'POST', '/images', { json: { name: this.name('image'), disk_format: 'raw', container_format: 'bare', visibility: 'public' } });
    const id = img.data.id;
    this.onCleanup(`image ${id}`, async () => void (await this.admin.call('image', 'DELETE', `/images/${id}`)));
    await this.admin.call('image', 'PUT', `/images/${id}/file`, { body: bytes, contentType: 'application/octet-stream', timeoutMs: 120_000 });
    return id;
  }

  async flavor(o: { ram?: number; disk?: number } = {}): Promise<{ id: string; name: string }> {
    const f = await this.create<{ id: string; name: string }>(this.admin, 'compute', '/flavors', 'flavor', { name: this.name('flavor'), ram: o.ram ?? 128, vcpus: 1, disk: o.disk ?? 1 });
    return f;
  }

  /** A network with one subnet in the session's project. */
  async network(s: OpenStackSession, what: string, cidr: string): Promise<{ id: string; subnetId: string }> {
    const net = await this.create<{ id: string }>(s, 'network', '/networks', 'network', { name: this.name(what) });
    const sub = await this.create<{ id: string }>(s, 'network', '/subnets', 'subnet', { name: this.name(`${what}-subnet`), network_id: net.id, cidr, ip_version: 4 });
    return { id: net.id, subnetId: sub.id };
  }

  async securityGroup(s: OpenStackSession, what: string): Promise<{ id: string; name: string }> {
    const g = await this.create<{ id: string; name: string }>(s, 'network', '/security-groups', 'security_group', { name: this.name(what) });
    await s.call('network', 'POST', '/security-group-rules', { json: { security_group_rule: { security_group_id: g.id, direction: 'ingress', protocol: 'tcp', port_range_min: 22, port_range_max: 22 } } });
    return g;
  }

  /** POST /servers; registers the delete (waiting until it is gone, so its ports go first). */
  async server(s: OpenStackSession, body: Record<string, unknown>): Promise<string> {
    const srv = await this.create<{ id: string }>(s, 'compute', '/servers', 'server', { name: this.name(String(body.name ?? 'server')), ...body, ...(body.name ? { name: this.name(String(body.name)) } : {}) }, true);
    return srv.id;
  }

  /**
   * A server that reached ACTIVE. The loopback stack's SQLite sometimes fails a build inside
   * nova-conductor ("database is locked", OpenStack-in-a-box README §4.15.4) and leaves the
   * server in BUILD for ever: such a server is deleted and the boot tried again (3 tries).
   */
  async activeServer(s: OpenStackSession, body: Record<string, unknown>): Promise<{ id: string; server: Record<string, unknown> }> {
    for (let attempt = 1; ; attempt++) {
      const id = await this.server(s, body);
      try {
        return { id, server: await this.serverStatus(s, id, 'ACTIVE', 180_000) };
      } catch (e) {
        if (attempt >= 3) throw e;
        await s.call('compute', 'DELETE', `/servers/${id}`, { expect: [204, 404] });
      }
    }
  }

  async serverStatus(s: OpenStackSession, id: string, want: string, ms = 600_000): Promise<Record<string, unknown>> {
    return pollFor(async () => {
      const r = await s.call<{ server: Record<string, unknown> }>('compute', 'GET', `/servers/${id}`);
      const st = r.data.server.status;
      if (st === 'ERROR' && want !== 'ERROR') throw new Error(`server ${id} went to ERROR: ${JSON.stringify(r.data.server.fault ?? {})}`);
      return st === want ? r.data.server : null;
    }, ms, `server ${id} to be ${want}`);
  }
}

/** A Lifeboat with LIFEBOAT_PLATFORM=openstack acting as `svc`, on a free port with a temp home. */
export interface OsLifeboat {
  lb: Lifeboat;
  url: string;
  home: string;
  api(token: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; json: any; headers: Headers }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close(): Promise<void>;
}

export async function startOsLifeboat(svc: OsUser, env: Record<string, string> = {}): Promise<OsLifeboat> {
  const home = mkdtempSync(join(tmpdir(), 'lifeboat-os-'));
  const config = loadConfig(
    {
      LIFEBOAT_HOME: home,
      LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`,
      LIFEBOAT_PLATFORM: 'openstack',
      LIFEBOAT_KEYSTONE_URL: OS_AUTH_URL,
      LIFEBOAT_KEYSTONE_USER: svc.name,
      LIFEBOAT_KEYSTONE_PASSWORD: svc.password,
      LIFEBOAT_KEYSTONE_PROJECT: 'service',
      LIFEBOAT_OS_REGION: 'RegionOne',
      LIFEBOAT_JOB_LEASE: '5',
      ...env,
    },
    home,
  );
  const lb = await startLifeboat(config, { role: 'all', demo: false, log: silentLogger });
  const url = `http://${lb.address}`;
  return {
    lb,
    url,
    home,
    async api(token, method, path, body) {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (token) headers['x-auth-token'] = token;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const r = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await r.text();
      return { status: r.status, json: text ? JSON.parse(text) : undefined, headers: r.headers };
    },
    async close() {
      await lb.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

export async function tokenOf(u: OsUser, p: OsProject): Promise<string> {
  return (await passwordSession(u.name, u.password, p.name).tokenInfo()).token;
}

export const workloadBody = (ids: string[]) => ({ workload: { name: 'wl', workload_type_id: '2ddd528d-c9b4-4d7e-8722-cc395140255a', source_platform: 'openstack', instances: ids.map((id) => ({ 'instance-id': id })), jobschedule: {}, metadata: {} } });
