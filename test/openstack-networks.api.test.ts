import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { OsFixture, openstackSkip, startOsLifeboat, tokenOf, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * The restore wizard's network targets on OpenStack (issue 16): GET /platform/networks lists
 * the Neutron networks a server of the caller's project can be plugged into — the project's
 * own and the shared ones, each with its subnets — and never another project's private network.
 * Against the loopback stack; only networks, no servers (cheap on the shared stack).
 */
const skip = await openstackSkip();

interface World {
  f: OsFixture;
  os: OsLifeboat;
  p1: OsProject;
  p2: OsProject;
  member1: OsUser;
  member2: OsUser;
  net1: string;
  net1Subnets: string[];
  net2: string;
  shared: string;
}
let w: World;

before(async () => {
  if (skip) return;
  const f = new OsFixture();
  try {
    const svc = await f.serviceUser();
    const p1 = await f.project('p1');
    const p2 = await f.project('p2');
    const member1 = await f.user('member1', p1, ['member']);
    const member2 = await f.user('member2', p2, ['member']);
    const s1 = f.sessionOf(member1, p1);
    const net1 = await f.network(s1, 'net1', '10.93.0.0/24');
    const second = await f.create<{ id: string }>(s1, 'network', '/subnets', 'subnet', { name: f.name('net1-second'), network_id: net1.id, cidr: '10.93.1.0/24', ip_version: 4 });
    const net2 = await f.network(f.sessionOf(member2, p2), 'net2', '10.94.0.0/24');
    const shared = await f.create<{ id: string }>(f.admin, 'network', '/networks', 'network', { name: f.name('shared'), shared: true });
    const os = await startOsLifeboat(svc);
    w = { f, os, p1, p2, member1, member2, net1: net1.id, net1Subnets: [net1.subnetId, second.id], net2: net2.id, shared: shared.id };
  } catch (e) {
    await f.cleanup();
    throw e;
  }
});

after(async () => {
  if (!w) return;
  await w.os.close();
  assert.deepEqual(await w.f.cleanup(), []);
});

interface Net {
  id: string;
  name: string;
  shared: boolean;
  active: boolean;
  subnets: { id: string; name: string; cidr: string }[];
}

test("a project sees its own networks with their subnets and the shared ones, never another project's", { skip }, async () => {
  const { os, f, p1, p2 } = w;
  const list = async (u: OsUser, p: OsProject) => {
    const r = await os.api(await tokenOf(u, p), 'GET', `/v1/${p.id}/platform/networks`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.networks as Net[];
  };
  const mine = await list(w.member1, p1);
  const ours = (nets: Net[]) => nets.filter((n) => n.name.startsWith(f.run));
  assert.deepEqual(
    ours(mine).map((n) => n.id),
    [w.net1, w.shared],
    'net1 and the shared network, sorted by name',
  );
  const n1 = mine.find((n) => n.id === w.net1)!;
  assert.equal(n1.shared, false);
  assert.equal(n1.active, true);
  assert.deepEqual(n1.subnets, [
    { id: w.net1Subnets[0], name: f.name('net1-subnet'), cidr: '10.93.0.0/24' },
    { id: w.net1Subnets[1], name: f.name('net1-second'), cidr: '10.93.1.0/24' },
  ]);
  assert.deepEqual(mine.find((n) => n.id === w.shared)?.shared, true);
  assert.ok(!mine.some((n) => n.id === w.net2), "p2's network is not listed for p1");
  // Every listed network (the stack's own too) is p1's or shared, as Neutron says.
  for (const n of mine) {
    const neutron = (await f.admin.call<{ network: { project_id: string; shared: boolean } }>('network', 'GET', `/networks/${n.id}`)).data.network;
    assert.ok(neutron.project_id === p1.id || neutron.shared, `${n.name} is p1's or shared`);
  }
  const theirs = await list(w.member2, p2);
  assert.deepEqual(ours(theirs).map((n) => n.id), [w.net2, w.shared]);
  // Another project's path is refused before anything is read.
  const other = await os.api(await tokenOf(w.member2, p2), 'GET', `/v1/${p1.id}/platform/networks`);
  assert.ok([400, 401, 403].includes(other.status), String(other.status));
  assert.ok(!JSON.stringify(other.json).includes(w.net1));
});
