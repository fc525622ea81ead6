import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { EmbeddedIdentity } from '../identity/embedded-identity.js';
import { KeystoneValidator } from '../identity/keystone-validator.js';
import { P_DEMO, U_ALICE, identityStoreKinds as storeKinds, passwordAuth, revokeAllTokensOf, testIdentity, type StoreHandle } from '../identity/testing.js';
import { ManualClock, type Clock } from '../lib/clock.js';
import { UnauthenticatedError, UnavailableError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { installFaultHandling } from './faults.js';
import { identityRoutes } from './identity.routes.js';

const PUBLIC = 'http://lb.test:8780';
const KEYSTONE_401 = { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } };

async function buildApp(
  h: StoreHandle,
  clock: Clock,
  publicUrl = PUBLIC,
  ttl = 3600,
  onRequest?: (method: string) => void,
): Promise<{ app: FastifyInstance; idp: EmbeddedIdentity }> {
  const idp = new EmbeddedIdentity({ db: h.db, identity: testIdentity(), publicUrl, clock, tokenTtlSeconds: ttl });
  const app = Fastify();
  if (onRequest) app.addHook('onRequest', async (req) => onRequest(req.method));
  installFaultHandling(app, { log: silentLogger, keystoneUri: `${publicUrl}/identity/v3` });
  await app.register(identityRoutes, { prefix: '/identity', identity: idp });
  await app.ready();
  return { app, idp };
}

async function login(app: FastifyInstance, user = 'alice', pw = 'alice-pw', project = 'demo'): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth(user, pw, project) });
  assert.equal(r.statusCode, 201, r.body);
  return String(r.headers['x-subject-token']);
}

for (const kind of storeKinds()) {
  describe(`identity routes (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let app: FastifyInstance;
    before(async () => {
      h = await kind.open();
      ({ app } = await buildApp(h, new ManualClock()));
    });
    after(async () => {
      await app.close();
      await h.close();
    });

    it('version discovery at /identity (300, Keystone style) and /identity/v3', async () => {
      for (const url of ['/identity', '/identity/']) {
        const r = await app.inject({ method: 'GET', url });
        assert.equal(r.statusCode, 300, url);
        const v = r.json().versions.values;
        assert.equal(v.length, 1);
        assert.equal(v[0].id, 'v3.14');
        assert.equal(v[0].status, 'stable');
        assert.deepEqual(v[0].links, [{ rel: 'self', href: `${PUBLIC}/identity/v3/` }]);
        assert.deepEqual(v[0]['media-types'], [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }]);
      }
      for (const url of ['/identity/v3', '/identity/v3/']) {
        const r = await app.inject({ method: 'GET', url });
        assert.equal(r.statusCode, 200, url);
        assert.equal(r.json().version.id, 'v3.14');
        assert.equal(r.json().version.links[0].href, `${PUBLIC}/identity/v3/`);
      }
    });

    it('POST /v3/auth/tokens → 201, token only in X-Subject-Token, Keystone body with catalog', async () => {
      const r = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth('alice', 'alice-pw', 'demo') });
      assert.equal(r.statusCode, 201);
      const token = r.headers['x-subject-token'];
      assert.equal(typeof token, 'string');
      assert.ok(!r.body.includes(String(token)), 'token is not in the body');
      const t = r.json().token;
      assert.deepEqual(Object.keys(t).sort(), ['audit_ids', 'catalog', 'expires_at', 'is_domain', 'issued_at', 'methods', 'project', 'roles', 'user']);
      assert.equal(t.user.id, U_ALICE);
      assert.deepEqual(t.user.domain, { id: 'default', name: 'Default' });
      assert.equal(t.project.id, P_DEMO);
      const wl = t.catalog.find((c: { type: string }) => c.type === 'workloads');
      assert.ok(wl.endpoints.some((e: { interface: string; url: string }) => e.interface === 'public' && e.url === `${PUBLIC}/v1/${P_DEMO}`));
    });

    it('wrong password / unknown user → 401 with Keystone body and WWW-Authenticate', async () => {
      for (const [u, pw] of [
        ['alice', 'nope'],
        ['mallory', 'x'],
      ] as const) {
        const r = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth(u, pw, 'demo') });
        assert.equal(r.statusCode, 401);
        assert.deepEqual(r.json(), KEYSTONE_401);
        assert.equal(r.headers['www-authenticate'], `Keystone uri="${PUBLIC}/identity/v3"`);
        assert.equal(r.headers['x-subject-token'], undefined);
      }
      const noRole = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth('alice', 'alice-pw', 'admin') });
      assert.equal(noRole.statusCode, 401);
      const unscoped = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth('alice', 'alice-pw', null) });
      assert.equal(unscoped.statusCode, 401);
    });

    it('malformed bodies → 400 badRequest', async () => {
      const bad = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', headers: { 'content-type': 'application/json' }, payload: '{"auth": ' });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json().badRequest.code, 400);
      const shape = await app.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: { auth: { identity: { methods: ['password'], password: {} } } } });
      assert.equal(shape.statusCode, 400);
      assert.match(shape.json().badRequest.message, /auth\.identity\.password\.user/);
    });

    it('GET validates: needs X-Auth-Token; 200 echoes X-Subject-Token; invalid subject → 404', async () => {
      const mine = await login(app, 'root', 'root-pw', 'demo');
      const subject = await login(app, 'root', 'root-pw', 'admin');
      const ok = await app.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': subject } });
      assert.equal(ok.statusCode, 200);
      assert.equal(ok.headers['x-subject-token'], subject);
      assert.equal(ok.json().token.project.name, 'admin');
      assert.ok(ok.json().token.roles.some((r: { name: string }) => r.name === 'admin'));

      const noAuth = await app.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-subject-token': subject } });
      assert.equal(noAuth.statusCode, 401);
      assert.deepEqual(noAuth.json(), KEYSTONE_401);
      const badAuth = await app.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': 'garbage', 'x-subject-token': subject } });
      assert.equal(badAuth.statusCode, 401);

      const bogus = await app.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': 'garbage' } });
      assert.equal(bogus.statusCode, 404);
      assert.equal(bogus.json().itemNotFound.code, 404);
      const missing = await app.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine } });
      assert.equal(missing.statusCode, 404);
    });

    it("another user's token: GET, HEAD and DELETE → 403 (Keystone: owner, admin or service only); the admin may", async () => {
      const alice = await login(app);
      const root = await login(app, 'root', 'root-pw', 'admin');
      const as = (token: string, subject: string, method: 'GET' | 'HEAD' | 'DELETE') =>
        app.inject({ method, url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': token, 'x-subject-token': subject } });
      const get = await as(alice, root, 'GET');
      assert.equal(get.statusCode, 403);
      assert.deepEqual(get.json(), { forbidden: { code: 403, message: 'You are not authorized to perform the requested action: identity:validate_token.' } });
      const head = await as(alice, root, 'HEAD');
      assert.equal(head.statusCode, 403);
      assert.equal(head.body, '');
      assert.equal((await as(alice, root, 'DELETE')).statusCode, 403);
      assert.equal((await as(root, root, 'GET')).statusCode, 200, 'root still holds a valid token');
      assert.equal((await as(root, alice, 'GET')).statusCode, 200, 'an admin may inspect any token');
      assert.equal((await as(root, alice, 'DELETE')).statusCode, 204, 'and revoke it');
      assert.equal((await as(root, alice, 'GET')).statusCode, 404);
    });

    it('HEAD → 200/404 without body; DELETE → 204, then the token is gone', async () => {
      const mine = await login(app);
      const subject = await login(app);
      const head = await app.inject({ method: 'HEAD', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': subject } });
      assert.equal(head.statusCode, 200);
      assert.equal(head.body, '');
      const headBad = await app.inject({ method: 'HEAD', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': 'nope' } });
      assert.equal(headBad.statusCode, 404);
      assert.equal(headBad.body, '');

      const del = await app.inject({ method: 'DELETE', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': subject } });
      assert.equal(del.statusCode, 204);
      assert.equal(del.body, '');
      const after = await app.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': subject } });
      assert.equal(after.statusCode, 404);
      const again = await app.inject({ method: 'DELETE', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': subject } });
      assert.equal(again.statusCode, 404);
      // A revoked token cannot authorise either (self-revocation).
      const selfDel = await app.inject({ method: 'DELETE', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': mine } });
      assert.equal(selfDel.statusCode, 204);
      const dead = await app.inject({ method: 'HEAD', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': mine, 'x-subject-token': mine } });
      assert.equal(dead.statusCode, 401);
    });

    it('lockout per client address and issuance rate over HTTP: same 401 body; 429 overLimit with Retry-After', async () => {
      const idp = new EmbeddedIdentity({
        db: h.db,
        identity: testIdentity(),
        publicUrl: PUBLIC,
        clock: new ManualClock(),
        loginLimits: { userFailures: 0, addressFailures: 3, lockoutMs: 60_000, issuesPerMinute: 2 },
      });
      const app2 = Fastify();
      installFaultHandling(app2, { log: silentLogger, keystoneUri: `${PUBLIC}/identity/v3` });
      await app2.register(identityRoutes, { prefix: '/identity', identity: idp });
      try {
        const post = (user: string, pw: string, remoteAddress: string) =>
          app2.inject({ method: 'POST', url: '/identity/v3/auth/tokens', payload: passwordAuth(user, pw, 'demo'), remoteAddress });
        for (let i = 0; i < 3; i++) assert.equal((await post('alice', 'wrong', '203.0.113.5')).statusCode, 401);
        const locked = await post('root', 'root-pw', '203.0.113.5');
        assert.equal(locked.statusCode, 401);
        assert.deepEqual(locked.json(), KEYSTONE_401);
        assert.equal((await post('alice', 'alice-pw', '192.0.2.8')).statusCode, 201);
        assert.equal((await post('alice', 'alice-pw', '192.0.2.8')).statusCode, 201);
        const limited = await post('alice', 'alice-pw', '192.0.2.8');
        assert.equal(limited.statusCode, 429);
        assert.equal(limited.headers['retry-after'], '60');
        assert.equal(limited.json().overLimit.code, 429);
      } finally {
        await app2.close();
      }
    });

    it('expiry via ManualClock: validation answers 404 from expires_at on', async () => {
      const clock = new ManualClock();
      const { app: app2 } = await buildApp(h, clock, PUBLIC, 60);
      try {
        const auth = await login(app2);
        clock.advance(30_000);
        const subject = await login(app2); // expires 30 s after `auth`
        clock.advance(30_000); // `auth` has just expired
        const r = await app2.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': subject, 'x-subject-token': auth } });
        assert.equal(r.statusCode, 404);
        const r2 = await app2.inject({ method: 'GET', url: '/identity/v3/auth/tokens', headers: { 'x-auth-token': auth, 'x-subject-token': subject } });
        assert.equal(r2.statusCode, 401);
      } finally {
        await app2.close();
      }
    });
  });
}

describe('KeystoneValidator against the embedded identity on a real HTTP server', () => {
  const sqlite = storeKinds()[0]!;
  let h: StoreHandle;
  let server: FastifyInstance;
  let idp: EmbeddedIdentity;
  let keystoneUrl: string;
  const clock = new ManualClock();
  const calls = { post: 0, get: 0 };

  before(async () => {
    h = await sqlite.open();
    const built = await buildApp(h, clock, 'http://127.0.0.1:0', 3600, (method) => {
      if (method === 'POST') calls.post++;
      if (method === 'GET') calls.get++;
    });
    server = built.app;
    idp = built.idp;
    const addr = await server.listen({ host: '127.0.0.1', port: 0 });
    keystoneUrl = `${addr}/identity`;
  });
  after(async () => {
    await server.close();
    await h.close();
  });

  const validator = (over: Partial<ConstructorParameters<typeof KeystoneValidator>[0]> = {}) =>
    new KeystoneValidator({ url: keystoneUrl, username: 'root', password: 'root-pw', projectName: 'admin', clock, timeoutMs: 2000, ...over });

  async function userToken(user = 'alice', pw = 'alice-pw', project = 'demo'): Promise<string> {
    return (await idp.authenticate(passwordAuth(user, pw, project))).token;
  }

  it('valid token → context (roles by name, isAdmin only with admin); one service login, cache hits', async () => {
    const v = validator();
    const t = await userToken();
    calls.post = 0;
    calls.get = 0;
    const ctx = await v.validate(t, 'req-x');
    assert.deepEqual(ctx, { requestId: 'req-x', userId: U_ALICE, userName: 'alice', projectId: P_DEMO, projectName: 'demo', roles: ['member'], isAdmin: false });
    assert.deepEqual(calls, { post: 1, get: 1 });
    assert.equal((await v.validate(t, 'req-y')).requestId, 'req-y');
    assert.deepEqual(calls, { post: 1, get: 1 }, 'second validation from the cache');
    const t2 = await userToken('root', 'root-pw', 'demo');
    assert.equal((await v.validate(t2, 'r')).isAdmin, true);
    assert.deepEqual(calls, { post: 1, get: 2 }, 'service token reused');
  });

  it('unknown and revoked tokens → UnauthenticatedError', async () => {
    const v = validator();
    await assert.rejects(v.validate('no-such-token', 'r'), (e: unknown) => e instanceof UnauthenticatedError);
    const t = await userToken();
    await idp.revoke(t, { userId: U_ALICE, roles: ['member'], isAdmin: false });
    await assert.rejects(v.validate(t, 'r'), (e: unknown) => e instanceof UnauthenticatedError);
  });

  it('expired token (ManualClock) → UnauthenticatedError; the cache never outlives expires_at', async () => {
    const v = validator({ cacheTtlMs: 300_000 });
    const t = await userToken(); // expires in 3600 s
    await v.validate(t, 'r');
    clock.advance(3599_000);
    calls.get = 0;
    await v.validate(t, 'r');
    assert.equal(calls.get, 1, 'cache window (300 s) elapsed, so Keystone was asked again');
    await v.validate(t, 'r');
    assert.equal(calls.get, 1, 'cached again, but only until expires_at');
    clock.advance(1000); // now == expires_at
    await assert.rejects(v.validate(t, 'r'), (e: unknown) => e instanceof UnauthenticatedError);
    assert.equal(calls.get, 2, 'expired cache entry not served');
  });

  it('re-authenticates the service token when it expires', async () => {
    const v = validator();
    await v.validate(await userToken(), 'r');
    calls.post = 0;
    clock.advance(3600_000); // the service token (3600 s) has expired
    await v.validate(await userToken(), 'r');
    assert.equal(calls.post, 1);
  });

  it('recovers once when Keystone revokes the service token behind its back', async () => {
    const v = validator();
    await v.validate(await userToken(), 'r');
    // Revoke every token of the service user (root on admin) directly in the store.
    // Revoked by "another Keystone process": the serving instance notices after its cache window.
    await revokeAllTokensOf(h.db, 'root');
    clock.advance(2000);
    calls.post = 0;
    const ctx = await v.validate(await userToken(), 'r');
    assert.equal(ctx.userName, 'alice');
    assert.equal(calls.post, 1, 'one fresh service login after the 401');
  });

  it('wrong service credentials → UnavailableError (an operator problem, not a 401)', async () => {
    const v = validator({ password: 'wrong' });
    await assert.rejects(v.validate(await userToken(), 'r'), (e: unknown) => e instanceof UnavailableError);
  });

  it('Keystone down (closed port) → UnavailableError; cached tokens keep working until their window ends', async () => {
    const s2 = await buildApp(h, clock, 'http://127.0.0.1:0', 3600);
    const addr = await s2.app.listen({ host: '127.0.0.1', port: 0 });
    const v = validator({ url: `${addr}/identity/v3`, retries: 0 });
    const cached = await userToken();
    await v.validate(cached, 'r');
    await s2.app.close(); // Keystone goes away
    await v.validate(cached, 'r');
    await assert.rejects(v.validate(await userToken(), 'r'), (e: unknown) => e instanceof UnavailableError);
  });
});
