import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openBackend } from '../src/backend/open.js';
import { loadConfig } from '../src/config/config.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import { Repository } from '../src/repository/repository.js';
import { waitFor } from '../src/lib/testing.js';

/** Real `lifeboat` processes for crash and multi-process tests. */
export const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

export interface LifeboatProcess {
  child: ChildProcess;
  /** `http://host:port` the API listens on, from the readiness line (null for `--role worker`). */
  url: string | null;
  /** Everything it wrote so far, stdout and stderr interleaved. */
  output(): string;
  stdout(): string;
  stderr(): string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The one line `lifeboat serve` writes to stdout once it serves (src/main.ts): after the job
 * runner reconciled and started and the HTTP server listens. Anchored at the start of a line:
 * JSON log lines (which may well contain "running", e.g. a reconcile warning "… not
 * re-running") never match.
 */
export const READY_LINE = /^lifeboat (?:api|worker|all) running(?: on (http:\/\/\S+))? \(store \w+, node [^)]*\)$/;

/**
 * Starts `lifeboat <args>` and resolves once its stdout carries the readiness line; rejects if
 * the process exits first or `timeoutMs` passes (generous: a loaded machine starts slowly).
 */
export async function startProcess(env: Record<string, string>, args: string[] = ['serve'], timeoutMs = 60_000): Promise<LifeboatProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, LIFEBOAT_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  let out = '';
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: string) => {
    out += d;
    stdout += d;
  });
  child.stderr!.on('data', (d: string) => {
    out += d;
    stderr += d;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string | null>((resolve, reject) => {
    // Not ready in time: the child is killed (no caller holds it to stop it), then the error.
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lifeboat printed no readiness line within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    onStdoutLines(child, (line) => {
      const m = READY_LINE.exec(line);
      if (!m) return false;
      clearTimeout(t);
      resolve(m[1] ?? null);
      return true;
    });
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      reject(new Error(`lifeboat exited (${signal ?? code}) before it was ready:\n${out}`));
    });
  });
  return {
    child,
    url,
    output: () => out,
    stdout: () => stdout,
    stderr: () => stderr,
    async kill9() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Calls `onLine` with each whole line of the child's stdout (a chunk may end mid-line) until it
 * returns true. The stream keeps flowing afterwards: the child never blocks on a full pipe.
 */
function onStdoutLines(child: ChildProcess, onLine: (line: string) => boolean): void {
  let partial = '';
  const onData = (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (onLine(line)) {
        child.stdout!.off('data', onData);
        return;
      }
    }
  };
  child.stdout!.on('data', onData);
}

/** Runs a lifeboat command to completion (e.g. `repo verify`). */
export function runLifeboat(env: Record<string, string>, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A disk of incompressible data, so a backup or restore takes long enough to interrupt. */
export function writeRandomDisk(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < mib; i++) writeSync(fd, randomBytes(2 ** 20), 0, 2 ** 20, i * 2 ** 20);
  } finally {
    closeSync(fd);
  }
}

/**
 * The identity file of the process tests: one project `p` (id `projectId`) with a member `u`
 * and an admin `a`, both with password `pw`.
 */
export function writeTestIdentity(home: string, projectId: string): void {
  const id = () => randomBytes(16).toString('hex');
  writeFileSync(
    join(home, 'identity.json'),
    JSON.stringify({
      projects: [{ id: projectId, name: 'p' }],
      users: [
        { id: id(), name: 'u', password: 'pw', roles: [{ project: 'p', role: 'member' }] },
        { id: id(), name: 'a', password: 'pw', roles: [{ project: 'p', role: 'admin' }] },
      ],
    }),
    { mode: 0o600 },
  );
}

export type ProcessApi = (method: string, path: string, body?: unknown) => Promise<{ status: number; json: Record<string, any> }>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A client of the API at `url` signed in as `user` of writeTestIdentity's project. */
export async function signedInClient(url: string, projectId: string, user: 'u' | 'a'): Promise<ProcessApi> {
  const r = await fetch(`${url}/identity/v3/auth/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password: 'pw' } } }, scope: { project: { id: projectId } } } }),
  });
  const token = r.headers.get('x-subject-token')!;
  return async (method, path, body) => {
    const res = await fetch(`${url}/v1/${projectId}${path}`, { method, headers: { 'x-auth-token': token, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
}

/**
 * Gives a libvirt domain to the project (`lifeboat libvirt-assign` with the process's `env`),
 * creates a workload of it through `api` and waits until it is available; returns its id.
 */
export async function protectDomain(env: Record<string, string>, uuid: string, projectId: string, api: ProcessApi): Promise<string> {
  const assign = runLifeboat(env, ['libvirt-assign', uuid, projectId]);
  if (assign.status !== 0) throw new Error(`libvirt-assign failed: ${assign.stderr}`);
  const w = await api('POST', '/workloads', { workload: { name: 'w', instances: [{ 'instance-id': uuid }] } });
  if (w.status !== 202) throw new Error(`workload: ${w.status} ${JSON.stringify(w.json)}`);
  const wid = w.json.workload.id as string;
  await waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available', 30_000, 'workload available');
  return wid;
}

/** One disk of a snapshot read back from the repository the process's `env` names (what a restore writes). */
export async function snapshotDiskOf(env: Record<string, string>, snapshotId: string, instanceId: string, device: string, size: number): Promise<Buffer> {
  const config = loadConfig({ ...process.env, ...env });
  const repo = await Repository.open(await openBackend(config.target, { create: false, connections: config.targetConnections }));
  const sink = new MemDiskSink(size);
  await restoreDisk({ repo, snapshotId, diskKey: diskKey(instanceId, device), sink });
  return sink.data;
}

/**
 * A schema of its own on LIFEBOAT_TEST_PG for the processes of one describe block: `url` points
 * them at it (search_path), `create` and `drop` run as hooks. Register `drop` after the hooks
 * that stop the processes: after-hooks run in order, and the schema must outlive them.
 */
export function testPgSchema(): { url: string; create(): Promise<void>; drop(): Promise<void> } {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const url = new URL(process.env.LIFEBOAT_TEST_PG ?? 'postgres://unset');
  url.searchParams.set('options', `-c search_path=${schema}`);
  const adminSql = async (text: string) => {
    const c = new pg.Client({ connectionString: process.env.LIFEBOAT_TEST_PG });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };
  return { url: url.toString(), create: () => adminSql(`CREATE SCHEMA ${schema}`), drop: () => adminSql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) };
}
