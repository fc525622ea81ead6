import { execFile } from 'node:child_process';
import { UnavailableError } from '../../lib/errors.js';

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

/**
 * `virsh` as a subprocess (libvirt README §4: backup control is low-rate, a native binding
 * would need node-gyp and libvirt-dev). Arguments are always an array (no shell), every call
 * has a timeout, and failures are LibvirtErrors naming the operation, never a path.
 */
export class Virsh {
  constructor(
    readonly uri: string,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {}

  /** Runs `virsh -q -c <uri> <args…>` and returns stdout. */
  run(args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const op = args[0] ?? 'virsh';
    return new Promise((resolve, reject) => {
      execFile(
        'virsh',
        ['-q', '-c', this.uri, ...args],
        { timeout: opts.timeoutMs ?? this.timeoutMs, maxBuffer: MAX_OUTPUT, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
          if (e.code === 'ENOENT') return reject(new LibvirtError(op, 'virsh is not installed'));
          if (e.killed || e.signal === 'SIGTERM') return reject(new LibvirtError(op, `no answer within ${Math.round((opts.timeoutMs ?? this.timeoutMs) / 1000)} s`));
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
