import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, type Harness } from './harness.js';

/**
 * The running service follows its identity file: removing a user from it ends that user's
 * token on the very next request (not at the token's expiry), and a password replaced by a
 * `lifeboat hash-password` hash applies to the next login, with nothing restarted.
 */
describe('the service follows the identity file', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
  });

  const file = () => join(h.home, 'identity.json');
  const rewrite = (change: (doc: { users: { name: string; password: string }[] }) => void) => {
    const doc = JSON.parse(readFileSync(file(), 'utf8')) as { users: { name: string; password: string }[] };
    change(doc);
    writeFileSync(`${file()}.new`, JSON.stringify(doc), { mode: 0o600 });
    renameSync(`${file()}.new`, file());
  };
  const login = async (name: string, password: string) =>
    (
      await fetch(`${h.url}/identity/v3/auth/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ auth: { identity: { methods: ['password'], password: { user: { name, domain: { id: 'default' }, password } } }, scope: { project: { id: h.bob.projectId } } } }),
      })
    ).status;

  test('a user removed from the identity file is refused on the next request', async () => {
    assert.equal((await h.api(h.alice, 'GET', '/workloads')).status, 200);
    assert.equal((await h.api(h.bob, 'GET', '/workloads')).status, 200);
    rewrite((doc) => {
      doc.users = doc.users.filter((u) => u.name !== 'alice');
    });
    const r = await h.api(h.alice, 'GET', '/workloads');
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 401);
    assert.equal((await h.api(h.bob, 'GET', '/workloads')).status, 200, 'other users are unaffected');
  });

  test('a password replaced by a `lifeboat hash-password` hash applies to the next login', async () => {
    const main = fileURLToPath(new URL('../src/main.js', import.meta.url));
    const hash = execFileSync(process.execPath, [main, 'hash-password'], { input: 'bob-new-secret\n', encoding: 'utf8' }).trim();
    assert.match(hash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    assert.equal(await login('bob', 'bob-pw'), 201);
    rewrite((doc) => {
      doc.users.find((u) => u.name === 'bob')!.password = hash;
    });
    assert.equal(await login('bob', 'bob-pw'), 401);
    assert.equal(await login('bob', 'bob-new-secret'), 201);
    assert.ok(!readFileSync(file(), 'utf8').includes('bob-new-secret'));
  });
});
