/**
 * A real Lifeboat service for the benchmark: `node dist/src/main.js serve` as a child process
 * with its own temp LIFEBOAT_HOME, a free loopback port, an identity file (one project, one
 * member) and an inventory with one VM whose single disk is a raw image file. Talks to it over
 * HTTP like any client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { now, sleep, trackChild } from './lib.js';

export interface ServiceHome {
  home: string;
  targetDir: string;
  dbUrl: string;
  projectId: string;
  user: { name: string; password: string };
  vm: { id: string; name: string; disk: string };
}

/** Writes identity.json and inventory.json into `home`; the VM has one disk at `diskPath`. */
export function prepareHome(home: string, diskPath: string): ServiceHome {
  const projectId = randomBytes(16).toString('hex');
  const user = { name: 'bench', password: 'bench-pw' };
  writeFileSync(
    join(home, 'identity.json'),
    JSON.stringify({
      projects: [{ id: projectId, name: 'bench' }],
      users: [{ id: randomBytes(16).toString('hex'), name: user.name, password: user.password, roles: [{ project: 'bench', role: 'member' }] }],
    }),
    { mode: 0o600 },
  );
  const vm = { id: randomUUID(), name: 'bench-vm', disk: resolve(diskPath) };
  const inventory = {
    instances: [
      {
        id: vm.id,
        name: vm.name,
        project_id: projectId,
        status: 'ACTIVE',
        availability_zone: 'nova',
        flavor: { vcpus: 2, ram: 2048, disk: 2, ephemeral: 0 },
        security_groups: ['default'],
        nics: [],
        disks: [{ device: '/dev/vda', path: vm.disk, format: 'raw', volume_id: randomUUID(), volume_type: 'local' }],
        metadata: {},
      },
    ],
  };
  writeFileSync(join(home, 'inventory.json'), JSON.stringify(inventory, null, 2));
  const targetDir = join(home, 'target');
  mkdirSync(targetDir, { recursive: true });
  return { home, targetDir, dbUrl: `sqlite:${join(home, 'lifeboat.db')}`, projectId, user, vm };
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => res(port));
    });
  });
}

export interface ApiResponse {
  status: number;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export class Service {
  private constructor(
    readonly h: ServiceHome,
    readonly child: ChildProcess,
    readonly url: string,
    readonly logPath: string,
    private readonly exited: Promise<void>,
  ) {}
  token = '';

  get pid(): number {
    return this.child.pid as number;
  }

  /** Spawns the service on a free port and waits until it answers HTTP and a token is issued. */
  static async start(h: ServiceHome, repoRoot: string, env: Record<string, string> = {}, nodeArgs: readonly string[] = []): Promise<Service> {
    const port = await freePort();
    const logPath = join(h.home, 'service.log');
    const log = createWriteStream(logPath, { flags: 'a' });
    const child = trackChild(
      spawn(process.execPath, [...nodeArgs, join(repoRoot, 'dist/src/main.js'), 'serve'], {
        cwd: h.home,
        env: {
          ...process.env,
          LIFEBOAT_HOME: h.home,
          LIFEBOAT_LISTEN: `127.0.0.1:${port}`,
          LIFEBOAT_DB: h.dbUrl,
          LIFEBOAT_TARGET: `file://${h.targetDir}`,
          LIFEBOAT_INVENTORY: join(h.home, 'inventory.json'),
          LIFEBOAT_IDENTITY: join(h.home, 'identity.json'),
          LIFEBOAT_NODE_NAME: 'bench-node',
          LIFEBOAT_LOG_LEVEL: 'warn',
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const svc = new Service(h, child, `http://127.0.0.1:${port}`, logPath, exited);
    const deadline = now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`lifeboat serve exited during start (${child.exitCode ?? child.signalCode}):\n${svc.logTail()}`);
      try {
        await fetch(`${svc.url}/`);
        break;
      } catch {
        if (now() > deadline) {
          await svc.stop();
          throw new Error(`lifeboat serve did not answer within 30 s:\n${svc.logTail()}`);
        }
        await sleep(50);
      }
    }
    await svc.login();
    return svc;
  }

  logTail(n = 3000): string {
    try {
      return readFileSync(this.logPath, 'utf8').slice(-n);
    } catch {
      return '(no log)';
    }
  }

  private async login(): Promise<void> {
    const r = await fetch(`${this.url}/identity/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: this.h.user.name, domain: { name: 'Default' }, password: this.h.user.password } } },
          scope: { project: { id: this.h.projectId } },
        },
      }),
    });
    if (r.status !== 201) throw new Error(`auth failed: ${r.status} ${await r.text()}`);
    this.token = r.headers.get('x-subject-token') ?? '';
  }

  /** `path` relative to /v1/{project} unless it starts with '/v1/'. */
  async api(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const full = path.startsWith('/v1/') ? path : `/v1/${this.h.projectId}${path}`;
    const headers: Record<string, string> = { 'x-auth-token': this.token, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(`${this.url}${full}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: r.status, text, json };
  }

  async expect(method: string, path: string, body: unknown, ok: number[]): Promise<ApiResponse> {
    const r = await this.api(method, path, body);
    if (!ok.includes(r.status)) throw new Error(`${method} ${path} -> ${r.status}: ${r.text.slice(0, 500)}`);
    return r;
  }

  /** Polls `path` every `everyMs` until `pick(json)` is one of `done`; returns the last body. */
  async pollStatus(path: string, pick: (j: any) => string, done: string[], timeoutMs: number, everyMs = 20): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const deadline = now() + timeoutMs;
    for (;;) {
      const r = await this.expect('GET', path, undefined, [200]);
      const st = pick(r.json);
      if (done.includes(st)) return r.json;
      if (this.child.exitCode !== null) throw new Error(`service died while polling ${path}:\n${this.logTail()}`);
      if (now() > deadline) throw new Error(`timed out after ${timeoutMs} ms polling ${path} (last status ${st})`);
      await sleep(everyMs);
    }
  }

  /** Creates the workload of the home's VM (`extra` fields, e.g. encryption) and waits until it is available; returns its id. */
  async createWorkload(extra: Record<string, unknown> = {}): Promise<string> {
    const r = await this.expect('POST', '/workloads', { workload: { name: 'bench', instances: [{ 'instance-id': this.h.vm.id }], ...extra } }, [200, 202]);
    const wid = r.json.workload.id as string;
    const w = await this.pollStatus(`/workloads/${wid}`, (j) => j.workload.status, ['available', 'error'], 60_000);
    if (w.workload.status !== 'available') throw new Error(`workload ${wid} went to ${w.workload.status}: ${JSON.stringify(w.workload.error_msg ?? '')}`);
    return wid;
  }

  /** SIGTERM, then SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}
