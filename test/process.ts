import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** Real `lifeboat` processes for crash and multi-process tests. */
export const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));

export interface LifeboatProcess {
  child: ChildProcess;
  output(): string;
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function startProcess(env: Record<string, string>, args: string[] = ['serve']): Promise<LifeboatProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, LIFEBOAT_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`lifeboat did not start:\n${out}`)), 15_000);
    const check = () => {
      if (/running/.test(out)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`lifeboat exited with ${code}:\n${out}`));
    });
  });
  return {
    child,
    output: () => out,
    async kill9() {
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
