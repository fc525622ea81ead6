import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from 'bcryptjs';
import { ManualClock } from '../lib/clock.js';
import { ForbiddenError, NotFoundError, RateLimitedError, UnauthenticatedError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { openStore, type StoreHandle } from '../store/db.js';
import { EmbeddedIdentity, type EmbeddedIdentityOptions } from './embedded-identity.js';
import { IdentityFileError, loadIdentityFile, parseIdentityData } from './identity-file.js';
import { IdentitySource } from './identity-source.js';
import { hashPassword, passwordKind, verifyPassword } from './password-hash.js';
import { passwordAuth } from './testing.js';

/**
 * Identity that revokes, and no brute force: tokens follow the identity file as it is now,
 * hashed passwords, lockout per user and per address, issuance rate, and who may inspect or
 * revoke a token.
 */

const P_DEMO = 'd'.repeat(32);
const P_ADMIN = 'a'.repeat(32);
const U_ALICE = '1'.repeat(32);
const U_ROOT = '2'.repeat(32);

type Doc = { projects: { id: string; name: string }[]; users: { id: string; name: string; password: string; roles: { project: string; role: string }[] }[] };

function baseDoc(): Doc {
  return {
    projects: [
      { id: P_DEMO, name: 'demo' },
      { id: P_ADMIN, name: 'admin' },
    ],
    users: [
      { id: U_ALICE, name: 'alice', password: 'alice-pw', roles: [{ project: 'demo', role: 'member' }] },
      { id: U_ROOT, name: 'root', password: 'root-pw', roles: [{ project: 'admin', role: 'admin' }, { project: 'demo', role: 'member' }] },
    ],
  };
}

interface Logged {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function recorder(lines: Logged[]): Logger {
  const at = (level: string) => (obj: object | string, msg?: string) => void lines.push({ level, obj: typeof obj === 'string' ? {} : (obj as Record<string, unknown>), msg });
  const l: Logger = { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), child: () => l };
  return l;
}

const isUnauth = (e: unknown) => e instanceof UnauthenticatedError;
const ALICE = { userId: U_ALICE, roles: ['member'], isAdmin: false };
const ROOT = { userId: U_ROOT, roles: ['member', 'admin'], isAdmin: true };

describe('identity that revokes', () => {
  let h: StoreHandle;
  let dir: string;
  let file: string;
  const lines: Logged[] = [];
  let source: IdentitySource;
  let clock: ManualClock;
  let n = 0;

  /** Writes the identity file by replace-by-rename (as editors and config tools do). */
  const write = (doc: unknown) => {
    const tmp = join(dir, `.identity.${n++}.tmp`);
    writeFileSync(tmp, typeof doc === 'string' ? doc : JSON.stringify(doc));
    renameSync(tmp, file);
  };
  const make = (over: Partial<EmbeddedIdentityOptions> = {}) =>
    new EmbeddedIdentity({ db: h.db, identity: () => source.current(), publicUrl: 'http://lb.test', clock, cacheWindowMs: 60_000, log: recorder(lines), ...over });

  before(async () => {
    h = await openStore('sqlite::memory:');
  });
  const dirs: string[] = [];
  after(async () => {
    await h.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const fresh = () => {
    dir = mkdtempSync(join(tmpdir(), 'lb-idrev-'));
    dirs.push(dir);
    file = join(dir, 'identity.json');
    write(baseDoc());
    lines.length = 0;
    source = new IdentitySource(file, loadIdentityFile(file), recorder(lines));
    clock = new ManualClock();
  };

  it('a user removed from the file loses access on the next request, even while the token is cached', async () => {
    fresh();
    const idp = make();
    const { token } = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
    assert.equal((await idp.validate(token, 'r')).userId, U_ALICE); // cached for 60 s from here
    const doc = baseDoc();
    doc.users = doc.users.filter((u) => u.name !== 'alice');
    write(doc);
    await assert.rejects(idp.validate(token, 'r'), isUnauth);
    await assert.rejects(idp.inspect(token, ROOT), (e: unknown) => e instanceof NotFoundError, 'a remote validator sees it too');
    await assert.rejects(idp.authenticate({ auth: { identity: { methods: ['token'], token: { id: token } }, scope: { project: { id: P_DEMO } } } }), isUnauth, 'no re-scope');
    await assert.rejects(idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo')), isUnauth);
  });

  it('a demoted admin loses the admin token at once; a member who lost the role on the project too', async () => {
    fresh();
    const idp = make();
    const root = await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'));
    assert.equal((await idp.validate(root.token, 'r')).isAdmin, true);
    const alice = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
    await idp.validate(alice.token, 'r');
    const doc = baseDoc();
    doc.users[1]!.roles = [{ project: 'demo', role: 'member' }]; // root: no admin anywhere now
    doc.users[0]!.roles = [{ project: 'demo', role: 'reader' }]; // alice: member → reader
    write(doc);
    await assert.rejects(idp.validate(root.token, 'r'), isUnauth);
    await assert.rejects(idp.validate(alice.token, 'r'), isUnauth);
    // New logins get the roles as they are now.
    const again = await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'));
    assert.deepEqual((await idp.validate(again.token, 'r')).roles, ['member']);
  });

  it('a removed project ends its tokens; gaining a role does not widen an old token', async () => {
    fresh();
    const idp = make();
    const alice = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
    const doc = baseDoc();
    doc.users[0]!.roles.push({ project: 'demo', role: 'admin' });
    write(doc);
    const ctx = await idp.validate(alice.token, 'r');
    assert.deepEqual(ctx.roles, ['member']);
    assert.equal(ctx.isAdmin, false);
    write({ projects: [{ id: P_ADMIN, name: 'admin' }], users: [{ ...baseDoc().users[1]!, roles: [{ project: 'admin', role: 'admin' }] }] });
    await assert.rejects(idp.validate(alice.token, 'r'), isUnauth);
  });

  it('an invalid edit keeps the last good identity and says why, once; the next good edit applies', async () => {
    fresh();
    const idp = make();
    const alice = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
    write('{"projects": [');
    await idp.validate(alice.token, 'r');
    await idp.validate(alice.token, 'r');
    const errors = lines.filter((l) => l.level === 'error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.msg, 'identity file is invalid; keeping the last good identity');
    assert.match(String(errors[0]!.obj.err), /not valid JSON/);
    const doc = baseDoc();
    doc.users = doc.users.filter((u) => u.name !== 'alice');
    write(doc);
    await assert.rejects(idp.validate(alice.token, 'r'), isUnauth);
    assert.ok(lines.some((l) => l.msg === 'identity file reloaded'));
  });

  it('accepts scrypt and bcrypt hashes, warns about plain text, refuses malformed hashes', async () => {
    fresh();
    const doc = baseDoc();
    doc.users[0]!.password = await hashPassword('alice-secret');
    doc.users[1]!.password = hashSync('root-secret', 4);
    write(doc);
    const idp = make();
    for (const [u, pw] of [
      ['alice', 'alice-secret'],
      ['root', 'root-secret'],
    ] as const) {
      await idp.authenticate(passwordAuth(u, pw, 'demo'));
      await assert.rejects(idp.authenticate(passwordAuth(u, `${pw}x`, 'demo')), isUnauth);
      await assert.rejects(idp.authenticate(passwordAuth(u, doc.users.find((x) => x.name === u)!.password, 'demo')), isUnauth, 'the hash itself is no password');
    }
    assert.equal(passwordKind(doc.users[0]!.password), 'scrypt');
    assert.equal(passwordKind(doc.users[1]!.password), 'bcrypt');
    assert.equal(await verifyPassword(doc.users[0]!.password, 'alice-secret'), true);

    // The first load named the plain-text users; the hashed file names none.
    assert.deepEqual(lines.find((l) => l.level === 'warn' && String(l.msg).includes('plain-text'))?.obj.users, ['alice', 'root']);
    assert.equal(lines.filter((l) => l.level === 'warn' && String(l.msg).includes('plain-text')).length, 1);

    for (const bad of ['$scrypt$ln=15,r=8,p=1$c2FsdA$', '$scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5', '$2b$10$short']) {
      const d = baseDoc();
      d.users[0]!.password = bad;
      assert.throws(() => parseIdentityData(d), (e: unknown) => e instanceof IdentityFileError && /\$\.users\[0\]\.password: looks like an? (scrypt|bcrypt) hash but is malformed/.test(e.message), bad);
    }
  });

  it('50 wrong passwords lock the user out; the right one is refused until the lockout ends', async () => {
    fresh();
    const idp = make({ loginLimits: { userFailures: 5, addressFailures: 0, lockoutMs: 600_000, issuesPerMinute: 0 } });
    for (let i = 0; i < 50; i++) await assert.rejects(idp.authenticate(passwordAuth('alice', `guess-${i}`, 'demo'), { address: `198.51.100.${i}` }), isUnauth);
    const refused = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'), { address: '192.0.2.1' }).catch((e: unknown) => e);
    assert.ok(refused instanceof UnauthenticatedError, 'locked: the right password is refused');
    assert.equal(refused.message, new UnauthenticatedError().message, 'the same 401 as a wrong password');
    assert.ok(lines.some((l) => l.msg === 'too many failed logins: locked out' && l.obj.userId === U_ALICE));
    clock.advance(599_999);
    await assert.rejects(idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo')), isUnauth);
    clock.advance(1);
    await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
    // Other users were never affected, and success resets the count.
    await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'));
    for (let i = 0; i < 4; i++) await assert.rejects(idp.authenticate(passwordAuth('alice', 'x', 'demo')), isUnauth);
    await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
    for (let i = 0; i < 4; i++) await assert.rejects(idp.authenticate(passwordAuth('alice', 'x', 'demo')), isUnauth);
    await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
  });

  it('one client address guessing across many names is locked out, other addresses are not', async () => {
    fresh();
    const idp = make({ loginLimits: { userFailures: 0, addressFailures: 10, lockoutMs: 60_000, issuesPerMinute: 0 } });
    const evil = { address: '203.0.113.9' };
    for (let i = 0; i < 10; i++) await assert.rejects(idp.authenticate(passwordAuth(i % 2 ? 'alice' : `ghost${i}`, 'nope', 'demo'), evil), isUnauth);
    await assert.rejects(idp.authenticate(passwordAuth('root', 'root-pw', 'demo'), evil), isUnauth);
    await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'), { address: '192.0.2.44' });
    clock.advance(60_000);
    await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'), evil);
  });

  it('unknown user names lock out like real ones (a lockout tells nothing about which names exist)', async () => {
    fresh();
    const idp = make({ loginLimits: { userFailures: 3, addressFailures: 0, lockoutMs: 60_000, issuesPerMinute: 0 } });
    for (let i = 0; i < 3; i++) await assert.rejects(idp.authenticate(passwordAuth('mallory', 'x', 'demo')), isUnauth);
    assert.ok(lines.some((l) => l.msg === 'too many failed logins: locked out' && l.obj.userId === null));
  });

  it('token issuance per user is rate-limited (429 with a retry time); other users are not', async () => {
    fresh();
    const idp = make({ loginLimits: { userFailures: 5, addressFailures: 30, lockoutMs: 60_000, issuesPerMinute: 3 } });
    for (let i = 0; i < 3; i++) {
      await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      clock.advance(10_000);
    }
    const e = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo')).catch((x: unknown) => x);
    assert.ok(e instanceof RateLimitedError);
    assert.equal(e.retryAfterSeconds, 30);
    await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'));
    clock.advance(30_000);
    await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
  });

  it('only the owner, an admin or a service may inspect or revoke a token', async () => {
    fresh();
    const idp = make();
    const alice = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
    const root = await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'));
    const isForbidden = (e: unknown) => e instanceof ForbiddenError && /identity:(validate|revoke)_token/.test(e.message);
    await assert.rejects(idp.inspect(root.token, ALICE), isForbidden);
    await assert.rejects(idp.revoke(root.token, ALICE), isForbidden);
    await idp.validate(root.token, 'r'); // still valid
    assert.equal((await idp.inspect(alice.token, ALICE)).token.user.id, U_ALICE);
    assert.equal((await idp.inspect(alice.token, ROOT)).token.user.id, U_ALICE);
    assert.equal((await idp.inspect(alice.token, { userId: 'svc', roles: ['service'], isAdmin: false })).token.user.id, U_ALICE);
    await idp.revoke(alice.token, ROOT);
    await assert.rejects(idp.validate(alice.token, 'r'), isUnauth);
  });
});
