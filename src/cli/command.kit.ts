import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { CliError, EXIT_CODES, EXIT_UNEXPECTED, formatCliError, usageError } from './exit-codes.js';
import { authSettings, openSession, type AuthFlags, type FetchFn, type WlmSession } from './session.client.js';
import { OUTPUT_FORMATS, type OutputFormat, type OutputOptions } from './table.format.js';
import { waitForOperation, type ProgressStream } from './progress.view.js';

/**
 * What every client command is built from: the process seam (ClientIo, injectable for tests),
 * the command context (positional args, options, lazy authenticated session, output options),
 * and the ONE place that turns a thrown error into `ERROR: ...` on stderr plus an exit code
 * (exit-codes.ts). Commands never call process.exit themselves.
 */
export interface ClientIo {
  stdout: { write(s: string): unknown };
  /** Progress and errors; a TTY here gets the progress bar. */
  stderr: ProgressStream;
  env: Record<string, string | undefined>;
  fetch: FetchFn;
  readFile(path: string): string;
  /** Records the exit code of a finished command (process: process.exitCode). */
  setExitCode(code: number): void;
  /** Commander usage errors and --help end here; must not return (process: process.exit). */
  usageExit(err: CommanderError): never;
  sleep?: (ms: number) => Promise<void>;
}

/** The real process: stdio, environment, global fetch, process.exitCode. */
export function processIo(): ClientIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    fetch: globalThis.fetch.bind(globalThis),
    readFile: (p) => readFileSync(p, 'utf8'),
    setExitCode: (c) => {
      process.exitCode = c;
    },
    usageExit: (err) => process.exit(usageExitCode(err)),
  };
}

/** --help/--version exit 0; every other commander error is a usage error. */
export function usageExitCode(err: CommanderError): number {
  return err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version' ? 0 : EXIT_CODES.usage;
}

export interface Ctx {
  io: ClientIo;
  /** Positional arguments, in declaration order. */
  args: string[];
  /** This command's options (commander attribute names). */
  opts: Record<string, unknown>;
  /** Authenticates on first use (flags over OS_* environment). */
  session(): Promise<WlmSession>;
  /** -f / -c of this command. */
  output(): OutputOptions;
  print(text: string): void;
}

/** The global flags, added once to the root program (they override OS_* variables). */
export function addGlobalOptions(program: Command): void {
  program
    .option('--os-auth-url <url>', 'Keystone URL (env OS_AUTH_URL)')
    .option('--os-username <name>', 'user name (env OS_USERNAME)')
    .option('--os-password <password>', 'password (env OS_PASSWORD)')
    .option('--os-project-name <name>', 'project name (env OS_PROJECT_NAME, OS_TENANT_NAME)')
    .option('--os-project-id <id>', 'project id (env OS_PROJECT_ID, OS_TENANT_ID)')
    .option('--os-user-domain-name <name>', 'user domain (env OS_USER_DOMAIN_NAME, default Default)')
    .option('--os-project-domain-name <name>', 'project domain (env OS_PROJECT_DOMAIN_NAME, default Default)')
    .option('--os-token <token>', 'an existing token (env OS_TOKEN)')
    .option('--os-workloads-url <url>', 'workloads endpoint override, e.g. http://host:8780/v1/<project> (env OS_WORKLOADS_URL)')
    .option('--os-interface <interface>', 'catalog interface: public, internal, admin (env OS_INTERFACE)')
    .option('--os-region-name <region>', 'catalog region (env OS_REGION_NAME)')
    .option('--timeout <seconds>', 'per-request timeout (default 60)')
    .option('--debug', 'print HTTP requests and responses on stderr');
}

/** A subcommand whose usage errors and help output go through `io`. */
export function addCommand(program: Command, io: ClientIo, name: string, description: string): Command {
  const cmd = program.command(name).description(description);
  cmd.exitOverride((err) => io.usageExit(err));
  cmd.configureOutput({
    writeOut: (s) => void io.stdout.write(s),
    writeErr: (s) => void io.stderr.write(s),
  });
  return cmd;
}

export function addFormatOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-f, --format <format>', 'output format').choices([...OUTPUT_FORMATS]).default('table'))
    .option('-c, --column <name>', 'show only this column/property (repeatable)', collect, [] as string[]);
}

/** Commander accumulator for repeatable options. */
export function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

/** `key=value` (value may contain '='). */
export function keyValue(s: string, flag: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw usageError(`${flag} expects key=value, got '${s}'`);
  return [s.slice(0, i).trim(), s.slice(i + 1)];
}

/** Python-style boolean option values: True/False, 1/0, yes/no. */
export function boolText(v: unknown, flag: string): boolean {
  if (v === true || v === undefined) return true;
  if (v === false) return false;
  const s = String(v).toLowerCase();
  if (['true', '1', 'yes', 'y', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'n', 'off'].includes(s)) return false;
  throw usageError(`${flag} expects True or False, got '${String(v)}'`);
}

/** Reports any error as `ERROR: ...` and sets the exit code from the one table. */
export function reportError(io: ClientIo, e: unknown): void {
  if (e instanceof CliError) {
    io.stderr.write(formatCliError(e) + '\n');
    io.setExitCode(e.exitCode);
    return;
  }
  if (e instanceof SyntaxError) {
    // Unparseable input file or value: a usage problem.
    io.stderr.write(`ERROR: ${e.message}\n`);
    io.setExitCode(EXIT_CODES.usage);
    return;
  }
  io.stderr.write(`ERROR: ${e instanceof Error ? e.message : String(e)}\n`);
  io.setExitCode(EXIT_UNEXPECTED);
}

/** Wraps a command body: builds the Ctx from commander's action arguments, catches errors. */
export function handler(io: ClientIo, body: (c: Ctx) => Promise<void>): (...a: unknown[]) => Promise<void> {
  return async (...a: unknown[]) => {
    const cmd = a[a.length - 1] as Command;
    const opts = cmd.opts() as Record<string, unknown>;
    const globals = cmd.optsWithGlobals() as AuthFlags & { debug?: boolean };
    let session: Promise<WlmSession> | undefined;
    const ctx: Ctx = {
      io,
      args: (cmd.processedArgs as unknown[]).filter((x): x is string => typeof x === 'string'),
      opts,
      session: () => {
        session ??= Promise.resolve().then(() => {
          const settings = authSettings(globals, io.env);
          const debug = globals.debug ? (line: string) => void io.stderr.write(line + '\n') : undefined;
          return openSession(settings, io.fetch, debug);
        });
        return session;
      },
      output: () => {
        const o: OutputOptions = {};
        if (typeof opts.format === 'string') o.format = opts.format as OutputFormat;
        if (Array.isArray(opts.column) && opts.column.length > 0) o.columns = opts.column as string[];
        return o;
      },
      print: (text) => void io.stdout.write(text),
    };
    try {
      await body(ctx);
      io.setExitCode(0);
    } catch (e) {
      reportError(io, e);
    }
  };
}

/** `encodeURIComponent` for ids in paths (a pasted id with a slash must not change the route). */
export function seg(id: string): string {
  return encodeURIComponent(id);
}

/** `?a=1&b=2` from the defined entries, or ''. */
export function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** `--wait` and `--poll-interval` of the commands that start a snapshot or restore. */
export function addWaitOptions(cmd: Command): Command {
  return cmd
    .option('--wait', 'wait until it finishes, showing progress on stderr; exit 7 if it ends in error or cancelled')
    .option('--poll-interval <seconds>', 'seconds between status polls with --wait', '2')
    .option('--wait-timeout <seconds>', 'give up waiting after this long (exit 6; the operation continues)');
}

/**
 * Polls `path` (a snapshot or restore) until final, drawing progress on stderr (a bar on a
 * TTY). Returns the final object; the caller prints it and then checks operationFailure().
 */
export async function awaitOperation(c: Ctx, what: string, id: string, path: string, key: string): Promise<Record<string, unknown>> {
  const secs = Number(c.opts.pollInterval ?? 2);
  if (!Number.isFinite(secs) || secs <= 0) throw usageError(`--poll-interval must be a positive number of seconds, got '${String(c.opts.pollInterval)}'`);
  let timeoutMs: number | undefined;
  if (c.opts.waitTimeout !== undefined) {
    const t = Number(c.opts.waitTimeout);
    if (!Number.isFinite(t) || t <= 0) throw usageError(`--wait-timeout must be a positive number of seconds, got '${String(c.opts.waitTimeout)}'`);
    timeoutMs = t * 1000;
  }
  const s = await c.session();
  const tty = c.io.stderr.isTTY === true;
  return waitForOperation(async () => (await s.request<Record<string, Record<string, unknown>>>('GET', path))[key] ?? {}, {
    what,
    id,
    intervalMs: secs * 1000,
    stream: c.io.stderr,
    bar: tty,
    handleSigint: c.io.stderr === process.stderr,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(c.io.sleep ? { sleep: c.io.sleep } : {}),
  });
}
