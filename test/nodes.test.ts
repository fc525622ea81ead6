import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, waitFor } from './harness.js';
import { spawnSync } from 'node:child_process';
import { MAIN, signedInClient, startProcess, writeTestIdentity, type LifeboatProcess } from './process.js';

/**
 * Issue 14 item 4 with real processes on one store: every process registers in the node
 * registry and heartbeats; the admin's `metrics/nodes` lists them with role, status and load;
 * a stopped one shows Stopped, a killed one Down after one job lease. A host whose settings key
 * differs from the running nodes' or from the one that sealed stored secrets refuses to start,
 * naming both key ids; a named key file that does not exist is refused too.
 */
const hex = () => randomBytes(16).toString('hex');

/** `lifeboat serve` that must refuse to start: a start that wrongly succeeds is killed after a minute and fails the test. */
function serveRefused(env: Record<string, string>): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, 'serve', '--role', 'worker'], { env: { ...process.env, LIFEBOAT_LOG_LEVEL: 'warn', ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('node registry and the settings key across hosts', () => {
  let home: string;
  let projectId: string;
  let env: Record<string, string>;
  const procs: LifeboatProcess[] = [];
  const keyA = () => join(home, 'key-a');

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'lifeboat-nodes-'));
    projectId = hex();
    writeTestIdentity(home, projectId);
    writeFileSync(join(home, 'inventory.json'), JSON.stringify({ instances: [] }));
    writeFileSync(keyA(), `${hex()}${hex()}\n`, { mode: 0o600 });
    env = { LIFEBOAT_HOME: home, LIFEBOAT_JOB_LEASE: '2', LIFEBOAT_SETTINGS_KEY_FILE: keyA() };
  });
  after(async () => {
    for (const p of procs) await p.kill9();
    rmSync(home, { recursive: true, force: true });
  });

  async function start(node: string, role: 'all' | 'worker', extra: Record<string, string> = {}): Promise<LifeboatProcess> {
    const p = await startProcess({ ...env, LIFEBOAT_NODE_NAME: node, LIFEBOAT_LISTEN: `127.0.0.1:${role === 'all' ? await freePort() : 0}`, ...extra }, ['serve', '--role', role]);
    procs.push(p);
    return p;
  }

  const client = (url: string, user: 'u' | 'a') => signedInClient(url, projectId, user);

  type NodeJson = { node: string; id: string; role: string; status: string; pid: number; settings_key_id: string; load: { running_jobs: number; concurrency: number; loadavg_1m: number } };

  test('nodes register with role and load, show Stopped after SIGTERM and Down after SIGKILL; a differing or missing key stops a start', async () => {
    const api = await start('alpha', 'all');
    const w1 = await start('beta', 'worker', { LIFEBOAT_WORKER_CONCURRENCY: '3' });
    const w2 = await start('gamma', 'worker');
    const admin = await client(api.url!, 'a');
    const member = await client(api.url!, 'u');
    const nodes = async () => ((await admin('GET', '/workloads/metrics/nodes')).json.nodes as NodeJson[]);

    const list = await nodes();
    assert.deepEqual(list.map((n) => [n.node, n.role, n.status, n.load.concurrency, n.load.running_jobs]), [
      ['alpha', 'all', 'Up', 2, 0],
      ['beta', 'worker', 'Up', 3, 0],
      ['gamma', 'worker', 'Up', 2, 0],
    ]);
    assert.equal(new Set(list.map((n) => n.settings_key_id)).size, 1, 'one key everywhere');
    assert.match(list[0]!.settings_key_id, /^[0-9a-f]{16}$/);
    assert.deepEqual(list.map((n) => n.pid), [api.child.pid, w1.child.pid, w2.child.pid]);
    assert.equal(typeof list[0]!.load.loadavg_1m, 'number');
    assert.equal((await member('GET', '/workloads/metrics/nodes')).status, 403);

    // Another key while these run: refused at start, naming the key ids, never a key.
    const keyB = join(home, 'key-b');
    writeFileSync(keyB, `${hex()}${hex()}\n`, { mode: 0o600 });
    const other = serveRefused({ ...env, LIFEBOAT_NODE_NAME: 'delta', LIFEBOAT_LISTEN: '127.0.0.1:0', LIFEBOAT_SETTINGS_KEY_FILE: keyB });
    assert.equal(other.status, 2, other.stderr);
    assert.match(other.stderr, /configuration error: the settings key of this host \(LIFEBOAT_SETTINGS_KEY_FILE, key id [0-9a-f]{16}\) differs from the one of running node\(s\) alpha \(pid \d+, key id [0-9a-f]{16}\), beta .*gamma .*every host must read the same key/);
    const missing = serveRefused({ ...env, LIFEBOAT_LISTEN: '127.0.0.1:0', LIFEBOAT_SETTINGS_KEY_FILE: join(home, 'nope') });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /settings key file .* \(LIFEBOAT_SETTINGS_KEY_FILE\) does not exist; every host needs a copy of the same file/);

    await w1.stop();
    await w2.kill9();
    await waitFor(async () => {
      const s = Object.fromEntries((await nodes()).map((n) => [n.node, n.status]));
      return s.beta === 'Stopped' && s.gamma === 'Down' && s.alpha === 'Up';
    }, 15_000, 'beta Stopped, gamma Down');

    // A secret sealed with key A: with every node stopped, key B is still refused (the stored secret names key A).
    const saved = await member('POST', '/settings', { settings: [{ name: 'smtp_server_password', value: 's3cret', category: '', is_public: false, is_hidden: false, metadata: {}, type: '', description: '' }] });
    assert.equal(saved.status, 200);
    await api.stop();
    const later = serveRefused({ ...env, LIFEBOAT_LISTEN: '127.0.0.1:0', LIFEBOAT_SETTINGS_KEY_FILE: keyB });
    assert.equal(later.status, 2, later.stderr);
    assert.match(later.stderr, /differs from the one of stored secret settings \(sealed with key id [0-9a-f]{16}\)/);
    assert.ok(!later.stderr.includes(join(home, 'key-b')), 'the message names no key file path of the host');
  });
});
