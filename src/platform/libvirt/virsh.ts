import { execFile } from 'node:child_process';
import { UnavailableError } from '../../lib/errors.js';
import { shellSafe, VirshShell } from './virsh-shell.js';

/** Default per-call timeout: libvirt calls are control-plane (backup-begin answers in ~0.1 s). */
const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_OUTPUT = 16 * 1024 * 1024;

/** A virsh call that libvirt refused; `detail` is virsh's message with paths removed. */
export class LibvirtError extends UnavailableError {
  constructor(
    readonly op: string,
    readonly detail: string,
  ) {
    super(`libvirt ${op} failed: ${detail}`);
  }
}

/**
 * Removes what must never reach a user-facing message: absolute paths (image files, sockets,
 * the temp XML files virsh names) and the connection URI, which may carry a socket path.
 */
export function scrubLibvirtMessage(text: string): string {
  const oneLine = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');
  return (oneLine || 'no message')
    .replace(/\w+(\+\w+)?:\/\/[^\s'"]*/g, '<uri>')
    .replace(/\/[^\s'"]+/g, '<path>')
    .slice(0, 500);
}

/** At most this many interactive virsh shells per connection (a slow command blocks only its own). */
const MAX_SHELLS = 4;

/**
 * `virsh` on one connection (libvirt README §4: a native binding would need node-gyp and
 * libvirt-dev). Commands go through a small pool of long-lived interactive shells
 * (virsh-shell.ts: ~2 ms a command instead of a process and a connection each); arguments a
 * shell could misparse (quotes, backslashes, line breaks) and `LIFEBOAT_VIRSH_SHELL=0` use a
 * spawned `virsh` instead. Arguments are never interpreted by a system shell, every call has a
 * timeout, and failures are LibvirtErrors naming the operation, never a path.
 */
export class Virsh {
  private readonly idle: VirshShell[] = [];
  private shells = 0;
  private readonly waiters: ((s: VirshShell | null) => void)[] = [];
  private readonly useShell = process.env.LIFEBOAT_VIRSH_SHELL !== '0';
  /** Every shell started and not yet gone (idle or running a command), for close(). */
  private readonly live = new Set<VirshShell>();
  private closed = false;

  constructor(
    readonly uri: string,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {}

  /** Runs `virsh -q -c <uri> <args…>` and returns stdout. */
  async run(args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const op = args[0] ?? 'virsh';
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const shell = this.useShell && !this.closed && shellSafe(args) ? await this.acquire() : null;
    if (!shell) return this.spawned(args, timeoutMs);
    try {
      const r = await shell.exec(args, timeoutMs);
      // The shell's connection broke (libvirtd stopped or restarted): its error would be about
      // the command ("failed to get domain"), not the connection. Drop the shell; this call is
      // repeated by a spawned virsh, which reconnects or reports libvirt as unreachable.
      if (r.failed && /disconnected|failed to connect|no (valid )?connection|end of file/i.test(r.stderr)) {
        shell.kill(new Error('connection lost'));
        return await this.spawned(args, timeoutMs);
      }
      if (r.failed) throw new LibvirtError(op, scrubLibvirtMessage(r.stderr));
      return r.stdout;
    } catch (e) {
      if (e instanceof LibvirtError) throw e;
      if (shell.dead?.message === 'timeout') throw new LibvirtError(op, `no answer within ${Math.round(timeoutMs / 1000)} s`);
      return this.spawned(args, timeoutMs); // the shell died under us: this call goes the slow way
    } finally {
      this.release(shell);
    }
  }

  private async acquire(): Promise<VirshShell | null> {
    const free = this.idle.pop();
    if (free) return free;
    if (this.shells < MAX_SHELLS) {
      const shell = this.startShell();
      // The rest of the pool starts now, idle: a later burst of parallel calls (a backup's
      // first questions) would otherwise wait for a new virsh each, a process and a libvirt
      // connection (30 ms quiet, hundreds loaded), longer than the calls themselves.
      while (this.shells < MAX_SHELLS) this.idle.push(this.startShell());
      return shell;
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private startShell(): VirshShell {
    this.shells++;
    const shell = new VirshShell(this.uri);
    this.live.add(shell);
    return shell;
  }

  private release(shell: VirshShell): void {
    if (this.closed && !shell.dead) void shell.close();
    if (shell.dead) {
      this.live.delete(shell);
      this.shells--;
      this.waiters.shift()?.(null); // that caller spawns; the next one may open a new shell
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter(shell);
    else this.idle.push(shell);
  }

  /**
   * Ends every shell (the service stops: no virsh process may outlive it). Idle shells end
   * now; a shell running a command ends when the command is done. Later calls still work,
   * through a spawned virsh each.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.idle.length = 0;
    await Promise.all([...this.live].map((s) => s.close()));
    this.live.clear();
  }

  private spawned(args: readonly string[], timeoutMs: number): Promise<string> {
    const op = args[0] ?? 'virsh';
    return new Promise((resolve, reject) => {
      execFile(
        'virsh',
        ['-q', '-c', this.uri, ...args],
        { timeout: timeoutMs, maxBuffer: MAX_OUTPUT, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
          if (e.code === 'ENOENT') return reject(new LibvirtError(op, 'virsh is not installed'));
          if (e.killed || e.signal === 'SIGTERM') return reject(new LibvirtError(op, `no answer within ${Math.round(timeoutMs / 1000)} s`));
          reject(new LibvirtError(op, scrubLibvirtMessage(stderr || e.message)));
        },
      );
    });
  }
}

/** True when libvirt said the domain does not exist (as opposed to libvirt being unreachable). */
export function isNoDomain(e: unknown): boolean {
  return e instanceof LibvirtError && /failed to get domain|domain not found|no domain with matching/i.test(e.detail);
}
