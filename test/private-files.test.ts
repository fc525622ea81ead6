import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { READY_LINE, startProcess, type LifeboatProcess } from './process.js';

/**
 * What `lifeboat serve --demo` leaves on disk and where it writes secrets: LIFEBOAT_HOME 0700,
 * database, inventory and identity files 0600; the generated passwords on the terminal
 * (stderr) and in a 0600 file, never on stdout (the JSON log stream); and at a later start, a
 * warning in the log for each of those files that others may read.
 */
const mode = (path: string) => statSync(path).mode & 0o777;
const CREDENTIAL_LINE = /^ {2}user (\S+) {2}password (\S+) {2}project (\S+)$/gm;

/** stdout holds JSON log lines and the readiness line, nothing else. */
function logLines(stdout: string): { level: number; msg: string }[] {
  const lines = stdout.split('\n').filter((l) => l !== '' && !READY_LINE.test(l));
  return lines.map((l) => {
    try {
      return JSON.parse(l) as { level: number; msg: string };
    } catch {
      throw new Error(`stdout carries a line that is not a JSON log line: ${l}`);
    }
  });
}

describe('private files and first-start credentials', () => {
  let root: string;
  let home: string;
  let env: Record<string, string>;
  let proc: LifeboatProcess | null = null;
  const passwords: string[] = [];
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'lifeboat-files-'));
    home = join(root, 'home'); // not there yet: the first start creates it
    env = { LIFEBOAT_HOME: home, LIFEBOAT_LISTEN: '127.0.0.1:0', LIFEBOAT_LOG_LEVEL: 'info', LIFEBOAT_NODE_NAME: 'files' };
  });
  after(async () => {
    await proc?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('first start: home 0700, database/inventory/identity 0600, passwords on stderr and in a 0600 file only', async () => {
    proc = await startProcess(env, ['serve', '--demo']);
    assert.equal(mode(home), 0o700);
    for (const f of ['lifeboat.db', 'lifeboat.db-wal', 'lifeboat.db-shm', 'inventory.json', 'identity.json', 'settings.key']) assert.equal(mode(join(home, f)), 0o600, f);

    const printed = [...proc.stderr().matchAll(CREDENTIAL_LINE)].map((m) => ({ user: m[1]!, password: m[2]!, project: m[3]! }));
    assert.deepEqual(printed.map((c) => c.user).sort(), ['admin', 'demo']);
    passwords.push(...printed.map((c) => c.password));

    const saved = join(home, 'first-start-credentials.txt');
    assert.equal(mode(saved), 0o600);
    const savedText = readFileSync(saved, 'utf8');
    for (const c of printed) assert.ok(savedText.includes(`  user ${c.user}  password ${c.password}  project ${c.project}\n`), `${c.user} in ${saved}`);

    // The printed password is the real one: the demo user signs in with it.
    const demo = printed.find((c) => c.user === 'demo')!;
    const r = await fetch(`${proc.url}/identity/v3/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name: 'demo', domain: { name: 'Default' }, password: demo.password } } }, scope: { project: { name: 'demo', domain: { name: 'Default' } } } } }),
    });
    assert.equal(r.status, 201);

    const logs = logLines(proc.stdout());
    assert.ok(logs.length > 0, 'info level logs something (the sign-in request at least)');
    for (const p of passwords) assert.equal(proc.stdout().includes(p), false, 'a password reached the log stream');
  });

  test('a later start logs one warning per private file others may read, and prints no password', async () => {
    await proc!.stop();
    chmodSync(home, 0o755);
    for (const f of ['lifeboat.db', 'inventory.json', 'identity.json']) chmodSync(join(home, f), 0o644);
    proc = await startProcess(env, ['serve', '--demo']);

    const warnings = logLines(proc.stdout())
      .filter((l) => l.level === 40)
      .map((l) => l.msg);
    assert.ok(warnings.includes(`LIFEBOAT_HOME ${home} is open to other users (mode 0755); run chmod 700 on it`), warnings.join('\n'));
    assert.ok(warnings.includes(`database file ${join(home, 'lifeboat.db')} is open to other users (mode 0644); run chmod 600 on it`), warnings.join('\n'));
    assert.ok(warnings.includes(`inventory file ${join(home, 'inventory.json')} is open to other users (mode 0644); run chmod 600 on it`), warnings.join('\n'));
    assert.equal(warnings.filter((w) => w.includes(join(home, 'identity.json')) && w.includes('chmod 600')).length, 1, warnings.join('\n'));
    assert.equal(proc.stderr().match(CREDENTIAL_LINE), null, 'no credentials printed again');
    for (const p of passwords) assert.equal(proc.output().includes(p), false);
    // Warned about, not changed behind the operator's back.
    assert.equal(mode(home), 0o755);
  });
});
