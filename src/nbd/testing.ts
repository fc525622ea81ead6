import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { delimiter, join } from 'node:path';

/**
 * Test helpers: real NBD servers (qemu-nbd, nbdkit) started as children in a private
 * directory, waited on by condition (socket accepts), stopped by PID. Not used by production code.
 */

/** Debian package of each tool the tests run. */
const PACKAGE_OF: Record<string, string> = {
  'qemu-nbd': 'qemu-utils',
  'qemu-img': 'qemu-utils',
  'qemu-io': 'qemu-utils',
  nbdkit: 'nbdkit',
  libvirtd: 'libvirt-daemon-system',
  virtlogd: 'libvirt-daemon-system',
  virsh: 'libvirt-clients',
  'qemu-system-x86_64': 'qemu-system-x86',
  nbdinfo: 'libnbd-bin',
  guestfish: 'libguestfs-tools',
};

export function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * `skip` option for tests that need `tools`: false when all are installed; otherwise a message
 * naming the packages to install. In CI (CI=true) it is always false, so a missing tool fails.
 */
export function skipUnlessInstalled(...tools: string[]): string | false {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length === 0 || process.env.CI === 'true') return false;
  const pkgs = [...new Set(missing.map((t) => PACKAGE_OF[t] ?? t))].join(' ');
  return `needs ${missing.join(', ')}: apt-get install ${pkgs}`;
}

/** Runs a tool to completion; throws with its stderr when it fails. */
export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd} failed to start: ${r.error.message}${PACKAGE_OF[cmd] ? ` (apt-get install ${PACKAGE_OF[cmd]})` : ''}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

export interface ServerProcess {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  /** Sends `signal` (default SIGTERM) to the PID and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `cmd args` in the foreground and waits until `ready()` is true (polled every 20 ms,
 * at most `timeoutMs`). Fails early, with the server's stderr, if it exits first.
 */
export async function startServer(
  cmd: string,
  args: string[],
  ready: () => Promise<boolean>,
  timeoutMs = 15_000,
  as: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {},
): Promise<ServerProcess> {
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...as });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  let gone = false;
  const exited = new Promise<void>((res) => {
    child.once('exit', () => ((gone = true), res()));
    child.once('error', (e) => ((gone = true), (stderr += `\n${e.message}`), res()));
  });
  const server: ServerProcess = {
    pid: child.pid ?? -1,
    exited,
    async stop(signal = 'SIGTERM') {
      if (!gone && child.pid) process.kill(child.pid, signal);
      await exited;
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`${cmd} exited before it was ready${PACKAGE_OF[cmd] ? ` (is ${PACKAGE_OF[cmd]} installed?)` : ''}: ${stderr}`);
    if (await ready()) return server;
    if (Date.now() > deadline) {
      await server.stop('SIGKILL');
      throw new Error(`${cmd} not ready after ${timeoutMs} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** True when something accepts connections on the unix socket `path` (or TCP `port`). */
export function accepts(target: string | number): Promise<boolean> {
  if (typeof target === 'string' && !existsSync(target)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = typeof target === 'string' ? createConnection({ path: target }) : createConnection({ host: '127.0.0.1', port: target });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** A TCP port that was free a moment ago (the OS picks it). */
export { freePort } from '../lib/testing.js';
