import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenStackPlatform } from '../src/platform/openstack/openstack.platform.js';
import { runCli } from './cli-run.js';
import { OS_AUTH_URL, OsFixture, openstackSkip, startOsLifeboat, tokenOf, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * The vendor's /trusts API (tempest F22) on real Keystone trusts: a member delegates `member`
 * on their project to Lifeboat's service user; Lifeboat then gets a trust-scoped token for
 * that project (impersonating the member) that Nova accepts; delete removes the Keystone trust.
 */
const skip = await openstackSkip();

let f: OsFixture;
let os: OsLifeboat;
let svc: OsUser;
let p1: OsProject;
let p2: OsProject;
let member: OsUser;
let other: OsUser;

before(async () => {
  if (skip) return;
  f = new OsFixture();
  svc = await f.serviceUser();
  p1 = await f.project('tr1');
  p2 = await f.project('tr2');
  member = await f.user('member', p1, ['member']);
  other = await f.user('other', p2, ['member']);
  os = await startOsLifeboat(svc);
});

after(async () => {
  if (skip) return;
  await os?.close();
  assert.deepEqual(await f.cleanup(), []);
});

test('trusts: create, list, show, act through, delete — on real Keystone trusts', { skip }, async () => {
  const token = await tokenOf(member, p1);
  const made = await os.api(token, 'POST', `/v1/${p1.id}/trusts`, { trusts: { role_name: 'member', is_cloud_trust: false } });
  assert.equal(made.status, 200, JSON.stringify(made.json));
  const t = made.json.trust[0];
  assert.match(t.name, /^trust-[0-9a-f-]{36}$/);
  assert.equal(t.metadata[0].value, 'member');
  assert.equal(t.project_id, p1.id);
  assert.equal(t.user_id, member.id);
  f.onCleanup('trust', async () => void (await f.admin.call('identity', 'DELETE', `/OS-TRUST/trusts/${t.value}`, { expect: [204, 404] })));

  const kt = (await f.admin.call<{ trust: Record<string, unknown> }>('identity', 'GET', `/OS-TRUST/trusts/${t.value}`)).data.trust;
  assert.equal(kt.trustor_user_id, member.id);
  assert.equal(kt.trustee_user_id, svc.id);
  assert.equal(kt.project_id, p1.id);
  assert.equal(kt.impersonation, true);

  // Lifeboat acts in the member's project through the trust; Nova accepts the token.
  const platform = os.lb.platform as OpenStackPlatform;
  const session = platform.trusts.session(t.value);
  const info = await session.tokenInfo();
  assert.equal(info.projectId, p1.id);
  assert.equal(info.userId, member.id);
  assert.equal((await session.call('compute', 'GET', '/servers/detail')).status, 200);
  assert.equal(await platform.trusts.validate(t.value), true);

  const list = await os.api(token, 'GET', `/v1/${p1.id}/trusts`);
  assert.deepEqual(list.json.trust.map((x: { name: string }) => x.name), [t.name]);
  const shown = await os.api(token, 'GET', `/v1/${p1.id}/trusts/${t.name}`);
  assert.equal(shown.json.trust.value, t.value);
  const theirs = await os.api(await tokenOf(other, p2), 'GET', `/v1/${p2.id}/trusts/${t.name}`);
  assert.equal(theirs.status, 404);
  // Trusts are hidden settings: not in the plain settings list.
  assert.ok(!(await os.api(token, 'GET', `/v1/${p1.id}/settings`)).json.settings.some((s: { name: string }) => s.name === t.name));

  const admin = await os.api(token, 'POST', `/v1/${p1.id}/trusts`, { trusts: { role_name: 'admin', is_cloud_trust: false } });
  assert.equal(admin.status, 400);
  assert.match(admin.json.badRequest.message, /Keystone refused the trust for role\(s\) admin/);
  assert.equal((await os.api(token, 'POST', `/v1/${p1.id}/trusts`, { trusts: {} })).status, 400);

  assert.equal((await os.api(token, 'DELETE', `/v1/${p1.id}/trusts/${t.name}`)).status, 200);
  assert.equal((await f.admin.call('identity', 'GET', `/OS-TRUST/trusts/${t.value}`, { expect: [200, 404] })).status, 404);
  assert.equal(await platform.trusts.validate(t.value), false);
  assert.deepEqual((await os.api(token, 'GET', `/v1/${p1.id}/trusts`)).json.trust, []);
});

test('trust-create/-list/-show/-delete: the vendor CLI on real Keystone trusts', { skip }, async () => {
  const env = {
    OS_AUTH_URL,
    OS_USERNAME: member.name,
    OS_PASSWORD: member.password,
    OS_PROJECT_NAME: p1.name,
    OS_USER_DOMAIN_NAME: 'Default',
    OS_PROJECT_DOMAIN_NAME: 'Default',
    OS_WORKLOADS_URL: `${os.url}/v1/${p1.id}`,
  };
  const cli = (args: string[]) => runCli(env, args);
  const made = await cli(['trust-create', '-f', 'json', '--is_cloud_trust', 'False', 'member']);
  assert.equal(made.code, 0, made.stderr);
  const [row] = JSON.parse(made.stdout) as { TrustID: string; Value: string; Role: string }[];
  assert.match(row!.TrustID, /^trust-[0-9a-f-]{36}$/);
  assert.equal(row!.Role, 'member');
  f.onCleanup('cli trust', async () => void (await f.admin.call('identity', 'DELETE', `/OS-TRUST/trusts/${row!.Value}`, { expect: [204, 404] })));
  const listed = await cli(['trust-list', '-f', 'json']);
  assert.deepEqual((JSON.parse(listed.stdout) as { TrustID: string }[]).map((t) => t.TrustID), [row!.TrustID]);
  const shown = JSON.parse((await cli(['trust-show', '-f', 'json', row!.TrustID])).stdout);
  for (const k of ['version', 'user_id', 'project_id', 'name', 'value', 'description', 'status', 'metadata']) assert.ok(k in shown, `trust-show has ${k}`);
  assert.equal(shown.metadata[0].value, 'member');
  assert.equal(shown.user_id, member.id);
  const refused = await cli(['trust-create', 'admin']);
  assert.equal(refused.code, 5);
  assert.match(refused.stderr, /^ERROR: Keystone refused the trust for role\(s\) admin/);
  assert.equal((await cli(['trust-delete', row!.TrustID])).code, 0);
  assert.equal((await f.admin.call('identity', 'GET', `/OS-TRUST/trusts/${row!.Value}`, { expect: [200, 404] })).status, 404);
  const gone = await cli(['trust-show', row!.TrustID]);
  assert.equal(gone.code, 4);
  assert.equal((await cli(['trust-list', '-f', 'json'])).stdout.trim(), '[]');
});
