#!/usr/bin/env node
import { Command, Option } from 'commander';
import { loadConfig, ConfigError, type Config } from './config/config.js';
import { startLifeboat, type Role } from './app/app.js';
import type { CreatedCredentials } from './identity/identity-file.js';
import { formatPerTarget, formatRepairIndex, formatVerify, gcTarget, parseDataSubset, repairIndexTarget, toolTargets, verifyTarget } from './app/repo-tools.js';
import { registerClientCommands } from './cli/commands.js';
import { writePrivateFile } from './app/file-modes.js';
import { BackendConfigError } from './backend/open.js';
import { SettingsKeyMismatchError } from './services/node.service.js';
import { join } from 'node:path';

/** Where the first start keeps the generated credentials (in LIFEBOAT_HOME, mode 0600). */
const FIRST_START_FILE = 'first-start-credentials.txt';

/** The `lifeboat` command: the service (`serve`) and, later, client and repository tools. */
const program = new Command('lifeboat').description('Lifeboat: backup and recovery for cloud VM workloads (workloadmgr v1 API)');

function config(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`lifeboat: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

/**
 * The first-start welcome. It carries generated passwords, so it goes to the terminal (stderr)
 * and to a 0600 file in LIFEBOAT_HOME, never to stdout, where the JSON log stream goes.
 */
function printWelcome(cfg: Config, created: CreatedCredentials[], demoVms: string[]): void {
  const out: string[] = ['', '=== Lifeboat: first start ==='];
  if (created.length > 0) {
    const saved = join(cfg.home, FIRST_START_FILE);
    out.push(`Created ${cfg.identity} with these users (passwords are shown only now, and kept in ${saved}, mode 0600: delete it once noted):`);
    for (const c of created) out.push(`  user ${c.user}  password ${c.password}  project ${c.project}`);
  }
  if (demoVms.length > 0) out.push(`Demo VMs in ${cfg.inventory}: ${demoVms.join(', ')}`);
  const demo = created.find((c) => c.user === 'demo') ?? created[0];
  if (demo) {
    const base = cfg.publicUrl;
    out.push(
      '',
      'Get a token and list workloads:',
      `  TOKEN=$(curl -si -H 'Content-Type: application/json' ${base}/identity/v3/auth/tokens -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"${demo.user}","domain":{"name":"Default"},"password":"${demo.password}"}}},"scope":{"project":{"name":"${demo.project}","domain":{"name":"Default"}}}}}' | awk 'tolower($1)=="x-subject-token:"{print $2}' | tr -d '\\r')`,
      `  PROJECT=$(curl -s -H "X-Auth-Token: $TOKEN" -H "X-Subject-Token: $TOKEN" ${base}/identity/v3/auth/tokens | node -pe 'JSON.parse(require("fs").readFileSync(0)).token.project.id')`,
      `  curl -s -H "X-Auth-Token: $TOKEN" ${base}/v1/$PROJECT/workloads`,
      '',
      'Or with the OpenStack variables: OS_AUTH_URL=' + `${base}/identity/v3 OS_USERNAME=${demo.user} OS_PASSWORD=${demo.password} OS_PROJECT_NAME=${demo.project}`,
      '',
    );
  }
  const text = out.join('\n') + '\n';
  if (created.length > 0) writePrivateFile(join(cfg.home, FIRST_START_FILE), text);
  process.stderr.write(text);
}

program
  .command('serve')
  .description('run the service (HTTP API and/or job worker) on the configured store and target')
  .addOption(new Option('--role <role>', 'which parts to run').choices(['api', 'worker', 'all']).default('all'))
  .option('--demo', 'create a demo identity (project/user demo) and two demo VMs when missing', false)
  .action(async (opts: { role: Role; demo: boolean }) => {
    const cfg = config();
    const lb = await startLifeboat(cfg, {
      role: opts.role,
      demo: opts.demo,
      onCredentials: (created, vms) => printWelcome(cfg, created, vms),
    });
    process.stdout.write(`lifeboat ${opts.role} running${lb.address ? ` on http://${lb.address}` : ''} (store ${lb.store.dialect}, node ${cfg.nodeName})\n`);
    let closing = false;
    const shutdown = (sig: string) => {
      if (closing) return;
      closing = true;
      process.stdout.write(`lifeboat: ${sig}, shutting down\n`);
      // Past the grace, cancelled jobs get this long to settle before the process gives up.
      const force = setTimeout(() => process.exit(1), (cfg.shutdownGraceSeconds + 20) * 1000);
      force.unref();
      lb.shutdown().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  });

// Client commands (workloadmgr names: workload-list, workload-snapshot, snapshot-list, ...).
registerClientCommands(program);

program
  .command('hash-password')
  .description('read a password from stdin (first line) and print its scrypt hash for the identity file')
  .action(async () => {
    const { hashPassword } = await import('./identity/password-hash.js');
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const password = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
    if (password === '') {
      process.stderr.write('lifeboat hash-password: no password on stdin\n');
      process.exit(2);
    }
    process.stdout.write(`${await hashPassword(password)}\n`);
  });

program
  .command('libvirt-assign')
  .description('give a libvirt domain (name or uuid) to a project, or take it away with --remove; talks to LIFEBOAT_LIBVIRT_URI directly')
  .argument('<domain>', 'domain name or uuid')
  .argument('[project-id]', 'the project the domain belongs to from now on')
  .option('--remove', 'make the domain unassigned (invisible to every project)', false)
  .action(async (domain: string, projectId: string | undefined, opts: { remove: boolean }) => {
    if (opts.remove === (projectId !== undefined)) {
      process.stderr.write('lifeboat libvirt-assign: give either a project id or --remove\n');
      process.exit(2);
    }
    const { assignDomain } = await import('./platform/libvirt/assign.js');
    const d = await assignDomain(config().libvirt.uri, domain, opts.remove ? null : projectId!);
    process.stdout.write(opts.remove ? `domain ${d.name} (${d.uuid}) is unassigned\n` : `domain ${d.name} (${d.uuid}) belongs to project ${projectId}\n`);
  });

const repoCmd = program.command('repo').description('operator tools on the backup targets (LIFEBOAT_TARGET or LIFEBOAT_TARGETS; --target picks one, else each in turn)');
const TARGET_OPTION = ['--target <name>', 'only this backup target (a name in LIFEBOAT_TARGETS); default: every configured target'] as const;
repoCmd
  .command('verify')
  .description('read every object on the target, check every chunk hash, name the snapshots and disks a bad or missing chunk affects (and record it on those snapshots)')
  .option('--mark-bad', 'record bad copies so the next backup re-uploads them (self-heal; the default)', true)
  .option('--no-mark-bad', 'only report: write no bad-copy markers')
  .option('--read-data-subset <percent>', 'read the data of only about this share of the packs, chosen at random (e.g. 10%); every pack is still checked for presence and length')
  .option(...TARGET_OPTION)
  .option('--json', 'print the result as JSON', false)
  .action(async (opts: { markBad: boolean; json: boolean; readDataSubset?: string; target?: string }) => {
    const subset = opts.readDataSubset === undefined ? undefined : parseDataSubset(opts.readDataSubset);
    const cfg = config();
    const results = [];
    for (const t of toolTargets(cfg, opts.target)) results.push({ name: t.name, result: await verifyTarget(cfg, { markBad: opts.markBad, readDataSubset: subset }, t) });
    process.stdout.write(formatPerTarget(results, opts.json, formatVerify) + '\n');
    process.exitCode = results.every((r) => r.result.ok) ? 0 : 1;
  });
repoCmd
  .command('repair-index')
  .description('rebuild unreadable or missing pack indexes from the packs themselves (like restic repair index); safe while the service runs')
  .option(...TARGET_OPTION)
  .option('--json', 'print the result as JSON', false)
  .action(async (opts: { json: boolean; target?: string }) => {
    const cfg = config();
    const results = [];
    for (const t of toolTargets(cfg, opts.target)) results.push({ name: t.name, result: await repairIndexTarget(cfg, t) });
    process.stdout.write(formatPerTarget(results, opts.json, formatRepairIndex) + '\n');
    process.exitCode = results.some((x) => x.result.some((y) => y.repair.unreadablePacks.length > 0)) ? 1 : 0;
  });
repoCmd
  .command('gc')
  .description('free space no snapshot references (never what a manifest or a running snapshot uses)')
  .option('--dry-run', 'report what would be freed, delete nothing', false)
  .option(...TARGET_OPTION)
  .action(async (opts: { dryRun: boolean; target?: string }) => {
    const cfg = config();
    const results = [];
    for (const t of toolTargets(cfg, opts.target)) results.push({ name: t.name, result: await gcTarget(cfg, { dryRun: opts.dryRun }, t) });
    process.stdout.write(formatPerTarget(results, true, (r) => JSON.stringify(r, null, 2)) + '\n');
    process.exitCode = results.every((r) => r.result.swept) || opts.dryRun ? 0 : 1;
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  // A target that cannot be opened as configured is a configuration error, like a bad variable.
  if (e instanceof BackendConfigError || e instanceof SettingsKeyMismatchError) {
    process.stderr.write(`lifeboat: configuration error: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`lifeboat: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
