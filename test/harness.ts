import { closeSync, fstatSync, mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { loadConfig } from '../src/config/config.js';
import { startLifeboat, type Lifeboat, type Role } from '../src/app/app.js';
import { silentLogger, type Logger } from '../src/lib/logger.js';
import { freePort, waitFor } from '../src/lib/testing.js';
import assert from 'node:assert/strict';

/**
 * A real Lifeboat on a free loopback port with a temp home: identity file with two tenant
 * projects and an admin, an inventory of small VMs with real disk files. Tests talk to it
 * over HTTP like any client.
 */
export interface TestUser {
  name: string;
  password: string;
  projectId: string;
  projectName: string;
}

export interface TestVm {
  id: string;
  name: string;
  projectId: string;
  disks: { device: string; path: string }[];
}

export interface Harness {
  lb: Lifeboat;
  url: string;
  home: string;
  alice: TestUser; // member of project alpha
  carol: TestUser; // another member of project alpha
  bob: TestUser; // member of project beta
  admin: TestUser; // admin role on project admin
  vms: TestVm[]; // alpha: vm-a1 (2 disks), vm-a2 (2 disks), vm-a3; beta: vm-b1
  /** A token for `u`, issued once and cached; `fresh` issues a new one (e.g. to time its TTL). */
  token(u: TestUser, fresh?: boolean): Promise<string>;
  api(u: TestUser, method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse>;
  /**
   * Stops the service, runs `between` (e.g. deletes its state), starts a new one on the same home,
   * port and env, in `role` (default: the harness's; `api` leaves every job queued).
   */
  restart(between?: () => void, role?: Role): Promise<void>;
  close(): Promise<void>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const hex = () => randomBytes(16).toString('hex');

export function makeDisk(path: string, sizeBytes: number, seed: number): void {
  const buf = Buffer.alloc(sizeBytes);
  // A recognisable pattern with holes: every other 64 KiB block holds data.
  for (let off = 0; off < sizeBytes; off += 128 * 1024) {
    const end = Math.min(off + 64 * 1024, sizeBytes);
    for (let i = off; i < end; i += 4) buf.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  }
  writeFileSync(path, buf);
}

type Project = { id: string; name: string };

/** The identity file: projects alpha, beta and admin; users alice, bob, carol and admin. */
function writeIdentity(home: string): { alpha: Project; beta: Project; adminP: Project } {
  const alpha = { id: hex(), name: 'alpha' };
  const beta = { id: hex(), name: 'beta' };
  const adminP = { id: hex(), name: 'admin' };
  const users = [
    { id: hex(), name: 'alice', password: 'alice-pw', roles: [{ project: 'alpha', role: 'member' }] },
    { id: hex(), name: 'bob', password: 'bob-pw', roles: [{ project: 'beta', role: 'member' }] },
    { id: hex(), name: 'carol', password: 'carol-pw', roles: [{ project: 'alpha', role: 'member' }] },
    { id: hex(), name: 'admin', password: 'admin-pw', roles: [{ project: 'admin', role: 'admin' }] },
  ];
  writeFileSync(join(home, 'identity.json'), JSON.stringify({ projects: [alpha, beta, adminP], users }), { mode: 0o600 });
  return { alpha, beta, adminP };
}

/** The test VMs with their disk files under `home`/disks: vm-a1, vm-a2, vm-a3 in alpha, vm-b1 in beta. */
function makeVms(home: string, alpha: Project, beta: Project, diskBytes: number | undefined): TestVm[] {
  const diskDir = join(home, 'disks');
  mkdirSync(diskDir);
  const vms: TestVm[] = [];
  const mk = (name: string, projectId: string, ndisks: number) => {
    const id = randomUUID();
    const disks = [];
    for (let d = 0; d < ndisks; d++) {
      const device = `/dev/vd${String.fromCharCode(97 + d)}`;
      const path = join(diskDir, `${name}-vd${String.fromCharCode(97 + d)}.raw`);
      makeDisk(path, diskBytes ?? 1024 * 1024 + 4096 * (vms.length + d), vms.length * 10 + d);
      disks.push({ device, path });
    }
    vms.push({ id, name, projectId, disks });
  };
  mk('vm-a1', alpha.id, 2);
  mk('vm-a2', alpha.id, 2);
  mk('vm-a3', alpha.id, 1);
  mk('vm-b1', beta.id, 1);
  return vms;
}

/** The inventory file describing `vms` as ACTIVE instances on the private network. */
function writeInventory(home: string, vms: TestVm[]): void {
  const inventory = {
    instances: vms.map((v, i) => ({
      id: v.id,
      name: v.name,
      project_id: v.projectId,
      status: 'ACTIVE',
      availability_zone: 'nova',
      flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
      security_groups: ['default'],
      nics: [
        {
          mac_address: `fa:16:3e:00:00:0${i + 1}`,
          ip_address: `10.0.0.${i + 5}`,
          network: {
            id: '5fb7027d-a2ac-4a21-9ee1-438c281d2b26',
            name: 'private',
            subnet: { id: 'b7b54304-aa82-4d50-91e6-66445ab56db4', name: 'private-subnet', cidr: '10.0.0.0/24', ip_version: 4, gateway_ip: '10.0.0.1' },
          },
        },
      ],
      disks: v.disks.map((d, j) => ({ device: d.device, path: d.path, format: 'raw', ...(j === 0 ? { volume_id: randomUUID(), volume_type: 'local' } : {}) })),
      metadata: {},
    })),
  };
  writeFileSync(join(home, 'inventory.json'), JSON.stringify(inventory, null, 2));
}

/** Harness.token against the service at `url`, caching the first token of each user in `tokens`. */
function tokenIssuer(url: string, tokens: Map<string, string>): Harness['token'] {
  return async (u: TestUser, fresh = false): Promise<string> => {
    const cached = tokens.get(u.name);
    if (cached && !fresh) return cached;
    const r = await fetch(`${url}/identity/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: u.name, domain: { name: 'Default' }, password: u.password } } },
          scope: { project: { id: u.projectId } },
        },
      }),
    });
    if (r.status !== 201) throw new Error(`auth failed for ${u.name}: ${r.status} ${await r.text()}`);
    const t = r.headers.get('x-subject-token')!;
    if (!cached) tokens.set(u.name, t);
    return t;
  };
}

/** Harness.api against the service at `url`: paths not under /v1/ or /identity are the user's project's. */
function apiClient(url: string, token: Harness['token']): Harness['api'] {
  return async (u: TestUser, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> => {
    const t = await token(u);
    const full = path.startsWith('/v1/') || path.startsWith('/identity') || path === '/' ? path : `/v1/${u.projectId}${path}`;
    const h: Record<string, string> = { 'x-auth-token': t, accept: 'application/json', ...headers };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
    }
    const r = await fetch(`${url}${full}`, { method, headers: h, body: payload });
    const text = await r.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: r.status, headers: r.headers, text, json };
  };
}

export async function startHarness(opts: { env?: Record<string, string>; role?: Role; diskBytes?: number; log?: Logger } = {}): Promise<Harness> {
  const home = mkdtempSync(join(tmpdir(), 'lifeboat-test-'));
  const { alpha, beta, adminP } = writeIdentity(home);
  const vms = makeVms(home, alpha, beta, opts.diskBytes);
  writeInventory(home, vms);

  const env = { LIFEBOAT_HOME: home, LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`, LIFEBOAT_NODE_NAME: 'TVM1', LIFEBOAT_JOB_LEASE: '3', ...opts.env };
  const config = loadConfig(env, home);
  const lb = await startLifeboat(config, { role: opts.role ?? 'all', demo: false, log: opts.log ?? silentLogger });
  const url = `http://${lb.address}`;
  const mkUser = (name: string, password: string, p: { id: string; name: string }): TestUser => ({ name, password, projectId: p.id, projectName: p.name });
  const alice = mkUser('alice', 'alice-pw', alpha);
  const bob = mkUser('bob', 'bob-pw', beta);
  const carol = mkUser('carol', 'carol-pw', alpha);
  const admin = mkUser('admin', 'admin-pw', adminP);
  const tokens = new Map<string, string>();
  const token = tokenIssuer(url, tokens);
  const api = apiClient(url, token);

  const h: Harness = {
    lb,
    url,
    home,
    alice,
    carol,
    bob,
    admin,
    vms,
    token,
    api,
    async restart(between, role) {
      await h.lb.close();
      between?.();
      tokens.clear();
      h.lb = await startLifeboat(loadConfig(env, home), { role: role ?? opts.role ?? 'all', demo: false, log: opts.log ?? silentLogger });
    },
    async close() {
      await h.lb.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
  return h;
}

/** Polls a condition (the one waitFor of every test, src/lib/testing.ts). */
export { waitFor };

/** A free loopback port (so the configured public URL and the catalog name the real port). */
export { freePort };

/** SHA-256 of a file's bytes. */
export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Overwrites `count` scattered 4 KiB blocks of a disk image with fresh random bytes. */
export function mutateDisk(path: string, count: number): void {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    for (let i = 0; i < count; i++) {
      const off = Math.floor(Math.random() * Math.max(1, size - 4096));
      writeSync(fd, randomBytes(4096), 0, 4096, off);
    }
  } finally {
    closeSync(fd);
  }
}

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * Takes a snapshot of workload `wid` as `u` through the API and waits until it has ended and
 * the workload is unlocked again. Asserts it ended `available` (the error message otherwise);
 * returns the snapshot detail.
 */
export async function takeSnapshotAndWait(h: Harness, u: TestUser, wid: string, full: boolean, timeoutMs = 60_000): Promise<Json> {
  const r = await h.api(u, 'POST', `/workloads/${wid}${full ? '?full=1' : ''}`, { snapshot: { name: 's', snapshot_type: full ? 'full' : 'incremental' } });
  assert.equal(r.status, 200, r.text);
  const s = await snapshotEnded(h, u, r.json.snapshot.id as string, timeoutMs);
  assert.equal(s.status, 'available', s.error_msg);
  await waitFor(async () => (await h.api(u, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
  return s;
}

/** Waits until snapshot `sid` has ended (available or error; not asserted) and returns its detail. */
export async function snapshotEnded(h: Harness, u: TestUser, sid: string, timeoutMs = 60_000): Promise<Json> {
  return waitFor(async () => {
    const x = (await h.api(u, 'GET', `/snapshots/${sid}`)).json.snapshot;
    return ['available', 'error'].includes(x.status) ? x : null;
  }, timeoutMs, 'snapshot ended');
}

/**
 * Selective restore of VM `vmId` from snapshot `sid`; asserts it ended available and returns
 * the SHA-256 of the restored instance's first disk (the local platform's inventory names it).
 */
export async function restoredDiskSha(h: Harness, u: TestUser, wid: string, sid: string, vmId: string, timeoutMs = 60_000): Promise<string> {
  const done = await selectiveRestoreAndWait(h, u, wid, sid, vmId, timeoutMs);
  assert.equal(done.status, 'available', done.error_msg);
  const inventory = JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances as { id: string; disks: { path: string }[] }[];
  return sha256File(inventory.find((i) => i.id === done.instances[0].id)!.disks[0]!.path);
}

/**
 * Selective restore of VM `vmId` from snapshot `sid` into a new instance named after the
 * snapshot; waits until the restore has ended (available or error) and the snapshot and the
 * workload are available again. Returns the restore record (not asserted: callers test errors).
 */
export async function selectiveRestoreAndWait(h: Harness, u: TestUser, wid: string, sid: string, vmId: string, timeoutMs = 60_000): Promise<Json> {
  const r = await h.api(u, 'POST', `/workloads/${wid}/snapshots/${sid}/restores`, {
    restore: { options: { type: 'openstack', oneclickrestore: false, restore_type: 'selective', openstack: { instances: [{ id: vmId, include: true, name: `r-${sid.slice(0, 8)}`, vdisks: [] }] } } },
  });
  assert.equal(r.status, 202, r.text);
  const rid = r.json.restore.id as string;
  const done = await waitFor(async () => {
    const x = (await h.api(u, 'GET', `/workloads/${wid}/snapshots/${sid}/restores/${rid}`)).json.restore;
    return ['available', 'error'].includes(x.status) ? x : null;
  }, timeoutMs, 'restore done');
  await waitFor(async () => (await h.api(u, 'GET', `/snapshots/${sid}`)).json.snapshot.status === 'available', 20_000, 'snapshot available after restore');
  await waitFor(async () => (await h.api(u, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload unlocked');
  return done;
}

/** Creates a workload of `vms` as `u` through the API and waits until it is available; returns its id. */
export async function createWorkloadAndWait(h: Harness, u: TestUser, vms: string[], name = 'w'): Promise<string> {
  const r = await h.api(u, 'POST', '/workloads', { workload: { name, instances: vms.map((id) => ({ 'instance-id': id })), jobschedule: { enabled: false } } });
  assert.equal(r.status, 202, r.text);
  const id = r.json.workload.id as string;
  await waitFor(async () => (await h.api(u, 'GET', `/workloads/${id}`)).json.workload.status === 'available', 20_000, 'workload available');
  return id;
}
