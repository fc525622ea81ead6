import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { freePort, sha256File, waitFor } from './harness.js';
import { runLifeboat, startProcess, testPgSchema, writeRandomDisk, writeTestIdentity, type LifeboatProcess } from './process.js';

/**
 * kill -9 of real worker processes mid-snapshot and mid-restore (reliability.md A1/A4), SIGTERM
 * mid-snapshot (A6), and two
 * API processes racing on one PostgreSQL (D15). Each test starts `lifeboat serve` processes.
 */
const hex = () => randomBytes(16).toString('hex');

interface Env {
  home: string;
  env: Record<string, string>;
  projectId: string;
  vmId: string;
  disk: string;
  port: number;
}

async function makeHome(diskMiB: number, extra: Record<string, string> = {}): Promise<Env> {
  const home = mkdtempSync(join(tmpdir(), 'lifeboat-crash-'));
  const projectId = hex();
  writeTestIdentity(home, projectId);
  const disk = join(home, 'vm-vda.raw');
  writeRandomDisk(disk, diskMiB);
  const vmId = randomUUID();
  writeFileSync(
    join(home, 'inventory.json'),
    JSON.stringify({ instances: [{ id: vmId, name: 'vm', project_id: projectId, flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 }, disks: [{ device: '/dev/vda', path: disk, format: 'raw' }] }] }),
  );
  const port = await freePort();
  return { home, projectId, vmId, disk, port, env: { LIFEBOAT_HOME: home, LIFEBOAT_LISTEN: `127.0.0.1:${port}`, LIFEBOAT_JOB_LEASE: '2', LIFEBOAT_NODE_NAME: 'crash', ...extra } };
}

/**
 * A temp home for one describe block (made before its tests, removed after them) and every
 * process its tests start there, stopped after them (a no-op for one already killed).
 */
function homeForBlock(diskMiB: number, extra: Record<string, string> = {}) {
  const block = {
    e: undefined as unknown as Env,
    procs: [] as LifeboatProcess[],
    /** `lifeboat serve` (or `args`) in this home, ready to serve. */
    async start(env: Record<string, string> = {}, args?: string[]): Promise<LifeboatProcess> {
      const p = await startProcess({ ...block.e.env, ...env }, args);
      block.procs.push(p);
      return p;
    },
  };
  before(async () => {
    block.e = await makeHome(diskMiB, extra);
  });
  after(async () => {
    for (const p of block.procs) await p.stop();
    rmSync(block.e.home, { recursive: true, force: true });
  });
  return block;
}

/** A signed-in client of one process (user `u`, a member; `a` is an admin): `url` is the address from its readiness line. */
async function client(proc: LifeboatProcess, projectId: string, user: 'u' | 'a' = 'u') {
  const url = proc.url;
  if (!url) throw new Error('this process serves no API');
  const r = await fetch(`${url}/identity/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password: 'pw' } } }, scope: { project: { id: projectId } } } }),
  });
  const token = r.headers.get('x-subject-token')!;
  return async (method: string, path: string, body?: unknown, base = url) => {
    const res = await fetch(`${base}/v1/${projectId}${path}`, {
      method,
      headers: { 'x-auth-token': token, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  };
}

type Api = Awaited<ReturnType<typeof client>>;

/** A token of user `u` (a member) for `projectId` from the process's embedded identity. */
async function tokenOf(proc: LifeboatProcess, projectId: string): Promise<string> {
  const r = await fetch(`${proc.url}/identity/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: 'u', domain: { id: 'default' }, password: 'pw' } } }, scope: { project: { id: projectId } } } }),
  });
  return r.headers.get('x-subject-token')!;
}

/** A workload of the one VM, available. */
async function workloadOf(api: Api, vmId: string): Promise<string> {
  const w = await api('POST', '/workloads', { workload: { instances: [{ 'instance-id': vmId }] } });
  const wid = w.json.workload.id as string;
  await waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available');
  return wid;
}

/** Starts a full snapshot and returns its id once data is moving. */
async function snapshotUploading(api: Api, wid: string): Promise<string> {
  const s = await api('POST', `/workloads/${wid}?full=1`);
  const sid = s.json.snapshot.id as string;
  await waitFor(async () => (await api('GET', `/snapshots/${sid}`)).json.snapshot.status === 'uploading', 10_000, 'uploading');
  return sid;
}

/** Polls `path` until its `key` object reaches one of `states`; returns that object. */
function until(api: Api, path: string, key: 'snapshot' | 'restore', states: string[], ms = 30_000) {
  return waitFor(async () => {
    const x = (await api('GET', path)).json[key];
    return states.includes(x.status) ? x : null;
  }, ms, `${path} ${states.join('|')}`);
}

describe('kill -9 of the worker', () => {
  const block = homeForBlock(768);

  test('mid-snapshot: error "Snapshot did not finish successfully", workload available, verify passes, next snapshot succeeds; then mid-restore', async () => {
    const e = block.e;
    let proc = await block.start();
    let api = await client(proc, e.projectId);
    const wid = await workloadOf(api, e.vmId);
    const sid = await snapshotUploading(api, wid);
    await proc.kill9();

    proc = await block.start();
    api = await client(proc, e.projectId);
    const dead = await until(api, `/snapshots/${sid}`, 'snapshot', ['error'], 15_000);
    assert.equal(dead.error_msg, 'Snapshot did not finish successfully');
    assert.equal(dead.progress_percent, 100);
    assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.status, 'available');
    const verify = runLifeboat(e.env, ['repo', 'verify']);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /^OK: every referenced chunk is present and intact$/m);

    const hash = sha256File(e.disk);
    const s2 = await api('POST', `/workloads/${wid}`);
    assert.equal(s2.status, 200);
    const done = await until(api, `/snapshots/${s2.json.snapshot.id}`, 'snapshot', ['available', 'error']);
    assert.equal(done.status, 'available', done.error_msg);
    assert.equal(done.snapshot_type, 'full', 'the crashed snapshot was not a base');
    await waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available');

    // mid-restore
    const body = { restore: { options: { type: 'openstack', restore_type: 'oneclick', oneclickrestore: true, openstack: {} } } };
    const r = await api('POST', `/workloads/${wid}/snapshots/${done.id}/restores`, body);
    assert.equal(r.status, 202);
    const rid = r.json.restore.id;
    await waitFor(async () => (await api('GET', `/restores/${rid}`)).json.restore.status === 'executing', 10_000, 'restore executing');
    // Killed once the new instance's directory exists: the leftover the reconciler must remove.
    const restoreDir = join(e.home, 'instances');
    const partialDirs = () => (existsSync(restoreDir) ? readdirSync(restoreDir).filter((n) => !n.startsWith('.')) : []);
    await waitFor(async () => partialDirs().length > 0, 10_000, 'restored instance directory created');
    await proc.kill9();
    assert.equal(partialDirs().length, 1, 'the killed restore left its partial instance directory');
    proc = await block.start();
    api = await client(proc, e.projectId);
    const lost = await until(api, `/restores/${rid}`, 'restore', ['error'], 15_000);
    assert.equal(lost.error_msg, 'Restore did not finish successfully');
    // ... and the reconciler removes it (and its marker).
    await waitFor(async () => !existsSync(restoreDir) || readdirSync(restoreDir).length === 0, 10_000, 'partial restored instance removed');
    assert.equal((await api('GET', `/snapshots/${done.id}`)).json.snapshot.status, 'available');
    assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.status, 'available');
    // a new restore succeeds, byte-exact
    const r2 = await api('POST', `/workloads/${wid}/snapshots/${done.id}/restores`, body);
    const ok = await until(api, `/restores/${r2.json.restore.id}`, 'restore', ['available', 'error']);
    assert.equal(ok.status, 'available', ok.error_msg);
    const inv = JSON.parse(readFileSync(join(e.home, 'inventory.json'), 'utf8')).instances;
    const restored = inv.find((i: { id: string }) => i.id === ok.instances[0].id);
    assert.equal(sha256File(restored.disks[0].path), hash);
  });
});

describe('cancel mid-operation', () => {
  const block = homeForBlock(768);

  test('a running snapshot ends cancelled with no manifest; a running restore ends cancelled', async () => {
    const e = block.e;
    const proc = await block.start();
    const api = await client(proc, e.projectId);
    const wid = await workloadOf(api, e.vmId);
    const sid = await snapshotUploading(api, wid);
    const c = await api('GET', `/snapshots/${sid}/cancel`);
    assert.equal(c.status, 200);
    const end = await until(api, `/snapshots/${sid}`, 'snapshot', ['cancelled', 'available', 'error'], 15_000);
    assert.equal(end.status, 'cancelled');
    assert.equal(end.metadata.find((m: { key: string }) => m.key === 'cancel_requested').value, '1');
    assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.status, 'available');
    const manifests = runLifeboat(e.env, ['repo', 'verify', '--json']);
    assert.equal(JSON.parse(manifests.stdout).snapshots, 0, 'no manifest was written');
    // cancel again: a no-op on a final state; the cancelled snapshot can be deleted
    assert.equal((await api('GET', `/snapshots/${sid}/cancel`)).status, 200);
    assert.equal((await api('DELETE', `/snapshots/${sid}`)).status, 200);
    await waitFor(async () => (await api('GET', `/snapshots/${sid}`)).status === 404);
    await waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available');

    const s2 = await api('POST', `/workloads/${wid}`);
    const ok = await until(api, `/snapshots/${s2.json.snapshot.id}`, 'snapshot', ['available', 'error']);
    assert.equal(ok.status, 'available', ok.error_msg);
    await waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available');
    const r = await api('POST', `/snapshots/${ok.id}`, { restore: { options: { type: 'openstack', restore_type: 'oneclick', openstack: {} } } });
    assert.equal(r.status, 202);
    const rid = r.json.restore.id;
    await waitFor(async () => (await api('GET', `/restores/${rid}`)).json.restore.status === 'executing', 10_000, 'restore executing');
    assert.equal((await api('GET', `/restores/${rid}/cancel`)).status, 200);
    const rend = await until(api, `/restores/${rid}`, 'restore', ['cancelled', 'available', 'error'], 15_000);
    assert.equal(rend.status, 'cancelled');
    assert.equal((await api('GET', `/snapshots/${ok.id}`)).json.snapshot.status, 'available');
    assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.status, 'available');
  });
});

describe('two API processes on one PostgreSQL', { skip: process.env.LIFEBOAT_TEST_PG ? false : 'LIFEBOAT_TEST_PG is not set' }, () => {
  const pgSchema = testPgSchema();
  before(() => pgSchema.create());
  // Registered before the schema's after hook, so the processes stop before their schema goes.
  const block = homeForBlock(4, { LIFEBOAT_DB: pgSchema.url });
  after(() => pgSchema.drop());

  test('concurrent take-snapshot requests: exactly one 200, one 400, one snapshot row', async () => {
    const e = block.e;
    const first = await block.start({}, ['serve', '--role', 'api']);
    const second = await block.start({ LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}` }, ['serve', '--role', 'api']);
    const worker = await block.start({ LIFEBOAT_LISTEN: '127.0.0.1:0' }, ['serve', '--role', 'worker']);
    const api = await client(first, e.projectId);
    const admin = await client(second, e.projectId, 'a');
    const w = await api('POST', '/workloads', { workload: { instances: [{ 'instance-id': e.vmId }] } });
    const wid = w.json.workload.id;
    await waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available');
    await worker.stop(); // nothing may finish the snapshot while we count
    for (let round = 0; round < 5; round++) {
      const [a, b] = await Promise.all([api('POST', `/workloads/${wid}`, undefined, first.url!), api('POST', `/workloads/${wid}`, undefined, second.url!)]);
      const codes = [a.status, b.status].sort();
      assert.deepEqual(codes, [200, 400], `round ${round}`);
      const loser = a.status === 400 ? a : b;
      assert.equal(loser.json.badRequest.message, "Invalid state: Workload must be in the 'available' state to take a snapshot");
      const list = (await api('GET', `/snapshots?workload_id=${wid}`)).json.snapshots;
      assert.equal(list.length, round + 1);
      // Put the workload back for the next round. Its snapshot job stays queued (no worker), so
      // the lock holds against a member (400 naming the job); an admin's unlock cancels the job.
      const sid = (a.status === 200 ? a : b).json.snapshot.id as string;
      const refused = await api('POST', `/workloads/${wid}/unlock`);
      assert.equal(refused.status, 400);
      assert.match(refused.json.badRequest.message, new RegExp(`^Invalid state: Workload cannot be unlocked while job [0-9a-f-]{36} \\(snapshot\\.take of snapshot ${sid}\\) is queued`));
      assert.equal((await admin('POST', `/workloads/${wid}/unlock`)).status, 202);
      assert.equal((await api('GET', `/snapshots/${sid}`)).json.snapshot.status, 'cancelled');
    }
  });
});

describe('SIGTERM (graceful shutdown)', () => {
  const block = homeForBlock(768);

  /** Sends SIGTERM; resolves with the exit code and how long the exit took. */
  function sigterm(proc: LifeboatProcess): Promise<{ code: number | null; took: number }> {
    const t0 = Date.now();
    const exited = new Promise<{ code: number | null; took: number }>((resolve) => proc.child.once('exit', (code) => resolve({ code, took: Date.now() - t0 })));
    proc.child.kill('SIGTERM');
    return exited;
  }

  /** The job row of a snapshot, read from the service's own SQLite store. */
  function jobOf(home: string, snapshotId: string): { status: string; error: string | null } {
    const db = new Database(join(home, 'lifeboat.db'), { readonly: true });
    try {
      return db.prepare("SELECT status, error FROM jobs WHERE resource_id = ? AND kind = 'snapshot.take'").get(snapshotId) as { status: string; error: string | null };
    } finally {
      db.close();
    }
  }

  test('grace 0, mid-snapshot: the process exits 0 at once; snapshot error "Snapshot did not finish successfully", job failed "service restarted", workload available, no manifest', async () => {
    const e = block.e;
    let proc = await block.start({ LIFEBOAT_SHUTDOWN_GRACE: '0' });
    let api = await client(proc, e.projectId);
    const wid = await workloadOf(api, e.vmId);
    const sid = await snapshotUploading(api, wid);
    const { code, took } = await sigterm(proc);
    assert.equal(code, 0, proc.output());
    assert.ok(took < 20_000, `exit took ${took} ms`);
    assert.deepEqual(jobOf(e.home, sid), { status: 'failed', error: 'service restarted' });

    // The stopping worker settled the snapshot itself before the store closed: the restarted
    // service finds it final at once (no lease has to run out first).
    proc = await block.start();
    api = await client(proc, e.projectId);
    const s = (await api('GET', `/snapshots/${sid}`)).json.snapshot;
    assert.equal(s.status, 'error');
    assert.equal(s.error_msg, 'Snapshot did not finish successfully');
    assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.status, 'available');
    await proc.stop();
    const verify = runLifeboat(e.env, ['repo', 'verify', '--json']);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.equal(JSON.parse(verify.stdout).snapshots, 0, 'no manifest for the interrupted snapshot');
  });

  test('with a grace, mid-snapshot: requests get 503 serviceUnavailable with Retry-After and Connection: close while the running snapshot finishes; it ends available and the process exits 0', async () => {
    const e = block.e;
    let proc = await block.start({ LIFEBOAT_SHUTDOWN_GRACE: '120' });
    let api = await client(proc, e.projectId);
    // The VM's workload from the test before (a VM belongs to one workload).
    const wid = (await api('GET', '/workloads')).json.workloads[0].id as string;
    const sid = await snapshotUploading(api, wid);
    const exit = sigterm(proc);
    const drained = await waitFor(async () => {
      const r = await fetch(`${proc.url}/v1/${e.projectId}/snapshots/${sid}`).catch(() => null);
      return r && r.status === 503 ? r : null;
    }, 10_000, '503 while draining');
    assert.equal(drained.headers.get('retry-after'), '5');
    assert.equal(drained.headers.get('connection'), 'close');
    assert.deepEqual(await drained.json(), { serviceUnavailable: { code: 503, message: 'The service is shutting down; retry the request.' } });
    const { code } = await exit;
    assert.equal(code, 0, proc.output());
    assert.deepEqual(jobOf(e.home, sid), { status: 'done', error: null });

    proc = await block.start();
    api = await client(proc, e.projectId);
    assert.equal((await api('GET', `/snapshots/${sid}`)).json.snapshot.status, 'available');
    assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.status, 'available');
  });

  test('a request in flight when SIGTERM comes (its body still arriving) completes with Connection: close; the process exits 0 after it', async () => {
    const e = block.e;
    for (const p of block.procs) await p.stop(); // the test before leaves its last process serving
    let proc = await block.start({ LIFEBOAT_SHUTDOWN_GRACE: '30' });
    let api = await client(proc, e.projectId);
    const wid = (await api('GET', '/workloads')).json.workloads[0].id as string;
    const token = await tokenOf(proc, e.projectId);
    const body = JSON.stringify({ workload: { description: 'sent across a SIGTERM' } });
    const { port, hostname } = new URL(proc.url!);
    const sock = connect(Number(port), hostname);
    await once(sock, 'connect');
    const answer = new Promise<string>((resolve, reject) => {
      let text = '';
      sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
      sock.on('close', () => resolve(text));
      sock.on('error', reject);
    });
    // Expect: 100-continue: the server answers "100 Continue" as it hands the request to its handler,
    // i.e. once the request has passed the drain check (made when the headers are in, not the body).
    sock.write(`PUT /v1/${e.projectId}/workloads/${wid} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nX-Auth-Token: ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`);
    await waitFor(async () => sock.bytesRead > 0 || null, 10_000, '100 Continue');
    const exit = sigterm(proc);
    // Shutting down: a new request is answered 503 or, once the listener has closed, refused.
    await waitFor(async () => {
      const r = await fetch(`${proc.url}/v1/${e.projectId}/workloads`, { headers: { 'x-auth-token': token } }).catch(() => null);
      return r === null || r.status === 503 || null;
    }, 10_000, 'shutdown begun');
    sock.end(body);
    const text = await answer;
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /, text);
    assert.match(text, /\r\nconnection: close\r\n/i, text);
    assert.equal((await exit).code, 0, proc.output());

    proc = await block.start();
    api = await client(proc, e.projectId);
    assert.equal((await api('GET', `/workloads/${wid}`)).json.workload.description, 'sent across a SIGTERM');
  });
});
