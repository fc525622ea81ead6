import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityFileError, loadIdentityFile, loadOrCreateIdentityFile, parseIdentityData } from './identity-file.js';
import { P_DEMO, P_OTHER, testIdentity } from './testing.js';

const HEX = 'e'.repeat(32);

/** A new temporary directory, removed when this file's tests are done. */
const tempDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'lb-idf-'));
  tempDirs.push(d);
  return d;
}
after(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function errorOf(raw: unknown): string {
  try {
    parseIdentityData(raw, 'test');
  } catch (e) {
    assert.ok(e instanceof IdentityFileError);
    return e.message;
  }
  assert.fail('expected an IdentityFileError');
}

describe('identity file: validation', () => {
  it('accepts the documented shape; roles name projects by id or name', () => {
    const dir = testIdentity();
    const alice = dir.userByName('alice')!;
    assert.deepEqual(dir.rolesOn(alice, P_DEMO), ['member']);
    assert.deepEqual(dir.rolesOn(alice, P_OTHER), ['backup']);
    assert.equal(dir.isAdmin(alice), false);
    assert.equal(dir.isAdmin(dir.userByName('root')!), true);
  });

  it('names the path and the fault of each problem, all at once', () => {
    const msg = errorOf({
      projects: [{ id: 'XYZ', name: 'demo' }, { id: HEX, name: '' }],
      users: [
        { id: HEX, name: 'alice', password: '', roles: [{ project: 'nope', role: 'member' }] },
        { id: HEX, name: 'bob', password: 'x', roles: 'member', extra: 1 },
      ],
    });
    assert.match(msg, /\$\.projects\[0\]\.id: must be 32 lowercase hex/);
    assert.match(msg, /\$\.projects\[1\]\.name: must be a non-empty string/);
    assert.match(msg, /\$\.users\[0\]\.password: must be a non-empty string/);
    assert.match(msg, /\$\.users\[0\]\.roles\[0\]\.project: no project with id or name "nope"/);
    assert.match(msg, /\$\.users\[1\]: unknown key "extra"/);
    assert.match(msg, /\$\.users\[1\]\.roles: must be an array/);
  });

  it('rejects duplicates, bad role names and a non-object top level', () => {
    assert.match(errorOf({ projects: [{ id: HEX, name: 'a' }, { id: HEX, name: 'b' }], users: [] }), /\$\.projects\[1\]\.id: duplicate project id/);
    assert.match(
      errorOf({ projects: [{ id: HEX, name: 'a' }], users: [1, 2].map(() => ({ id: 'f'.repeat(32), name: 'u', password: 'p', roles: [] })) }),
      /\$\.users\[1\]\.id: duplicate user id/,
    );
    assert.match(errorOf({ projects: [{ id: HEX, name: 'a' }], users: [{ id: HEX, name: 'u', password: 'p', roles: [{ project: 'a', role: 'bad role' }] }] }), /roles\[0\]\.role: must be a role name/);
    assert.match(errorOf([]), /top level must be an object/);
    assert.match(errorOf({ users: [] }), /\$\.projects: must be an array/);
  });

  it('reports unreadable and non-JSON files with the path', () => {
    const d = tempDir();
    assert.throws(() => loadIdentityFile(join(d, 'missing.json')), /cannot read identity file .*missing\.json/);
    writeFileSync(join(d, 'bad.json'), '{"projects": [');
    assert.throws(() => loadIdentityFile(join(d, 'bad.json')), /identity file .*bad\.json is not valid JSON/);
  });

  it('compares passwords correctly whatever their lengths', async () => {
    const dir = testIdentity();
    const alice = dir.userByName('alice')!;
    assert.equal(await dir.checkPassword(alice, 'alice-pw'), true);
    assert.equal(await dir.checkPassword(alice, 'alice-p'), false);
    assert.equal(await dir.checkPassword(alice, 'alice-pw '), false);
    assert.equal(await dir.checkPassword(alice, ''), false);
  });
});

describe('identity file: creation', () => {
  it('creates a missing file 0600 with admin credentials (stored as scrypt hashes), returned once', async () => {
    const d = tempDir();
    const path = join(d, 'sub', 'identity.json');
    const first = loadOrCreateIdentityFile(path);
    assert.equal(first.created.length, 1);
    const cred = first.created[0]!;
    assert.equal(cred.user, 'admin');
    assert.equal(cred.project, 'admin');
    assert.ok(cred.password.length >= 20);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(d, 'sub')), ['identity.json'], 'no temp file left behind');

    // The file on disk is the documented format and yields the same identity.
    const onDisk = JSON.parse(readFileSync(path, 'utf8'));
    assert.deepEqual(onDisk.users[0].roles, [{ project: 'admin', role: 'admin' }]);
    assert.match(onDisk.users[0].password, /^\$scrypt\$ln=15,r=8,p=1\$/, 'no plain-text password on disk');
    assert.deepEqual(first.identity.plainTextUsers(), []);
    const admin = first.identity.userByName('admin')!;
    assert.equal(await first.identity.checkPassword(admin, cred.password), true);
    assert.equal(first.identity.isAdmin(admin), true);

    // Second start: loaded, nothing generated, same password works.
    const second = loadOrCreateIdentityFile(path);
    assert.deepEqual(second.created, []);
    assert.deepEqual(second.warnings, []);
    assert.equal(await second.identity.checkPassword(second.identity.userByName('admin')!, cred.password), true);
  });

  it('adds project and user demo (member) with the demo option', () => {
    const d = tempDir();
    const r = loadOrCreateIdentityFile(join(d, 'identity.json'), { demo: true });
    assert.deepEqual(
      r.created.map((c) => [c.user, c.project]),
      [
        ['admin', 'admin'],
        ['demo', 'demo'],
      ],
    );
    const demo = r.identity.userByName('demo')!;
    const demoProject = r.identity.projectByName('demo')!;
    assert.deepEqual(r.identity.rolesOn(demo, demoProject.id), ['member']);
    assert.equal(r.identity.isAdmin(demo), false);
    assert.notEqual(r.created[0]!.password, r.created[1]!.password);
  });

  it('warns when an existing file is readable by others', () => {
    const d = tempDir();
    const path = join(d, 'identity.json');
    writeFileSync(path, '{"projects": [], "users": []}', { mode: 0o644 });
    chmodSync(path, 0o644);
    const r = loadOrCreateIdentityFile(path);
    assert.deepEqual(r.created, []);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!, /mode 0644; run chmod 600/);
  });

  it('does not overwrite an existing (even invalid) file', () => {
    const d = tempDir();
    const path = join(d, 'identity.json');
    writeFileSync(path, '{"projects": [], "users": [], "x": 1}');
    assert.throws(() => loadOrCreateIdentityFile(path), /unknown key "x"/);
    assert.equal(readFileSync(path, 'utf8'), '{"projects": [], "users": [], "x": 1}');
  });
});
