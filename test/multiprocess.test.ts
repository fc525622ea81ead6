import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { freshPrefix, startTestS3, testBackend, type TestS3 } from '../src/backend/s3/s3.testing.js';
import { freePort, mutateDisk, sha256File, waitFor } from './harness.js';
import { runLifeboat, signedInClient, startProcess, writeRandomDisk, writeTestIdentity, type LifeboatProcess, type ProcessApi as Api } from './process.js';

/**
 * Issue 14, the multi-process test: 2 API and 3 worker processes on one PostgreSQL (a schema of
 * its own) and one S3 target (s3rver). 20 workloads are snapshotted concurrently, full and then
 * incremental after their disks changed; mid-run one worker is killed with SIGKILL and another
 * stopped with SIGTERM. Then: every snapshot ended in exactly one terminal state, no job ran
 * twice, the killed worker's snapshots are errors and its SIGTERM'd peer's either finished or
 * were handed over ("service restarted"), no workload is left locked, every available snapshot
 * restores byte-exact, `repo verify` passes and GC leaves no unreferenced pack.
 */
const N = 20;
const DISK_MIB = 6;
const hex = () => randomBytes(16).toString('hex');
const pgUrl = process.env.LIFEBOAT_TEST_PG;
// Skipped locally without PostgreSQL; in CI the test runs (and fails) without it.
const skip = pgUrl || process.env.CI === 'true' ? false : 'LIFEBOAT_TEST_PG is not set: start PostgreSQL and set it to run the multi-process test';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The job lease of every process (LIFEBOAT_JOB_LEASE), short so that the killed worker's jobs expire within the test. */
const LEASE_S = 3;

describe('2 API + 3 worker processes on PostgreSQL and S3: 20 workloads, SIGKILL and SIGTERM mid-run', { skip }, () => {
  const schema = `mp_${hex().slice(0, 12)}`;
  let home: string;
  let s3: TestS3;
  let prefix: string;
  let env: Record<string, string>;
  let projectId: string;
  const vms: { id: string; disk: string }[] = [];
  const procs = new Map<string, LifeboatProcess>();
  let db: pg.Client;

  const sqlAdmin = async (text: string) => {
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };

  before(async () => {
    await sqlAdmin(`CREATE SCHEMA ${schema}`);
    const url = new URL(pgUrl!);
    url.searchParams.set('options', `-c search_path=${schema}`);
    db = new pg.Client({ connectionString: url.toString() });
    await db.connect();
    s3 = await startTestS3();
    prefix = freshPrefix(s3, 'multi');
    home = mkdtempSync(join(tmpdir(), 'lifeboat-multi-'));
    projectId = hex();
    writeTestIdentity(home, projectId);
    for (let i = 0; i < N; i++) {
      const disk = join(home, `vm${i}.raw`);
      writeRandomDisk(disk, DISK_MIB);
      vms.push({ id: randomUUID(), disk });
    }
    writeFileSync(
      join(home, 'inventory.json'),
      JSON.stringify({ instances: vms.map((v, i) => ({ id: v.id, name: `vm${i}`, project_id: projectId, flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 }, disks: [{ device: '/dev/vda', path: v.disk, format: 'raw' }] })) }),
    );
    writeFileSync(join(home, 'settings.key'), `${hex()}${hex()}\n`, { mode: 0o600 });
    env = {
      LIFEBOAT_HOME: home,
      LIFEBOAT_DB: url.toString(),
      LIFEBOAT_TARGET: `s3://${s3.bucket}/${prefix}?endpoint=${encodeURIComponent(s3.endpoint)}${s3.region ? `&region=${s3.region}` : ''}`,
      LIFEBOAT_SETTINGS_KEY_FILE: join(home, 'settings.key'),
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
      LIFEBOAT_JOB_LEASE: String(LEASE_S),
      LIFEBOAT_SHUTDOWN_GRACE: '2',
      LIFEBOAT_WORKER_CONCURRENCY: '2',
      // Short repository leases, so GC may collect what the killed writer left within the test.
      LIFEBOAT_REPO_LEASE_TTL: '10',
      LIFEBOAT_REPO_LEASE_GRACE: '2',
    };
  });
  after(async () => {
    for (const p of procs.values()) await p.kill9();
    await db?.end();
    if (s3) {
      await testBackend(s3, { prefix }).cleanup();
      await s3.close();
    }
    await sqlAdmin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    if (home) rmSync(home, { recursive: true, force: true });
  });

  async function start(name: string, role: 'api' | 'worker'): Promise<LifeboatProcess> {
    const p = await startProcess({ ...env, LIFEBOAT_NODE_NAME: name, LIFEBOAT_LISTEN: `127.0.0.1:${role === 'api' ? await freePort() : 0}` }, ['serve', '--role', role]);
    procs.set(name, p);
    return p;
  }

  const client = (proc: LifeboatProcess, user: 'u' | 'a'): Promise<Api> => signedInClient(proc.url!, projectId, user);

  /** Jobs of one kind as the store has them. */
  const jobs = async (kind: string) =>
    (
      await db.query<{ id: string; resource_id: string; status: string; error: string | null; attempts: number; lease_owner: string | null; updated_at: string }>(
        'SELECT id, resource_id, status, error, attempts, lease_owner, updated_at FROM jobs WHERE kind = $1',
        [kind],
      )
    ).rows;
  const ownedBy = async (node: string) => (await jobs('snapshot.take')).filter((j) => j.lease_owner?.startsWith(`${node}:`));
  const runningOf = async (node: string) => (await ownedBy(node)).filter((j) => j.status === 'running').map((j) => j.resource_id);

  /** Starts one snapshot per workload at once, through both APIs; returns the snapshot ids in workload order. */
  async function snapshotAll(apis: Api[], wids: string[], full: boolean): Promise<string[]> {
    const started = await Promise.all(wids.map((w, i) => apis[i % apis.length]!('POST', `/workloads/${w}${full ? '?full=1' : ''}`, { snapshot: { name: `s${i}` } })));
    for (const s of started) assert.equal(s.status, 200, JSON.stringify(s.json));
    return started.map((s) => s.json.snapshot.id as string);
  }

  async function allFinal(api: Api, sids: string[]): Promise<Json[]> {
    return waitFor(async () => {
      const all = await Promise.all(sids.map(async (id) => (await api('GET', `/snapshots/${id}`)).json.snapshot as Json));
      return all.every((s) => ['available', 'error', 'cancelled'].includes(s.status)) ? all : null;
    }, 240_000, 'every snapshot final');
  }

  test('every snapshot one terminal state, no job twice, killed and stopped workers handled, restores byte-exact, verify passes, GC leaves no unreferenced pack', async () => {
    const api1 = await client(await start('api1', 'api'), 'u');
    const api2 = await client(await start('api2', 'api'), 'u');
    const admin = await client(procs.get('api2')!, 'a');
    for (const w of ['w1', 'w2', 'w3']) await start(w, 'worker');
    const apis = [api1, api2];

    const made = await Promise.all(vms.map((v, i) => apis[i % 2]!('POST', '/workloads', { workload: { name: `w${i}`, instances: [{ 'instance-id': v.id }] } })));
    for (const m of made) assert.equal(m.status, 202, JSON.stringify(m.json));
    const wids = made.map((m) => m.json.workload.id as string);
    await waitFor(async () => (await api1('GET', '/workloads')).json.workloads.every((w: Json) => w.status === 'available'), 60_000, 'workloads available');
    const truth0 = vms.map((v) => sha256File(v.disk));

    // Round 1: 20 full snapshots; w1 is killed and w2 stopped while each runs a snapshot.
    const full = await snapshotAll(apis, wids, true);
    // Which jobs a worker had is read once it is gone: it keeps claiming until the signal lands,
    // so a list read before the signal can miss a job it claimed in between.
    await waitFor(async () => (await runningOf('w1')).length > 0 || null, 60_000, 'w1 running a snapshot');
    await procs.get('w1')!.kill9();
    const killedAt = Date.now();
    // w1 is dead: every job it holds that is not done was cut off by the kill (running, or failed
    // by a reconciler that already saw its lease expire) -- unless its snapshot was committed
    // (available) before the kill came, between the snapshot's transaction and the job's end.
    const cutOff = (await ownedBy('w1')).filter((j) => j.status !== 'done').map((j) => j.resource_id);
    const committed = new Set((await db.query<{ id: string }>("SELECT id FROM snapshots WHERE status = 'available' AND id = ANY($1)", [cutOff])).rows.map((r) => r.id));
    const killedJobs = cutOff.filter((id) => !committed.has(id));
    assert.ok(killedJobs.length > 0, 'w1 was running a snapshot when killed');
    await waitFor(async () => (await runningOf('w2')).length > 0 || null, 60_000, 'w2 running a snapshot');
    const w2 = procs.get('w2')!;
    const w2DoneBefore = new Set((await ownedBy('w2')).filter((j) => j.status === 'done').map((j) => j.resource_id));
    const w2Exit = new Promise<number | null>((resolve) => w2.child.once('exit', (code) => resolve(code)));
    w2.child.kill('SIGTERM');
    assert.equal(await w2Exit, 0, w2.output());
    // w2 has exited: the jobs it still held after its last finished one (it finished them in its
    // grace or failed them as 'service restarted'; the unstarted ones it handed back hold no owner).
    const stoppedJobs = (await ownedBy('w2')).filter((j) => !w2DoneBefore.has(j.resource_id)).map((j) => j.resource_id);
    assert.ok(stoppedJobs.length > 0, 'w2 was running a snapshot when stopped');
    const round1 = await allFinal(api1, full);

    // A job row ends just after its snapshot's (the runner marks it once the handler returns),
    // and a killed worker's only when its lease is reconciled: wait for every one to end.
    const ended = (j: { status: string }) => j.status === 'done' || j.status === 'failed';
    const takeJobs = await waitFor(async () => {
      const all = await jobs('snapshot.take');
      return round1.every((s) => all.filter((j) => j.resource_id === s.id).every(ended)) ? all : null;
    }, 10 * LEASE_S * 1000, 'the snapshot jobs of round 1 to end');
    for (const [i, s] of round1.entries()) {
      const own = takeJobs.filter((j) => j.resource_id === s.id);
      assert.equal(own.length, 1, `snapshot ${i}: one job`);
      const j = own[0]!;
      // A claim is counted per attempt; a second one happens only when a stopping worker handed an unstarted job back.
      assert.ok(j.attempts === 1 || (j.attempts === 2 && !j.lease_owner?.startsWith('w2:')), `snapshot ${i}: job claimed ${j.attempts} times by ${j.lease_owner}`);
      if (killedJobs.includes(s.id)) {
        assert.deepEqual([s.status, s.error_msg, j.status, j.error], ['error', 'Snapshot did not finish successfully', 'failed', 'worker lease expired'], `killed worker's snapshot ${i}`);
        // Reconciled within one lease of its expiry: the lease ran out at most one lease after
        // the kill, the reconcilers look every half lease; one more lease of margin for a loaded box.
        const reconciledMs = Number(j.updated_at) - killedAt;
        assert.ok(reconciledMs <= 3 * LEASE_S * 1000, `killed worker's snapshot ${i} failed ${reconciledMs} ms after the kill (lease ${LEASE_S} s)`);
      } else if (committed.has(s.id)) {
        // Its data and row were final before the kill; only the job's end was lost (reconciled).
        assert.deepEqual([s.status, j.status, j.error], ['available', 'failed', 'worker lease expired'], `killed worker's committed snapshot ${i}`);
      } else if (stoppedJobs.includes(s.id)) {
        // Finished in the grace, or cut off by its end and repaired. A snapshot that committed just
        // as the grace ran out is available with its job handed over: the repair (onLost) finds
        // it settled and changes nothing (seen once on a loaded 2-core box).
        const handedOver = j.status === 'failed' && j.error === 'service restarted';
        const ok = (s.status === 'available' && (j.status === 'done' || handedOver)) || (s.status === 'error' && handedOver);
        assert.ok(ok, `stopped worker's snapshot ${i}: ${s.status} ${s.error_msg} / job ${j.status} ${j.error}`);
      } else {
        assert.equal(s.status, 'available', `snapshot ${i}: ${s.error_msg}`);
        assert.equal(j.status, 'done');
      }
    }
    await waitFor(async () => (await api1('GET', '/workloads')).json.workloads.every((w: Json) => w.status === 'available'), 30_000, 'no workload left locked');

    // The node list: the killed worker Down, the stopped one Stopped, the others Up.
    const w4 = await start('w4', 'worker');
    await waitFor(async () => {
      const n = Object.fromEntries(((await admin('GET', '/workloads/metrics/nodes')).json.nodes as Json[]).map((x) => [x.node, x.status]));
      return n.w1 === 'Down' && n.w2 === 'Stopped' && n.w3 === 'Up' && n.w4 === 'Up' && n.api1 === 'Up' && n.api2 === 'Up';
    }, 20_000, 'node list');

    // Round 2: every disk changes, 20 incrementals (a full where round 1 failed) on w3 and w4.
    for (const v of vms) mutateDisk(v.disk, 3);
    const truth1 = vms.map((v) => sha256File(v.disk));
    const incr = await snapshotAll(apis, wids, false);
    const round2 = await allFinal(api2, incr);
    for (const [i, s] of round2.entries()) {
      assert.equal(s.status, 'available', `incremental ${i}: ${s.error_msg}`);
      assert.equal(s.snapshot_type, round1[i]!.status === 'available' ? 'incremental' : 'full', `snapshot ${i} type`);
    }
    assert.ok((await jobs('snapshot.take')).every((j) => j.attempts <= 2 && ['done', 'failed'].includes(j.status)));

    // Restores on one worker (the local platform's inventory file takes one writing process).
    await w4.stop();
    const restoreAndHash = async (i: number, sid: string): Promise<string> => {
      const api = apis[i % 2]!;
      const r = await api('POST', `/workloads/${wids[i]}/snapshots/${sid}/restores`, {
        restore: { options: { type: 'openstack', oneclickrestore: false, restore_type: 'selective', openstack: { instances: [{ id: vms[i]!.id, include: true, name: `r-${sid.slice(0, 8)}`, vdisks: [] }] } } },
      });
      assert.equal(r.status, 202, JSON.stringify(r.json));
      const done = await waitFor(async () => {
        const x = (await api('GET', `/restores/${r.json.restore.id}`)).json.restore as Json;
        return ['available', 'error', 'cancelled'].includes(x.status) ? x : null;
      }, 120_000, `restore of ${sid}`);
      assert.equal(done.status, 'available', done.error_msg);
      const inv = JSON.parse(readFileSync(join(home, 'inventory.json'), 'utf8')).instances as { id: string; disks: { path: string }[] }[];
      return sha256File(inv.find((x) => x.id === done.instances[0].id)!.disks[0]!.path);
    };
    await Promise.all(
      wids.map(async (_w, i) => {
        if (round1[i]!.status === 'available') assert.equal(await restoreAndHash(i, round1[i]!.id), truth0[i], `full snapshot ${i} restores byte-exact`);
        assert.equal(await restoreAndHash(i, round2[i]!.id), truth1[i], `incremental ${i} restores byte-exact`);
      }),
    );

    // Verify reads every chunk; GC, once the killed writer's lease is past ttl + grace,
    // collects what it left, after which a dry run finds nothing unreferenced. (Alone the first
    // GC run sweeps, 2 s in. Two CI runs saw none sweep; the report of the second said why: "an
    // unreadable lease exists", the lease the SIGKILLed worker was rewriting, torn for good by
    // s3rver's in-place writes, which s3rver.main.ts now makes whole-or-nothing as in S3.)
    for (const p of procs.values()) await p.stop();
    const verify = runLifeboat(env, ['repo', 'verify', '--json']);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    const v = JSON.parse(verify.stdout) as Json;
    assert.equal(v.ok, true);
    assert.equal(v.snapshots, round1.filter((s) => s.status === 'available').length + N);
    let lastGc = '';
    const gcStarted = Date.now();
    await waitFor(() => {
      const r = runLifeboat(env, ['repo', 'gc']);
      lastGc = `${Math.round((Date.now() - gcStarted) / 1000)} s in, exit ${r.status}: ${r.stdout.slice(0, 600)} ${r.stderr.slice(0, 300)}`;
      const g = JSON.parse(r.stdout) as Json;
      return r.status === 0 && g.swept && g.pendingPacks === 0 ? g : null;
    }, 120_000, 'a GC with no pending pack').catch((e: Error) => {
      throw new Error(`${e.message}; the last GC run: ${lastGc}`);
    });
    const dry = runLifeboat(env, ['repo', 'gc', '--dry-run']);
    const g = JSON.parse(dry.stdout) as Json;
    assert.deepEqual([g.reason, g.packsDeleted, g.packsRepacked, g.pendingPacks, g.missingChunks.length], ['dry run', 0, 0, 0, 0], dry.stdout);
    const after = runLifeboat(env, ['repo', 'verify', '--json']);
    assert.equal(after.status, 0, after.stdout + after.stderr);
  });
});
