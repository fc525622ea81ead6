import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/lib/clock.js';
import { freePort } from '../src/lib/testing.js';
import { OpenStackError } from '../src/openstack/errors.js';
import { OpenStackSession } from '../src/openstack/session.js';
import { OS_AUTH_URL, OS_PASSWORD, OsFixture, openstackSkip, passwordSession } from './openstack.js';

/**
 * The OpenStack REST client against the real loopback stack's Keystone, Nova and Glance:
 * catalog endpoints, pinned microversions, request ids in errors, no secrets in errors,
 * token renewal before expiry and after revocation, bounded retries on a dead endpoint.
 */
const skip = await openstackSkip();

test('catalog endpoints and the pinned compute microversion', { skip }, async () => {
  const s = passwordSession('admin', OS_PASSWORD, 'admin');
  assert.equal(await s.endpoint('compute'), 'http://127.0.0.1:8774/v2.1');
  assert.equal(await s.endpoint('image'), 'http://127.0.0.1:9292/v2');
  assert.equal(await s.endpoint('network'), 'http://127.0.0.1:9696/v2.0');
  assert.match(await s.endpoint('volumev3'), /^http:\/\/127\.0\.0\.1:8776\/v3\/[0-9a-f]{32}$/);
  const r = await s.call('compute', 'GET', '/servers?limit=1');
  assert.equal(r.headers.get('openstack-api-version'), 'compute 2.79');
  assert.match(r.requestId ?? '', /^req-[0-9a-f-]{36}$/);
  const v = await s.call('volumev3', 'GET', '/volumes?limit=1');
  assert.equal(v.headers.get('openstack-api-version'), 'volume 3.60');
});

test('a wrong region is refused naming the setting to fix', { skip }, async () => {
  const s = passwordSession('admin', OS_PASSWORD, 'admin', { region: 'Nowhere' });
  await assert.rejects(s.endpoint('compute'), /no public endpoint of compute in region Nowhere.*LIFEBOAT_OS_REGION/);
});

test('a failing call names the service, the call and its request id; never the token', { skip }, async () => {
  const s = passwordSession('admin', OS_PASSWORD, 'admin');
  const token = (await s.tokenInfo()).token;
  const e = await s.call('compute', 'GET', '/servers/00000000-0000-4000-8000-000000000000').then(
    () => assert.fail('expected a 404'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof OpenStackError);
  assert.equal(e.status, 404);
  assert.equal(e.kind, 'not-found');
  assert.match(e.message, /^Nova GET \/servers\/00000000-0000-4000-8000-000000000000 failed: HTTP 404: .*could not be found.*\(request id req-[0-9a-f-]{36}\)$/);
  assert.ok(!e.message.includes(token));
});

test('bad service credentials: Keystone named with its request id, the password never shown', { skip }, async () => {
  const s = passwordSession('admin', 'not-the-password-xyz', 'admin');
  await assert.rejects(s.tokenInfo(), (e: unknown) => {
    assert.ok(e instanceof OpenStackError);
    assert.equal(e.status, 401);
    assert.match(e.message, /^Keystone POST \/auth\/tokens failed: HTTP 401.*\(request id req-/);
    assert.ok(!e.message.includes('not-the-password-xyz'));
    return true;
  });
});

test('the token is renewed before it expires, and after Keystone revokes it', { skip }, async () => {
  const clock = new ManualClock(Date.now());
  const s = new OpenStackSession({
    authUrl: OS_AUTH_URL,
    auth: { kind: 'password', username: 'admin', password: OS_PASSWORD, userDomainName: 'Default', projectName: 'admin', projectDomainName: 'Default' },
    interface: 'public',
    region: 'RegionOne',
    clock,
  });
  const first = await s.tokenInfo();
  assert.ok(first.expiresAt - first.refreshAt >= 60_000, 'renewal starts well before expiry');
  assert.equal((await s.tokenInfo()).token, first.token, 'reused while fresh');
  clock.set(first.refreshAt + 1);
  const second = await s.tokenInfo();
  assert.notEqual(second.token, first.token);
  // Revoke the current token behind the session's back: the next call gets 401, re-authenticates once and succeeds.
  const admin = passwordSession('admin', OS_PASSWORD, 'admin');
  await admin.call('identity', 'DELETE', '/auth/tokens', { headers: { 'x-subject-token': second.token } });
  const r = await s.call('compute', 'GET', '/flavors?limit=1');
  assert.equal(r.status, 200);
  assert.notEqual((await s.tokenInfo()).token, second.token);
});

test('an endpoint that does not answer: bounded retries, then an error naming the call', { skip }, async () => {
  const port = await freePort();
  const s = new OpenStackSession({
    authUrl: `http://127.0.0.1:${port}/v3`,
    auth: { kind: 'password', username: 'x', password: 'secret-never-shown', userDomainName: 'Default', projectName: 'x', projectDomainName: 'Default' },
    interface: 'public',
    region: null,
    retries: 2,
  });
  const t0 = Date.now();
  await assert.rejects(s.tokenInfo(), (e: unknown) => {
    assert.ok(e instanceof OpenStackError);
    assert.equal(e.status, 0);
    assert.match(e.message, /^Keystone POST \/auth\/tokens failed: no answer: ECONNREFUSED$/);
    return true;
  });
  // two retry pauses (1 s + 2 s: openstack/wait.ts retryPause) prove the retries happened
  assert.ok(Date.now() - t0 >= 2900);
});

test('fixture users get the roles they are given (admin, member, reader)', { skip }, async () => {
  const f = new OsFixture();
  try {
    const p = await f.project('roles');
    const reader = await f.user('reader', p, ['reader']);
    const t = await f.sessionOf(reader, p).tokenInfo();
    assert.equal(t.projectId, p.id);
    assert.deepEqual(t.roles, ['reader']);
  } finally {
    assert.deepEqual(await f.cleanup(), []);
  }
});
