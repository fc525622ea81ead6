import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { AppError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { silentLogger } from '../lib/logger.js';

/**
 * One libguestfs appliance, driven through `guestfish --ro` on a pipe: each command is sent
 * with a leading `-` (go on after an error) followed by `echo <marker>`; stdout and stderr share
 * one pipe (`2>&1`), so an error line ("libguestfs: error: …") arrives before the marker of its
 * command and is attributed to it. Drives are NBD exports added read-only before `run`.
 *
 * Why guestfish and not guestmount/virt-* per task: one launch (18–40 s under TCG) serves every
 * command of a mount or a search, whatever the number of drives and file systems.
 */

export interface ApplianceOptions {
  /** NBD unix sockets, in drive order (drive k is /dev/sd<letter k> inside the appliance). */
  drives: string[];
  /** Run the appliance under TCG even when /dev/kvm exists (broken nested KVM). */
  forceTcg: boolean;
  logger?: Logger;
  /**
   * Add a small writable scratch drive (the last drive) to hold the tree the file systems are
   * mounted under: FUSE export (mount-local) needs a root file system.
   */
  scratchRoot?: boolean;
  /** Aborting kills the appliance at once (also during the launch). */
  signal?: AbortSignal;
  /** Tag put into the process environment so reconcile can find orphans (LIFEBOAT_APPLIANCE=<tag>). */
  tag: string;
}

const SCRATCH_BYTES = 4 << 20;

/** Set once a KVM launch failed in this process: later launches use TCG at once. */
let kvmLaunchFailed = false;

export class ApplianceError extends AppError {
  constructor(message: string) {
    super('unavailable', message);
  }
}

/** The appliance's `run` (the launch itself) failed; what callers see is `cause`. */
class LaunchError extends Error {
  constructor(override readonly cause: ApplianceError) {
    super(cause.message);
  }
}

function unwrapLaunch(e: unknown): unknown {
  return e instanceof LaunchError ? e.cause : e;
}

/** guestfish quoting: every argument double-quoted, `\` and `"` escaped, no newlines. */
export function quoteArg(s: string): string {
  if (/[\n\r\0]/.test(s)) throw new ApplianceError('a path with a newline cannot be passed to the appliance');
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Drive k's device name inside the appliance: sda … sdz, sdaa … */
export function applianceDrive(k: number): string {
  let s = '';
  let n = k;
  do {
    s = String.fromCharCode(97 + (n % 26)) + s;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `/dev/sd${s}`;
}

export class Appliance {
  private buf = '';
  private waiter: { marker: string; resolve: (lines: string[]) => void; reject: (e: Error) => void } | null = null;
  private exitError: Error | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    private readonly log: Logger,
  ) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => this.onData(s));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitError = new ApplianceError(`the file system appliance ended (${signal ?? `exit ${code}`})`);
        this.waiter?.reject(this.exitError);
        this.waiter = null;
        resolve();
      });
    });
    child.stdin!.on('error', () => undefined);
  }

  /**
   * Starts guestfish, adds the drives and launches the appliance (the slow part). Unless TCG is
   * forced, the first launch tries KVM (libguestfs' `accel=kvm:tcg`); on hosts where /dev/kvm
   * opens but QEMU aborts with it (nested KVM refusing an MSR, seen here: "failed to set MSR
   * 0x10a"), the launch is retried once under TCG and every later launch of this process goes
   * straight to TCG, so an operator gets a slower search instead of an error.
   */
  static async launch(o: ApplianceOptions): Promise<Appliance> {
    const tcg = o.forceTcg || kvmLaunchFailed;
    try {
      return await Appliance.launchOnce(o, tcg);
    } catch (e) {
      if (tcg || !(e instanceof LaunchError) || o.signal?.aborted) throw unwrapLaunch(e);
      kvmLaunchFailed = true;
      (o.logger ?? silentLogger).warn({ err: e.message }, 'the file system appliance did not start with KVM; retrying under TCG (LIFEBOAT_APPLIANCE_TCG=1 skips the KVM attempt)');
      return Appliance.launchOnce(o, true).catch((e2: unknown) => Promise.reject(unwrapLaunch(e2)));
    }
  }

  private static async launchOnce(o: ApplianceOptions, tcg: boolean): Promise<Appliance> {
    const env: NodeJS.ProcessEnv = { ...process.env, LIBGUESTFS_BACKEND: 'direct', LIFEBOAT_APPLIANCE: o.tag };
    if (tcg) env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
    const child = spawn('sh', ['-c', 'exec guestfish --ro 2>&1'], { env, stdio: ['pipe', 'pipe', 'ignore'], detached: false });
    const a = new Appliance(child, o.logger ?? silentLogger);
    const kill = () => child.kill('SIGKILL');
    o.signal?.addEventListener('abort', kill);
    void a.exited.then(() => o.signal?.removeEventListener('abort', kill));
    try {
      o.signal?.throwIfAborted();
      for (const sock of o.drives) await a.run(`add "" protocol:nbd ${quoteArg(`server:unix:${sock}`)} format:raw readonly:true`);
      if (o.scratchRoot) await a.run(`add-drive-scratch ${SCRATCH_BYTES}`);
      await a.run('run').catch((e: unknown) => Promise.reject(e instanceof ApplianceError ? new LaunchError(e) : e));
      return a;
    } catch (e) {
      await a.close();
      throw e;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private onData(s: string): void {
    this.buf += s;
    const w = this.waiter;
    if (!w) {
      if (this.buf.length > 1 << 20) this.buf = this.buf.slice(-4096);
      return;
    }
    const at = this.buf.indexOf(`${w.marker}\n`);
    if (at < 0) return;
    const out = this.buf.slice(0, at);
    this.buf = this.buf.slice(at + w.marker.length + 1);
    this.waiter = null;
    w.resolve(out.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1));
  }

  /**
   * Runs one guestfish command line; resolves with its output lines, or fails with the
   * appliance's error message (libguestfs text: device names, never host paths of ours).
   */
  run(line: string): Promise<string[]> {
    const next = this.queue.then(() => this.runNow(line));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private runNow(line: string): Promise<string[]> {
    if (this.exitError) return Promise.reject(this.exitError);
    const marker = `@@lifeboat-${randomBytes(8).toString('hex')}@@`;
    return new Promise<string[]>((resolve, reject) => {
      this.waiter = {
        marker,
        reject,
        resolve: (lines) => {
          const errors = lines.filter((l) => /^(\*stdin\*:\d+: )?(libguestfs: error:|guestfish: )/.test(l));
          if (errors.length === 0) return resolve(lines);
          const msg = errors[0]!.replace(/^\*stdin\*:\d+: /, '').replace(/^libguestfs: error: /, '');
          reject(new ApplianceError(msg.slice(0, 300)));
        },
      };
      this.child.stdin!.write(`-${line}\necho ${marker}\n`);
    });
  }

  /** Runs `line` without waiting for its end (mount-local-run blocks until unmounted). */
  send(line: string): void {
    this.child.stdin!.write(`-${line}\n`);
  }

  /** Ends guestfish (the appliance shuts down with it); SIGKILL after `graceMs`. Idempotent. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.exitError) return;
    this.child.stdin!.end('exit\n');
    const t = setTimeout(() => {
      this.log.warn({ pid: this.child.pid }, 'file system appliance did not exit; killing it');
      this.child.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}
