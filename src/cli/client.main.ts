#!/usr/bin/env node
import { Command } from 'commander';
import { processIo, usageExitCode } from './command.kit.js';
import { registerClientCommands } from './commands.js';

/**
 * Stand-alone entry of the client commands (`node dist/src/cli/client.main.js workload-list`),
 * used by the CLI tests and for trying the client before main.ts wires registerClientCommands
 * into the `lifeboat` command. Same commands, same exit codes.
 */
const program = new Command('lifeboat').description('Lifeboat client: workloadmgr-style commands over the HTTP API');
program.exitOverride((err) => process.exit(usageExitCode(err)));
registerClientCommands(program, processIo());
await program.parseAsync(process.argv);
