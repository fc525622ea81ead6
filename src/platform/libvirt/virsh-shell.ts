import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * One long-lived interactive `virsh -q -c <uri>` fed commands on stdin. A spawned `virsh` per
 * call costs a process and a new libvirt connection: ~70 ms each here under load, ~15 calls a
 * backup; through a shell a command costs ~2 ms (measured on this machine), which is what
 * makes an incremental of a running domain fit in 0.2 s.
 *
 * Protocol: after the command, `echo <mark>` (stdout) and `echo --err <mark>` (stderr, printed
 * as `error: <mark>`); the command is done when both marks arrived. Without a TTY virsh still
 * echoes each input line after its prompt (`virsh # <line>`), so the command's output is what
 * lies between the echo of our line and the prompt before `echo <mark>`. It failed when its
 * stderr has an `error:` line. Commands run one at a time per shell (the caller serialises).
 */
export class VirshShell {
  private readonly child: ChildProcess;
  private out = '';
  private err = '';
  private wake: (() => void) | null = null;
  private seq = 0;
  /** Set once the process is unusable (exited, failed to start, timed out). */
  dead: Error | null = null;

  constructor(uri: string) {
    // COLUMNS: readline wraps the echo of a long input line at the screen width (80 without a TTY).
    this.child = spawn('virsh', ['-q', '-c', uri], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', COLUMNS: '1000000' } });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => this.feed('out', d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => this.feed('err', d));
    const die = (e: Error) => {
      this.dead ??= e;
      this.wake?.();
    };
    this.child.once('error', die);
    this.child.once('exit', (code, signal) => die(new Error(`virsh exited (${signal ?? code})`)));
    this.child.stdin!.on('error', () => undefined); // EPIPE after an exit: reported through `dead`
    // Never keeps the service alive; stdin closes when the service exits, and virsh with it.
    this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as Socket | null)?.unref?.();
  }

  private feed(which: 'out' | 'err', d: string): void {
    if (which === 'out') this.out += d;
    else this.err += d;
    this.wake?.();
  }

  /** Runs one command; `null` args never reach here (see `shellSafe`). Rejects when the shell died or timed out. */
  async exec(args: readonly string[], timeoutMs: number): Promise<{ stdout: string; stderr: string; failed: boolean }> {
    if (this.dead) throw this.dead;
    const mark = `lifeboat-mark-${++this.seq}-${process.pid}`;
    const line = args.map((a) => `'${a}'`).join(' ');
    this.out = '';
    this.err = '';
    this.child.stdin!.write(`${line}\necho ${mark}\necho --err ${mark}\n`);
    const outEnd = `echo ${mark}\n${mark}`;
    const errEnd = `error: ${mark}\n`;
    const deadline = Date.now() + timeoutMs;
    while (!this.dead && !(this.out.includes(outEnd) && this.err.includes(errEnd))) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.kill(new Error('timeout'));
        break;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
    if (this.dead) throw this.dead;
    const echoed = this.out.indexOf(`${line}\n`);
    if (echoed < 0) {
      // Not the output this protocol expects: never guess where the command's output starts.
      this.kill(new Error('unexpected virsh shell output'));
      throw this.dead!;
    }
    const start = echoed + line.length + 1;
    const end = this.out.lastIndexOf('virsh # ', this.out.indexOf(outEnd));
    const stdout = this.out.slice(start, Math.max(start, end));
    const stderr = this.err.slice(0, this.err.indexOf(errEnd));
    return { stdout, stderr, failed: /^error:/m.test(stderr) };
  }

  kill(reason: Error): void {
    this.dead ??= reason;
    this.child.kill('SIGKILL');
  }

  /**
   * Ends the shell: stdin closed (virsh quits at end of input, closing its connection
   * cleanly), SIGKILL if it has not exited within `graceMs`. Resolves once the process is gone.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.dead ??= new Error('closed');
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Arguments the shell passes through unchanged: no quote, backslash or line break (others use a spawned virsh). */
export function shellSafe(args: readonly string[]): boolean {
  return args.every((a) => !/['"\\\n\r]/.test(a));
}
