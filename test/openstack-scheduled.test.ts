import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler } from '../src/jobs/scheduler.js';
import { ManualClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { TargetCatalog } from '../src/lib/target.js';
import { waitFor } from '../src/lib/testing.js';
import { OsFixture, openstackSkip, pollFor, startOsLifeboat, tokenOf, workloadBody, OS_AUTH_URL, type OsLifeboat, type OsProject, type OsUser } from './openstack.js';

/**
 * Acceptance 3 of issue 12 on the loopback stack: scheduled snapshots act for the workload's
 * owner through a Keystone trust, with a new trust-scoped token per run. The owner's token is
 * revoked before the run (Lifeboat never kept it); the run still succeeds. Then the trust is
 * deleted in Keystone: the workload detail says so, and the next scheduled run fails with an
 * error naming the missing trust and how to make one (not a silent skip).
 *
 * The scheduled slots are reached with a manual clock driving a second Scheduler over the same
 * database (the schedule starts tomorrow, so the service's own scheduler never fires it).
 */
const skip = await openstackSkip();

let f: OsFixture;
let os: OsLifeboat;
let p1: OsProject;
let owner: OsUser;
let server: string;

before(async () => {
  if (skip) return;
  f = new OsFixture();
  const svc = await f.serviceUser();
  p1 = await f.project('sched');
  owner = await f.user('owner', p1, ['member']);
  const ops = f.sessionOf(await f.user('ops', p1, ['admin', 'member']), p1);
  const image = await f.image(Buffer.alloc(1 << 20, 0x6b));
  const flavor = await f.flavor();
  const booted = await f.activeServer(ops, {
    name: 'sched',
    flavorRef: flavor.id,
    networks: 'none',
    availability_zone: 'nova:oib-compute',
    block_device_mapping_v2: [{ boot_index: 0, uuid: image, source_type: 'image', destination_type: 'volume', volume_size: 1, delete_on_termination: true }],
  });
  server = booted.id;
  os = await startOsLifeboat(svc);
});

after(async () => {
  if (skip) return;
  await os?.close();
  assert.deepEqual(await f.cleanup(), []);
});

/** Revokes a Keystone token (as an admin) and checks Keystone no longer accepts it. */
async function revoke(token: string): Promise<void> {
  await f.admin.call('identity', 'DELETE', '/auth/tokens', { headers: { 'x-subject-token': token }, expect: [204] });
  const admin = (await f.admin.tokenInfo()).token;
  const r = await fetch(`${OS_AUTH_URL}/auth/tokens`, { headers: { 'x-auth-token': admin, 'x-subject-token': token } });
  await r.body?.cancel();
  assert.equal(r.status, 404, 'the owner\'s token is revoked');
}

test('scheduled snapshots run on a new trust-scoped token after the owner\'s token is revoked; a gone trust fails the next run clearly', { skip }, async () => {
  let token = await tokenOf(owner, p1);
  const trust = await os.api(token, 'POST', `/v1/${p1.id}/trusts`, { trusts: { role_name: 'member', is_cloud_trust: false } });
  assert.equal(trust.status, 200, JSON.stringify(trust.json));
  const trustName = trust.json.trust[0].name as string;
  const trustId = trust.json.trust[0].value as string;
  f.onCleanup('trust', async () => void (await f.admin.call('identity', 'DELETE', `/OS-TRUST/trusts/${trustId}`, { expect: [204, 404] })));

  const tomorrow = new Date(Date.now() + 86_400_000);
  const startDate = `${String(tomorrow.getUTCMonth() + 1).padStart(2, '0')}/${String(tomorrow.getUTCDate()).padStart(2, '0')}/${tomorrow.getUTCFullYear()}`;
  const firstSlot = Date.UTC(tomorrow.getUTCFullYear(), tomorrow.getUTCMonth(), tomorrow.getUTCDate(), 10, 0, 0);
  const body = workloadBody([server]);
  body.workload.jobschedule = { start_date: startDate, start_time: '10:00 AM', interval: '1 hrs', enabled: true, timezone: 'UTC', retention_policy_type: 'Number of Snapshots to Keep', retention_policy_value: '5' } as never;
  const made = await os.api(token, 'POST', `/v1/${p1.id}/workloads`, body);
  assert.equal(made.status, 202, JSON.stringify(made.json));
  const wid = made.json.workload.id as string;
  await waitFor(async () => (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload.status === 'available', 120_000, 'workload available');
  const detail = (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload;
  assert.deepEqual(detail.scheduler_trust, { scheduler_enabled: true, trust: { name: trustName, role_name: 'member', user_id: owner.id }, is_valid: true });

  // The owner's token is gone; Lifeboat never stored it.
  await revoke(token);

  const clock = new ManualClock(firstSlot - 60_000);
  const scheduler = new Scheduler({ db: os.lb.store.db, clock, log: silentLogger, targets: TargetCatalog.of(os.config.targets, os.config.defaultTarget), onQueued: () => os.lb.runner?.poke() });
  await scheduler.tick(); // plans the first slot (unless the service's scheduler already did)
  clock.set(firstSlot + 1000);
  const first = (await scheduler.tick()).outcomes.find((o) => o.workloadId === wid);
  assert.equal(first?.kind, 'fired', JSON.stringify(first));
  const sid1 = (first as { snapshotId: string }).snapshotId;
  token = await tokenOf(owner, p1); // only to read the results
  const snap1 = await pollFor(async () => {
    const x = (await os.api(token, 'GET', `/v1/${p1.id}/snapshots/${sid1}`)).json.snapshot;
    return ['available', 'error'].includes(x.status) ? x : null;
  }, 900_000, 'first scheduled snapshot');
  assert.equal(snap1.status, 'available', snap1.error_msg);
  assert.equal(snap1.name, 'jobscheduler');

  // The trust is deleted in Keystone behind Lifeboat's back.
  await f.admin.call('identity', 'DELETE', `/OS-TRUST/trusts/${trustId}`, { expect: [204] });
  const after = (await os.api(token, 'GET', `/v1/${p1.id}/workloads/${wid}`)).json.workload;
  assert.equal(after.scheduler_trust.is_valid, false);

  clock.set(firstSlot + 3_600_000 + 1000);
  const second = (await scheduler.tick()).outcomes.find((o) => o.workloadId === wid);
  assert.equal(second?.kind, 'fired', JSON.stringify(second));
  const sid2 = (second as { snapshotId: string }).snapshotId;
  const snap2 = await pollFor(async () => {
    const x = (await os.api(token, 'GET', `/v1/${p1.id}/snapshots/${sid2}`)).json.snapshot;
    return ['available', 'error'].includes(x.status) ? x : null;
  }, 300_000, 'second scheduled snapshot');
  assert.equal(snap2.status, 'error');
  assert.match(snap2.error_msg, /Scheduled snapshots act for the workload's owner .* through a Keystone trust .* has none on project .*POST \/trusts/);
  await scheduler.stop();
  assert.equal((await os.api(token, 'DELETE', `/v1/${p1.id}/trusts/${trustName}`)).status, 200);
});
