import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/**
 * Each launch gets its own directory for libguestfs' temporary files (LIBGUESTFS_TMPDIR: the
 * appliance overlays and scratch drive) and its socket (XDG_RUNTIME_DIR), removed when guestfish
 * exits. libguestfs removes its own only on a clean exit; a guestfish killed (an abort, or a
 * service killed and reconciled) left them in /tmp for good. The name carries a hash of the tag,
 * so reconcile removes what appliances of a killed service left (removeApplianceDirs).
 */
function applianceDirPrefix(tag: string): string {
  return `lifeboat-guestfs-${createHash('sha256').update(tag).digest('hex').slice(0, 12)}-`;
}

/** The per-launch directories of appliances with this tag (paths). */
export function applianceDirs(tag: string): string[] {
  const prefix = applianceDirPrefix(tag);
  try {
    return readdirSync(tmpdir())
      .filter((n) => n.startsWith(prefix))
      .map((n) => join(tmpdir(), n));
  } catch {
    return [];
  }
}

/** Removes every per-launch directory of appliances with this tag (none may be running). */
export function removeApplianceDirs(tag: string): void {
  for (const dir of applianceDirs(tag)) rmSync(dir, { recursive: true, force: true });
}

/**
 * The socket directories (`/tmp/libguestfsXXXXXX`, holding guestfsd.sock) of a live guestfish
 * process, found through the unix sockets it holds (/proc/<pid>/fd → socket inode →
 * /proc/<pid>/net/unix). libguestfs puts them in /tmp whatever XDG_RUNTIME_DIR says when it
 * runs as root, and removes them only on a clean exit: whoever kills a guestfish looks them up
 * first and removes them once it is gone. Empty when the process is gone or not readable.
 */
export function libguestfsSocketDirs(pid: number): string[] {
  try {
    const inodes = new Set<string>();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(safeReadlink(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    }
    const dirs = new Set<string>();
    for (const line of readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const path = f[7];
      if (!path || !inodes.has(f[6]!)) continue;
      const m = /^(\/tmp\/libguestfs[A-Za-z0-9]{6})\/[^/]+$/.exec(path);
      if (m) dirs.add(m[1]!);
    }
    return [...dirs];
  } catch {
    return [];
  }
}

function safeReadlink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

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
    const own = mkdtempSync(join(tmpdir(), applianceDirPrefix(o.tag)));
    const env: NodeJS.ProcessEnv = { ...process.env, LIBGUESTFS_BACKEND: 'direct', LIFEBOAT_APPLIANCE: o.tag, LIBGUESTFS_TMPDIR: own, XDG_RUNTIME_DIR: own };
    if (tcg) env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
    const child = spawn('sh', ['-c', 'exec guestfish --ro 2>&1'], { env, stdio: ['pipe', 'pipe', 'ignore'], detached: false });
    const a = new Appliance(child, o.logger ?? silentLogger);
    void a.exited.then(() => {
      for (const dir of [own, ...a.socketDirs]) rmSync(dir, { recursive: true, force: true });
    });
    const kill = () => a.kill();
    o.signal?.addEventListener('abort', kill);
    void a.exited.then(() => o.signal?.removeEventListener('abort', kill));
    try {
      o.signal?.throwIfAborted();
      for (const sock of o.drives) await a.run(`add "" protocol:nbd ${quoteArg(`server:unix:${sock}`)} format:raw readonly:true`);
      if (o.scratchRoot) await a.run(`add-drive-scratch ${SCRATCH_BYTES}`);
      await a.run('run').catch((e: unknown) => Promise.reject(e instanceof ApplianceError ? new LaunchError(e) : e));
      a.noteSocketDirs();
      return a;
    } catch (e) {
      await a.close();
      throw e;
    }
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** libguestfs' socket directories of this guestfish, removed when it exits (libguestfsSocketDirs). */
  readonly socketDirs = new Set<string>();

  /** Records the socket directories while guestfish lives: after the launch, and before any kill. */
  noteSocketDirs(): void {
    if (this.child.pid === undefined || this.exitError) return;
    for (const dir of libguestfsSocketDirs(this.child.pid)) this.socketDirs.add(dir);
  }

  /** SIGKILL (abort, or no exit within close's grace); what libguestfs would have removed goes on exit. */
  kill(): void {
    this.noteSocketDirs();
    this.child.kill('SIGKILL');
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
      this.kill();
    }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}
