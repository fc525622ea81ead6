import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLifeboat, type Lifeboat } from '../src/app/app.js';
import { loadConfig, type Config } from '../src/config/config.js';
import { silentLogger, type Logger } from '../src/lib/logger.js';
import { freePort } from '../src/lib/testing.js';
import { OpenStackApi } from '../src/openstack/api.js';
import { OpenStackError } from '../src/openstack/errors.js';
import { OpenStackSession, type ServiceType } from '../src/openstack/session.js';
import { imageTag } from '../src/platform/openstack/restore-resources.js';
import { FileDiskSink } from '../src/platform/disk-io/file-disk.js';
import { restoreDisk } from '../src/datamover/restore.js';
import type { Repository } from '../src/repository/repository.js';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

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

/** Where the stack keeps its data: a Cinder volume's bytes are the file volumeFile(id) (README §6). */
export const OIB_DIR = process.env.OIB_DIR ?? '/tmp/oib';
export const volumeFile = (id: string) => join(OIB_DIR, 'cinder', 'volumes', `volume-${id}`);

/** Writes `len` bytes of `fill` at `offset` straight into a volume's file (a guest write, without a guest). */
export function writeVolume(id: string, offset: number, len: number, fill: number): void {
  const fd = openSync(volumeFile(id), 'r+');
  try {
    writeSync(fd, Buffer.alloc(len, fill), 0, len, offset);
  } finally {
    closeSync(fd);
  }
}

/** sha256 of a file, streamed (volume files and restored disks are 1 GiB). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Restores one disk of a snapshot into a sparse file under `dir` and returns its sha256 (the file is removed). */
export async function restoredDiskSha(repo: Repository, dir: string, snapshotId: string, key: string, size: number): Promise<string> {
  const out = join(dir, `restored-${createHash('sha256').update(key).digest('hex').slice(0, 16)}.raw`);
  try {
    const sink = await FileDiskSink.create(out, size);
    await restoreDisk({ repo, snapshotId, diskKey: key, sink });
    return await sha256File(out);
  } finally {
    rmSync(out, { force: true });
  }
}

/** sha256 of a disk of `size` bytes that holds `head`, then zeros (a root disk booted from a raw image of `head`). */
export function paddedSha256(head: Buffer, size: number): string {
  const h = createHash('sha256').update(head);
  const zeros = Buffer.alloc(8 << 20);
  for (let off = head.length; off < size; off += zeros.length) h.update(zeros.subarray(0, Math.min(zeros.length, size - off)));
  return h.digest('hex');
}

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
export async function pollFor<T>(fn: () => Promise<T | null | undefined | false>, ms: number, what: string, describe?: () => Promise<string>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${describe ? `; ${await describe().catch((e) => `(state unreadable: ${String(e)})`)}` : ''}`);
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
    const service = await this.projectByName('service');
    // Lifeboat's API-only temporaries (Cinder snapshots and volumes) live in the service
    // project, shared by every test file running at once: Cinder's default quota (10
    // snapshots) is too small for that. Unlimited, idempotently.
    await this.admin.call('volumev3', 'PUT', `/os-quota-sets/${service.id}`, { json: { quota_set: { snapshots: -1, volumes: -1, gigabytes: -1 } } });
    return this.user('lifeboat', service, ['admin', 'service']);
  }

  /** The usual start of a test: Lifeboat's service user, a project, its owner (admin + member there) and the owner's session. */
  async ownedProject(what: string): Promise<{ svc: OsUser; project: OsProject; owner: OsUser; ops: OpenStackSession }> {
    const svc = await this.serviceUser();
    const project = await this.project(what);
    const owner = await this.user('owner', project, ['admin', 'member']);
    return { svc, project, owner, ops: this.sessionOf(owner, project) };
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

  /** A raw Glance image holding `bytes` (admin-owned, public so every test project can boot it), with extra image `properties`. */
  async image(bytes: Buffer, properties: Record<string, string> = {}): Promise<string> {
    const img = await this.admin.call<{ id: string }>('image', 'POST', '/images', { json: { ...properties, name: this.name('image'), disk_format: 'raw', container_format: 'bare', visibility: 'public' } });
    const id = img.data.id;
    this.onCleanup(`image ${id}`, async () => void (await this.admin.call('image', 'DELETE', `/images/${id}`)));
    await this.admin.call('image', 'PUT', `/images/${id}/file`, { body: bytes, contentType: 'application/octet-stream', timeoutMs: 120_000 });
    return id;
  }

  async flavor(o: { ram?: number; disk?: number; what?: string } = {}): Promise<{ id: string; name: string }> {
    const f = await this.create<{ id: string; name: string }>(this.admin, 'compute', '/flavors', 'flavor', { name: this.name(o.what ?? 'flavor'), ram: o.ram ?? 128, vcpus: 1, disk: o.disk ?? 1 });
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
    // Sent again after a 5xx (Neutron on SQLite fails one now and then); a repeat that finds the rule made is a 409.
    await s.call('network', 'POST', '/security-group-rules', { json: { security_group_rule: { security_group_id: g.id, direction: 'ingress', protocol: 'tcp', port_range_min: 22, port_range_max: 22 } }, idempotent: true, expect: [201, 409] });
    return g;
  }

  /** POST /servers; registers the delete, waiting until the server is gone (so its ports go first). */
  async server(s: OpenStackSession, body: Record<string, unknown>): Promise<string> {
    const r = await s.call<{ server: { id: string } }>('compute', 'POST', '/servers', { json: { server: { name: this.name(String(body.name ?? 'server')), ...body, ...(body.name ? { name: this.name(String(body.name)) } : {}) } } });
    const id = r.data.server.id;
    this.onCleanup(`compute /servers/${id}`, () => this.deleteServerUntilGone(s, id));
    return id;
  }

  /**
   * DELETE /servers/{id}, then waits until it is gone. A delete the stack's SQLite failed
   * ("database is locked" in nova-compute or the conductor) is reverted by Nova: the server is
   * back with no task (ACTIVE, or ERROR) instead of `deleting`; the delete is then asked again.
   */
  private async deleteServerUntilGone(s: OpenStackSession, id: string): Promise<void> {
    await this.deleteServerRetrying(s, id);
    await pollFor(async () => {
      const g = await s.call<{ server: { status: string; 'OS-EXT-STS:task_state'?: string | null } }>('compute', 'GET', `/servers/${id}`, { expect: [200, 404] });
      if (g.status === 404) return true;
      if (!g.data.server['OS-EXT-STS:task_state'] && g.data.server.status !== 'DELETED') await this.deleteServerRetrying(s, id);
      return false;
    }, 300_000, `/servers/${id} to be deleted`);
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
        await this.deleteServerRetrying(s, id);
      }
    }
  }

  /** DELETE /servers/{id}, again after a 5xx (the stack's SQLite: "database is locked" under load). */
  private async deleteServerRetrying(s: OpenStackSession, id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await s.call('compute', 'DELETE', `/servers/${id}`, { expect: [204, 404] });
        return;
      } catch (e) {
        if (!(e instanceof OpenStackError && e.status >= 500) || attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, 2000 * attempt));
      }
    }
  }

  /** A server a restore made, with its volumes, is the test's to delete (server first, then its volumes). */
  restoredServer(serverId: string): void {
    this.onCleanup(`restored server ${serverId}`, () => this.deleteRestored(serverId));
  }

  /** Deletes a restored server, waits until it is gone, then deletes the volumes it had. */
  async deleteRestored(serverId: string): Promise<void> {
    const s = (await this.admin.call<{ server: { 'os-extended-volumes:volumes_attached': { id: string }[] } }>('compute', 'GET', `/servers/${serverId}`, { expect: [200, 404] })).data?.server;
    const vols = s ? s['os-extended-volumes:volumes_attached'].map((v) => v.id) : [];
    await this.deleteServerUntilGone(this.admin, serverId);
    for (const v of vols) {
      await pollFor(async () => ['available', 'error'].includes((await this.admin.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${v}`)).data.volume.status), 300_000, 'restored volume detached');
      await this.admin.call('volumev3', 'DELETE', `/volumes/${v}`);
    }
  }

  /**
   * A Cinder volume named `<run>-<what>`, available. Made like Lifeboat makes its own (a 5xx
   * from the stack's SQLite is retried after looking the name up: OpenStackApi.createVolume).
   */
  async volume(s: OpenStackSession, what: string, body: { size: number; volume_type?: string; metadata?: Record<string, string> } = { size: 1 }): Promise<string> {
    const v = await new OpenStackApi(s).createVolume({ ...body, name: this.name(what) });
    this.onCleanup(`volume ${v.id}`, async () => {
      await s.call('volumev3', 'DELETE', `/volumes/${v.id}`);
      await pollFor(async () => (await s.call('volumev3', 'GET', `/volumes/${v.id}`, { expect: [200, 404] })).status === 404, 300_000, `volume ${v.id} to be deleted`);
    });
    await this.volumeStatus(s, v.id, 'available');
    return v.id;
  }

  /** Waits until a volume reaches `want`. */
  async volumeStatus(s: OpenStackSession, id: string, want: string): Promise<void> {
    await pollFor(async () => (await s.call<{ volume: { status: string } }>('volumev3', 'GET', `/volumes/${id}`)).data.volume.status === want, 300_000, `volume ${id} ${want}`);
  }

  /** A server as the admin sees it (host, flavor, metadata). */
  async serverOf(id: string): Promise<Json> {
    return (await this.admin.call<{ server: Json }>('compute', 'GET', `/servers/${id}`)).data.server;
  }

  /** device → sha256 of the Cinder volume attached there (its file: README §6). */
  async volumeHashesByDevice(serverId: string): Promise<Map<string, string>> {
    const atts = (await this.admin.call<{ volumeAttachments: { device: string; volumeId: string }[] }>('compute', 'GET', `/servers/${serverId}/os-volume_attachments`)).data.volumeAttachments;
    return new Map(await Promise.all(atts.map(async (a) => [a.device, await sha256File(volumeFile(a.volumeId))] as const)));
  }

  /** The Neutron ports of a server: network and security groups. */
  async portsOf(serverId: string): Promise<{ id: string; network_id: string; security_groups: string[] }[]> {
    return (await this.admin.call<{ ports: { id: string; network_id: string; security_groups: string[] }[] }>('network', 'GET', `/ports?device_id=${serverId}`)).data.ports;
  }

  /** Glance images a restore tagged as its temporaries (none may outlive it). */
  async restoreImages(restoreId: string): Promise<string[]> {
    return (await this.admin.call<{ images: { id: string }[] }>('image', 'GET', `/images?tag=${imageTag({ restoreId })}`)).data.images.map((i) => i.id);
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
  config: Config;
  url: string;
  home: string;
  api(token: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; json: any; headers: Headers }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close(): Promise<void>;
}

/** The environment of a Lifeboat on the loopback stack: its home, a free port, the service user, a 5 s lease. */
export async function osLifeboatEnv(svc: OsUser, home: string): Promise<Record<string, string>> {
  return {
    LIFEBOAT_HOME: home,
    LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`,
    LIFEBOAT_PLATFORM: 'openstack',
    LIFEBOAT_KEYSTONE_URL: OS_AUTH_URL,
    LIFEBOAT_KEYSTONE_USER: svc.name,
    LIFEBOAT_KEYSTONE_PASSWORD: svc.password,
    LIFEBOAT_KEYSTONE_PROJECT: 'service',
    LIFEBOAT_OS_REGION: 'RegionOne',
    LIFEBOAT_JOB_LEASE: '5',
  };
}

export async function startOsLifeboat(svc: OsUser, env: Record<string, string> = {}, o: { log?: Logger } = {}): Promise<OsLifeboat> {
  const home = mkdtempSync(join(tmpdir(), 'lifeboat-os-'));
  const config = loadConfig(
    { ...(await osLifeboatEnv(svc, home)), ...env },
    home,
  );
  const lb = await startLifeboat(config, { role: 'all', demo: false, log: o.log ?? silentLogger });
  const url = `http://${lb.address}`;
  return {
    lb,
    config,
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

/**
 * The stack's libvirt compute host (`OIB_LIBVIRT=1`): Nova's `oib-kvm`, whose domains the
 * stack's own libvirtd runs (qemu:///system, root's socket).
 */
export const KVM_HOST = 'oib-kvm';
export const KVM_LIBVIRT_URI = process.env.LIFEBOAT_TEST_OS_LIBVIRT_URI ?? 'qemu:///system';

/** `virsh -c <the stack's libvirt> args…`; throws with stderr. */
export function kvmVirsh(...args: string[]): string {
  const r = spawnSync('virsh', ['-q', '-c', KVM_LIBVIRT_URI, ...args], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`virsh ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

/** A guest write without a guest OS (OpenStack-in-a-box README §6): `qemu-io` on disk `index` (virtio-disk<index>). */
export function guestWrite(serverId: string, diskIndex: number, pattern: number, offset: string, length: string): void {
  const out = kvmVirsh('qemu-monitor-command', serverId, '--hmp', `qemu-io -d /machine/peripheral/virtio-disk${diskIndex}/virtio-backend "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
  if (/error|fail/i.test(out)) throw new Error(`qemu-io write failed: ${out.trim()}`);
}

/** false when the stack and its libvirt host answer; else why the test skips (CI=true: fails instead). */
export async function kvmHostSkip(): Promise<string | false> {
  const os = await openstackSkip();
  if (os) return os;
  try {
    kvmVirsh('version');
    return false;
  } catch {
    if (process.env.CI === 'true') return false;
    return `the loopback OpenStack runs without its libvirt host ${KVM_HOST} (start it with OIB_LIBVIRT=1); with CI=true this test fails instead`;
  }
}

/**
 * Lifeboat as the Lifeboat worker of compute host oib-kvm: node name = the host, the stack's
 * libvirt, and a scratch directory QEMU's user (libvirt-qemu:kvm, mode 770) can create NBD
 * sockets and scratch files in (README §7.2). Returns the env and the directory to delete.
 */
export function kvmWorkerEnv(run: string): { env: Record<string, string>; scratchDir: string } {
  const scratchDir = mkdtempSync(join(tmpdir(), `${run}-scratch-`));
  const owner = (flag: string, who: string) => Number(spawnSync('id', [flag, who], { encoding: 'utf8' }).stdout.trim());
  chownSync(scratchDir, owner('-u', 'libvirt-qemu'), owner('-g', 'libvirt-qemu'));
  chmodSync(scratchDir, 0o770);
  return { env: { LIFEBOAT_NODE_NAME: KVM_HOST, LIFEBOAT_LIBVIRT_URI: KVM_LIBVIRT_URI, LIFEBOAT_LIBVIRT_SCRATCH_DIR: scratchDir }, scratchDir };
}

/** Takes a snapshot through the API and waits until it ends; returns the snapshot's detail and the wall time. */
export async function snapshotOf(os: OsLifeboat, token: string, projectId: string, workloadId: string, type: 'full' | 'incremental', ms = 600_000): Promise<{ snap: any; ms: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const started = Date.now();
  const r = await os.api(token, 'POST', `/v1/${projectId}/workloads/${workloadId}${type === 'full' ? '?full=1' : ''}`, { snapshot: { name: type, snapshot_type: type } });
  if (r.status !== 200) throw new Error(`snapshot refused: ${r.status} ${JSON.stringify(r.json)}`);
  const sid = r.json.snapshot.id as string;
  let last: Json = null;
  const describe = async () =>
    `last seen: ${JSON.stringify({ status: last?.status, progress_msg: last?.progress_msg, progress_percent: last?.progress_percent })}; ${await temporariesState(['lifeboat-tmp-'])}; ${await projectState(projectId)}`;
  const snap = await pollFor(async () => {
    last = (await os.api(token, 'GET', `/v1/${projectId}/snapshots/${sid}`)).json.snapshot;
    return ['available', 'error', 'cancelled'].includes(last.status) ? last : null;
  }, ms, `snapshot ${sid} done`, describe);
  return { snap, ms: Date.now() - started };
}

/** POSTs a restore of a snapshot (options as tempest sends them, `type: openstack` added). */
export async function startRestore(os: OsLifeboat, token: string, projectId: string, wid: string, sid: string, options: Record<string, unknown>): Promise<{ status: number; json: Json }> {
  return os.api(token, 'POST', `/v1/${projectId}/workloads/${wid}/snapshots/${sid}/restores`, { restore: { options: { type: 'openstack', ...options } } });
}

/**
 * Waits until a restore ends (available or error) and returns its detail. A restore that does
 * not end fails the test with its last progress and the project's servers and volumes as Nova
 * and Cinder see them (what CI prints is all there is to read afterwards).
 */
export async function restoreDone(os: OsLifeboat, token: () => Promise<string>, projectId: string, wid: string, sid: string, rid: string): Promise<Json> {
  let last: Json = null;
  const describe = async () => `last seen: ${JSON.stringify({ status: last?.status, progress_msg: last?.progress_msg, progress_percent: last?.progress_percent })}; ${await projectState(projectId)}`;
  return pollFor(async () => {
    last = (await os.api(await token(), 'GET', `/v1/${projectId}/workloads/${wid}/snapshots/${sid}/restores/${rid}`)).json.restore;
    return ['available', 'error'].includes(last.status) ? last : null;
  }, 1_200_000, `restore ${rid}`, describe);
}

/** The servers (status, task state, host) and volumes (status) of a project, read as admin: for a test's failure message. */
export async function projectState(projectId: string): Promise<string> {
  const admin = passwordSession('admin', OS_PASSWORD, 'admin');
  const servers = (await admin.call<{ servers: Json[] }>('compute', 'GET', `/servers/detail?all_tenants=1&project_id=${projectId}`)).data.servers;
  const volumes = (await admin.call<{ volumes: Json[] }>('volumev3', 'GET', `/volumes/detail?all_tenants=1&project_id=${projectId}`)).data.volumes;
  const s = servers.map((x) => `${x.name}=${x.status}/${x['OS-EXT-STS:task_state'] ?? '-'}@${x['OS-EXT-SRV-ATTR:host'] ?? '-'}`);
  const v = volumes.map((x) => `${x.name || x.id.slice(0, 8)}=${x.status}`);
  return `servers: ${s.join(', ') || 'none'}; volumes: ${v.join(', ') || 'none'}`;
}

/** The Cinder snapshots, volumes and Glance images whose names start with one of `prefixes`, with their states (admin view). */
export async function temporariesState(prefixes: string[]): Promise<string> {
  const admin = passwordSession('admin', OS_PASSWORD, 'admin');
  const ours = (name: string | null) => prefixes.some((p) => (name ?? '').startsWith(p));
  const snaps = (await admin.call<{ snapshots: Json[] }>('volumev3', 'GET', '/snapshots/detail?all_tenants=1')).data.snapshots;
  const vols = (await admin.call<{ volumes: Json[] }>('volumev3', 'GET', '/volumes/detail?all_tenants=1')).data.volumes;
  const imgs = (await admin.call<{ images: Json[] }>('image', 'GET', '/images?limit=1000')).data.images;
  const list = [
    ...snaps.filter((s) => ours(s.name)).map((s) => `snapshot ${s.name}=${s.status}`),
    ...vols.filter((v) => ours(v.name)).map((v) => `volume ${v.name}=${v.status}`),
    ...imgs.filter((i) => ours(i.name)).map((i) => `image ${i.name}=${i.status}`),
  ];
  return `temporaries: ${list.join(', ') || 'none'}`;
}
