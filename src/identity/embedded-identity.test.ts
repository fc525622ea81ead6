import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../lib/clock.js';
import { NotFoundError, UnauthenticatedError, ValidationError } from '../lib/errors.js';
import { formatKeystoneTime } from '../lib/time.js';
import type { StoreHandle } from '../store/db.js';
import { storeKinds } from '../store/testing.js';
import { EmbeddedIdentity, type EmbeddedIdentityOptions } from './embedded-identity.js';
import { roleId } from './identity-file.js';
import { P_ADMIN, P_DEMO, P_OTHER, U_ALICE, U_ROOT, passwordAuth, testIdentity } from './testing.js';
import { hashToken } from './token-validator.js';

const isUnauth = (e: unknown) => e instanceof UnauthenticatedError;
const isNotFound = (e: unknown) => e instanceof NotFoundError;
const isValidation = (e: unknown) => e instanceof ValidationError;
/** The caller owning alice's tokens (inspection/revocation need the owner, an admin or a service). */
const ALICE = { userId: U_ALICE, roles: ['member'], isAdmin: false };

for (const kind of storeKinds()) {
  describe(`EmbeddedIdentity (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    before(async () => {
      h = await kind.open();
    });
    after(async () => {
      await h.close();
    });
    const make = (clock: ManualClock, over: Partial<EmbeddedIdentityOptions> = {}) =>
      new EmbeddedIdentity({ db: h.db, identity: testIdentity(), publicUrl: 'http://lb.test:8780/', clock, ...over });

    it('password by name+domain, scope by name+domain → token body with roles, times, catalog', async () => {
      const clock = new ManualClock();
      const idp = make(clock);
      const { token, body } = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      assert.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
      const t = body.token;
      assert.deepEqual(t.methods, ['password']);
      assert.deepEqual(t.user, { id: U_ALICE, name: 'alice', domain: { id: 'default', name: 'Default' }, password_expires_at: null });
      assert.deepEqual(t.project, { id: P_DEMO, name: 'demo', domain: { id: 'default', name: 'Default' } });
      assert.deepEqual(t.roles, [{ id: roleId('member'), name: 'member' }]);
      assert.equal(t.issued_at, formatKeystoneTime(clock.now()));
      assert.equal(t.expires_at, formatKeystoneTime(clock.now() + 3600_000));
      assert.match(t.expires_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.equal(t.audit_ids.length, 1);
      assert.equal(t.is_domain, false);
      const wl = t.catalog!.find((c) => c.type === 'workloads')!;
      assert.equal(wl.name, 'TrilioVaultWLM');
      assert.deepEqual(
        wl.endpoints.map((e) => [e.interface, e.url]),
        ['public', 'internal', 'admin'].map((i) => [i, `http://lb.test:8780/v1/${P_DEMO}`]),
      );
      const ks = t.catalog!.find((c) => c.type === 'identity')!;
      assert.equal(ks.name, 'keystone');
      assert.equal(ks.endpoints[0]!.url, 'http://lb.test:8780/identity/v3');

      const ctx = await idp.validate(token, 'req-1');
      assert.deepEqual(ctx, { requestId: 'req-1', userId: U_ALICE, userName: 'alice', projectId: P_DEMO, projectName: 'demo', roles: ['member'], isAdmin: false });
    });

    it('password by user id, scope by project id', async () => {
      const idp = make(new ManualClock());
      const { token, body } = await idp.authenticate({
        auth: { identity: { methods: ['password'], password: { user: { id: U_ALICE, password: 'alice-pw' } } }, scope: { project: { id: P_OTHER } } },
      });
      assert.equal(body.token.project?.name, 'other');
      assert.deepEqual((await idp.validate(token, 'r')).roles, ['backup']);
    });

    it('admin on any project is admin everywhere: the admin role rides on every token', async () => {
      const idp = make(new ManualClock());
      const { token, body } = await idp.authenticate(passwordAuth('root', 'root-pw', 'demo'));
      assert.deepEqual(body.token.roles?.map((r) => r.name), ['member', 'admin']);
      const ctx = await idp.validate(token, 'r');
      assert.equal(ctx.isAdmin, true);
      assert.equal(ctx.userId, U_ROOT);
      assert.equal(ctx.projectId, P_DEMO);
    });

    it('refuses bad credentials, missing or foreign scope, unsupported methods (401)', async () => {
      const idp = make(new ManualClock());
      await assert.rejects(idp.authenticate(passwordAuth('alice', 'wrong', 'demo')), isUnauth);
      await assert.rejects(idp.authenticate(passwordAuth('mallory', 'alice-pw', 'demo')), isUnauth);
      await assert.rejects(idp.authenticate(passwordAuth('alice', 'alice-pw', null)), isUnauth, 'unscoped');
      await assert.rejects(idp.authenticate(passwordAuth('alice', 'alice-pw', 'admin')), isUnauth, 'no role on admin');
      await assert.rejects(idp.authenticate(passwordAuth('nobody', 'nobody-pw', 'demo')), isUnauth);
      await assert.rejects(idp.authenticate(passwordAuth('alice', 'alice-pw', 'no-such-project')), isUnauth);
      await assert.rejects(
        idp.authenticate({ auth: { identity: { methods: ['password'], password: { user: { name: 'alice', domain: { name: 'Elsewhere' }, password: 'alice-pw' } } }, scope: { project: { id: P_DEMO } } } }),
        isUnauth,
        'user in another domain',
      );
      await assert.rejects(
        idp.authenticate({ auth: { identity: { methods: ['totp'], totp: {} }, scope: { project: { id: P_DEMO } } } }),
        isUnauth,
      );
      await assert.rejects(
        idp.authenticate({ auth: { identity: { methods: ['password'], password: { user: { id: U_ALICE, password: 'alice-pw' } } }, scope: { domain: { id: 'default' } } } }),
        isUnauth,
        'domain scope',
      );
    });

    it('malformed bodies are ValidationErrors (400), naming the field', async () => {
      const idp = make(new ManualClock());
      await assert.rejects(idp.authenticate(null), isValidation);
      await assert.rejects(idp.authenticate({ auth: {} }), /auth\.identity/);
      await assert.rejects(idp.authenticate({ auth: { identity: { methods: 'password' } } }), /auth\.identity\.methods/);
      await assert.rejects(idp.authenticate({ auth: { identity: { methods: ['password'], password: { user: { name: 'alice', password: 'alice-pw' } } } } }), /user\.domain': required/);
      await assert.rejects(idp.authenticate({ auth: { identity: { methods: ['password'], password: { user: { name: 'alice', domain: {}, password: 'x' } } } } }), isValidation);
      await assert.rejects(idp.authenticate({ auth: { identity: { methods: ['password'], password: { user: { id: U_ALICE, password: 5 } } } } }), /user\.password/);
      await assert.rejects(
        idp.authenticate({ auth: { identity: { methods: ['password'], password: { user: { id: U_ALICE, password: 'alice-pw' } } }, scope: { project: { name: 'demo' } } } }),
        /scope\.project\.domain/,
      );
    });

    it('stores only the sha256 of the token', async () => {
      const idp = make(new ManualClock());
      const { token } = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      const rows = await h.db.selectFrom('tokens').selectAll().execute();
      const row = rows.find((r) => r.id_hash === hashToken(token));
      assert.ok(row, 'row keyed by the hash');
      for (const r of rows) assert.ok(!JSON.stringify(r).includes(token), 'raw token must not be stored');
      assert.match(row.id_hash, /^[0-9a-f]{64}$/);
    });

    it('expiry (ManualClock): invalid from expires_at on, even while cached', async () => {
      const clock = new ManualClock();
      // Cache window longer than the token's life: the cache must still stop at expires_at.
      const idp = make(clock, { tokenTtlSeconds: 5, cacheWindowMs: 60_000 });
      const { token } = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      await idp.validate(token, 'r');
      clock.advance(4999);
      await idp.validate(token, 'r');
      await idp.inspect(token, ALICE);
      clock.advance(1);
      await assert.rejects(idp.validate(token, 'r'), isUnauth);
      await assert.rejects(idp.inspect(token, ALICE), isNotFound);
      await assert.rejects(idp.revoke(token, ALICE), isNotFound);
    });

    it('validate rejects missing and unknown tokens', async () => {
      const idp = make(new ManualClock());
      await assert.rejects(idp.validate(undefined, 'r'), isUnauth);
      await assert.rejects(idp.validate('', 'r'), isUnauth);
      await assert.rejects(idp.validate('not-a-token', 'r'), isUnauth);
      await assert.rejects(idp.inspect('not-a-token', ALICE), isNotFound);
    });

    it('revocation in this process is immediate; revoking twice is 404', async () => {
      const idp = make(new ManualClock(), { cacheWindowMs: 60_000 });
      const { token } = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      await idp.validate(token, 'r'); // now cached
      await idp.revoke(token, ALICE);
      await assert.rejects(idp.validate(token, 'r'), isUnauth);
      await assert.rejects(idp.inspect(token, ALICE), isNotFound);
      await assert.rejects(idp.revoke(token, ALICE), isNotFound);
    });

    it('cross-process: another instance over the same store validates, and sees revocation within its cache window', async () => {
      const clock = new ManualClock();
      const a = make(clock, { cacheWindowMs: 2000 });
      const b = make(clock, { cacheWindowMs: 2000 });
      const { token } = await a.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      assert.equal((await b.validate(token, 'r')).projectId, P_DEMO);
      await a.revoke(token, ALICE);
      // b still holds its positive cache entry: that is the documented window...
      await b.validate(token, 'r');
      await assert.rejects(b.inspect(token, ALICE), isNotFound, 'inspect is never cached');
      // ...and no longer.
      clock.advance(2000);
      await assert.rejects(b.validate(token, 'r'), isUnauth);
    });

    it('token method re-scopes, keeping the original expiry and audit chain', async () => {
      const clock = new ManualClock();
      const idp = make(clock);
      const first = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      clock.advance(600_000);
      const second = await idp.authenticate({ auth: { identity: { methods: ['token'], token: { id: first.token } }, scope: { project: { id: P_OTHER } } } });
      assert.notEqual(second.token, first.token);
      assert.deepEqual(second.body.token.methods, ['token']);
      assert.equal(second.body.token.project?.id, P_OTHER);
      assert.equal(second.body.token.expires_at, first.body.token.expires_at);
      assert.deepEqual(second.body.token.audit_ids.slice(1), first.body.token.audit_ids);
      assert.deepEqual((await idp.validate(second.token, 'r')).roles, ['backup']);
      // No role on admin; a revoked source token cannot be re-scoped.
      await assert.rejects(idp.authenticate({ auth: { identity: { methods: ['token'], token: { id: first.token } }, scope: { project: { id: P_ADMIN } } } }), isUnauth);
      await idp.revoke(first.token, ALICE);
      await assert.rejects(idp.authenticate({ auth: { identity: { methods: ['token'], token: { id: first.token } }, scope: { project: { id: P_DEMO } } } }), isUnauth);
    });

    it('purgeExpired deletes expired rows only', async () => {
      const clock = new ManualClock(Date.UTC(2030, 0, 1));
      const idp = make(clock, { tokenTtlSeconds: 10 });
      const old = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      clock.advance(11_000);
      const fresh = await idp.authenticate(passwordAuth('alice', 'alice-pw', 'demo'));
      assert.ok((await idp.purgeExpired()) >= 1);
      const hashes = (await h.db.selectFrom('tokens').select('id_hash').execute()).map((r) => r.id_hash);
      assert.ok(!hashes.includes(hashToken(old.token)));
      assert.ok(hashes.includes(hashToken(fresh.token)));
    });
  });
}
