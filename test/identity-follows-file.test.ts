import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from './harness.js';

/**
 * The running service follows its identity file: removing a user from it ends that user's
 * token on the very next request (not at the token's expiry), with nothing restarted.
 */
describe('the service follows the identity file', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.close();
  });

  test('a user removed from the identity file is refused on the next request', async () => {
    assert.equal((await h.api(h.alice, 'GET', '/workloads')).status, 200);
    assert.equal((await h.api(h.bob, 'GET', '/workloads')).status, 200);
    const file = join(h.home, 'identity.json');
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { users: { name: string }[] };
    doc.users = doc.users.filter((u) => u.name !== 'alice');
    writeFileSync(`${file}.new`, JSON.stringify(doc), { mode: 0o600 });
    renameSync(`${file}.new`, file);
    const r = await h.api(h.alice, 'GET', '/workloads');
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 401);
    assert.equal((await h.api(h.bob, 'GET', '/workloads')).status, 200, 'other users are unaffected');
  });
});
