import { Command, CommanderError } from 'commander';
import { registerBackupTargetCommands } from './backup-target.commands.js';
import { addGlobalOptions, processIo, reportError, usageExitCode, type ClientIo } from './command.kit.js';
import { registerRestoreCommands } from './restore.commands.js';
import { registerFileRecoveryCommands, registerFileSearchCommand } from './file-recovery.commands.js';
import { registerSnapshotCommands } from './snapshot.commands.js';
import { registerWorkloadCommands } from './workload.commands.js';
import { registerPolicyCommands } from './policy.commands.js';
import { registerQuotaCommands } from './quota.commands.js';
import { registerSettingCommands } from './setting.commands.js';
import { registerTrustCommands } from './trust.commands.js';
import { registerUsageCommands } from './usage.commands.js';
import { registerSchedulerCommands } from './scheduler.commands.js';
import { registerDrCommands } from './dr.commands.js';

export type { ClientIo } from './command.kit.js';
export { EXIT_CODES } from './exit-codes.js';

/**
 * Adds the workloadmgr-named client commands (workload-*, snapshot-*, restore-*) to `program`,
 * plus the global `--os-*`, `--timeout` and `--debug` options on `program` itself (commander
 * recognises program options before and after the subcommand unless positional options are
 * enabled). Call once. Each command sets the exit code itself (exit-codes.ts) and reports
 * errors as `ERROR: ...` on stderr; it never throws into the caller's parseAsync.
 * `io` defaults to the real process; tests inject their own.
 */
export function registerClientCommands(program: Command, io: ClientIo = processIo()): void {
  addGlobalOptions(program);
  registerBackupTargetCommands(program, io);
  registerWorkloadCommands(program, io);
  registerSnapshotCommands(program, io);
  registerRestoreCommands(program, io);
  registerPolicyCommands(program, io);
  registerQuotaCommands(program, io);
  registerSettingCommands(program, io);
  registerTrustCommands(program, io);
  registerUsageCommands(program, io);
  registerSchedulerCommands(program, io);
  registerDrCommands(program, io);
  registerFileRecoveryCommands(program, io);
  registerFileSearchCommand(program, io);
}

/** Thrown by the injected usageExit of runClient to unwind commander. */
class UsageExit extends Error {
  constructor(readonly code: number) {
    super(`usage exit ${code}`);
  }
}

/**
 * Runs one client command line in-process (argv without the `node script` prefix) and returns
 * its exit code: the test seam for calling commands with injected stdout/stderr/env/fetch.
 */
export async function runClient(argv: string[], io: Omit<ClientIo, 'setExitCode' | 'usageExit'>): Promise<number> {
  let code = 0;
  const full: ClientIo = {
    ...io,
    setExitCode: (c) => {
      code = c;
    },
    usageExit: (err) => {
      throw new UsageExit(usageExitCode(err));
    },
  };
  const program = new Command('lifeboat');
  program.exitOverride((err) => full.usageExit(err));
  program.configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });
  registerClientCommands(program, full);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof UsageExit) return e.code;
    if (e instanceof CommanderError) return usageExitCode(e);
    reportError(full, e);
  }
  return code;
}
