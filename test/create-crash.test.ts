import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { openStore, type StoreHandle } from '../src/store/db.js';
import { freePort, waitFor } from './harness.js';
import { signedInClient, snapshotDiskOf, startProcess, testPgSchema, writeRandomDisk, writeTestIdentity, type LifeboatProcess } from './process.js';

/**
 * Reliability item A2 (shared/spec/reliability.md §2): the API process killed -9 while it
 * records a new snapshot, between the snapshot row and its job or anywhere else in that write.
 * A `serve --role api` process (no worker: nothing else writes) takes `POST /workloads/{id}`
 * while strace, attached to its main thread (where better-sqlite3 and node-postgres do all
 * their I/O), kills it on entering its n-th database write: `pwrite64` into SQLite's WAL, or
 * `writev` of a PostgreSQL protocol message (one per statement). n runs from 1 until the
 * request gets through, so every write of that transaction is a crash point.
 *
 * After each kill the store holds either nothing new (the workload `available`, no job) or the
 * whole start: one snapshot row `creating` with its metadata and its queued job, the workload
 * `locked`. Never a row without its job (a snapshot nobody runs) or a job without its row. A
 * started snapshot is then run by the next process that starts a worker (`serve`), ends
 * `available`, and holds the disk byte-exact. Needs strace (.ci/run installs it).
 */
interface Home {
  home: string;
  env: Record<string, string>;
  projectId: string;
  vmId: string;
  disk: string;
}

function makeHome(db?: string): Home {
  const home = mkdtempSync(join(tmpdir(), 'lifeboat-create-crash-'));
  const projectId = randomBytes(16).toString('hex');
  writeTestIdentity(home, projectId);
  const disk = join(home, 'vm-vda.raw');
  writeRandomDisk(disk, 1);
  const vmId = randomUUID();
  writeFileSync(
    join(home, 'inventory.json'),
    JSON.stringify({ instances: [{ id: vmId, name: 'vm', project_id: projectId, flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 }, disks: [{ device: '/dev/vda', path: disk, format: 'raw' }] }] }),
  );
  return { home, projectId, vmId, disk, env: { LIFEBOAT_HOME: home, LIFEBOAT_NODE_NAME: 'a2', LIFEBOAT_JOB_LEASE: '2', ...(db ? { LIFEBOAT_DB: db } : {}) } };
}

/** What the store holds of workload `wid`: its status, its live snapshots, and every snapshot job. */
async function storeState(store: StoreHandle, wid: string) {
  const workload = await store.db.selectFrom('workloads').select('status').where('id', '=', wid).executeTakeFirstOrThrow();
  const snapshots = await store.db.selectFrom('snapshots').select(['id', 'status']).where('workload_id', '=', wid).where('deleted', '=', 0).execute();
  const jobs = await store.db.selectFrom('jobs').select(['resource_id', 'status', 'kind']).where('kind', 'like', 'snapshot%').execute();
  const metadata = await store.db.selectFrom('snapshot_metadata').select(['snapshot_id']).execute();
  return { workload: workload.status, snapshots, jobs, metadata };
}

/**
 * Starts `serve --role api`, attaches strace to its main thread (killing it on entering its n-th
 * `call`), and sends one take-snapshot request. Resolves with the answer's status, or null when
 * the process died first; the process has exited either way.
 */
async function takeUnderStrace(h: Home, port: number, wid: string, call: string, n: number): Promise<number | null> {
  const proc = await startProcess({ ...h.env, LIFEBOAT_LISTEN: `127.0.0.1:${port}` }, ['serve', '--role', 'api']);
  const api = await signedInClient(proc.url!, h.projectId, 'u');
  const tracer = spawn('strace', ['-o', '/dev/null', '-e', `trace=${call}`, '-e', `inject=${call}:signal=KILL:when=${n}`, '-p', String(proc.child.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  tracer.stderr!.setEncoding('utf8').on('data', (d: string) => (said += d));
  const tracerExit = once(tracer, 'exit');
  try {
    // strace says "Process <pid> attached" once the thread is seized: only then is the n-th call counted.
    await waitFor(() => said.includes('attached') || tracer.exitCode !== null, 20_000, 'strace attached');
    assert.ok(said.includes('attached'), said);
    const status = await api('POST', `/workloads/${wid}?full=1`).then(
      (r) => r.status,
      () => null, // the connection died with the process
    );
    if (status === null) await waitFor(() => proc.child.exitCode !== null || proc.child.signalCode !== null, 20_000, 'process gone');
    return status;
  } finally {
    await proc.stop();
    await tracerExit;
  }
}

/** Runs `serve` (API and worker) until every snapshot of `wid` has ended and the workload is free. */
async function runToEnd(h: Home, port: number, wid: string): Promise<{ id: string; status: string }[]> {
  const proc: LifeboatProcess = await startProcess({ ...h.env, LIFEBOAT_LISTEN: `127.0.0.1:${port}` });
  try {
    const api = await signedInClient(proc.url!, h.projectId, 'u');
    return await waitFor(async () => {
      const list = (await api('GET', `/snapshots?workload_id=${wid}`)).json.snapshots as { id: string; status: string }[];
      const workload = (await api('GET', `/workloads/${wid}`)).json.workload.status;
      return workload === 'available' && list.every((s) => ['available', 'error'].includes(s.status)) ? list : null;
    }, 60_000, 'snapshots ended');
  } finally {
    await proc.stop();
  }
}

function crashSuite(name: string, call: string, dbUrl: () => string | undefined) {
  let h: Home;
  let port = 0;
  let wid = '';
  before(async () => {
    h = makeHome(dbUrl());
    port = await freePort();
    const proc = await startProcess({ ...h.env, LIFEBOAT_LISTEN: `127.0.0.1:${port}` });
    try {
      const api = await signedInClient(proc.url!, h.projectId, 'u');
      const w = await api('POST', '/workloads', { workload: { name: 'a2', instances: [{ 'instance-id': h.vmId }] } });
      assert.equal(w.status, 202, JSON.stringify(w.json));
      wid = w.json.workload.id as string;
      await waitFor(async () => (await api('GET', `/workloads/${wid}`)).json.workload.status === 'available', 30_000, 'workload available');
    } finally {
      await proc.stop();
    }
  });
  after(() => rmSync(h.home, { recursive: true, force: true }));

  test(`${name}: killed at every ${call} of a take-snapshot request, the start is all there or not at all`, { timeout: 600_000 }, async (t) => {
    const seen = new Set<string>();
    const outcomes = { nothing: 0, started: 0 };
    for (let n = 1; ; n++) {
      assert.ok(n < 200, 'the request never got through');
      const status = await takeUnderStrace(h, port, wid, call, n);
      const store = await openStore(dbUrl() ?? `sqlite:${join(h.home, 'lifeboat.db')}`);
      let started: string | undefined;
      try {
        const s = await storeState(store, wid);
        const fresh = s.snapshots.filter((x) => !seen.has(x.id));
        const what = `kill at ${call} #${n} (answer ${status ?? 'none'}): ${JSON.stringify(s)}`;
        assert.ok(fresh.length <= 1, what);
        // Every snapshot job names a snapshot row, and every row has its metadata.
        for (const j of s.jobs) assert.ok(s.snapshots.some((x) => x.id === j.resource_id), `${what}: a job without its snapshot`);
        if (fresh.length === 1) {
          started = fresh[0]!.id;
          assert.equal(fresh[0]!.status, 'creating', what);
          assert.equal(s.workload, 'locked', what);
          assert.deepEqual(s.jobs.filter((j) => j.resource_id === started).map((j) => j.status), ['queued'], `${what}: the row without its job`);
          assert.ok(s.metadata.filter((m) => m.snapshot_id === started).length >= 10, `${what}: the row without its metadata`);
        } else {
          assert.equal(s.workload, 'available', `${what}: locked with no snapshot`);
          assert.equal(status, null, `${what}: answered without a snapshot`);
        }
      } finally {
        await store.close();
      }
      if (started) {
        outcomes.started++;
        seen.add(started);
        const ended = await runToEnd(h, port, wid);
        assert.equal(ended.find((x) => x.id === started)?.status, 'available', `the snapshot started before the kill at ${call} #${n} was not run to the end`);
        const size = readFileSync(h.disk).length;
        assert.ok((await snapshotDiskOf(h.env, started, h.vmId, '/dev/vda', size)).equals(readFileSync(h.disk)), `snapshot ${started} is not the disk`);
      } else outcomes.nothing++;
      if (status !== null) {
        assert.equal(status, 200);
        t.diagnostic(`${n - 1} crash points before the request got through: ${outcomes.nothing} left nothing, ${outcomes.started - 1} a whole start`);
        break;
      }
    }
    assert.ok(outcomes.nothing >= 1, 'no kill came before the commit');
  });
}

describe('kill -9 of the API while it records a snapshot (reliability A2)', { skip: skipUnlessInstalled('strace') }, () => {
  describe('SQLite', () => crashSuite('SQLite', 'pwrite64', () => undefined));

  describe('PostgreSQL', { skip: process.env.LIFEBOAT_TEST_PG ? false : 'LIFEBOAT_TEST_PG is not set' }, () => {
    const pgSchema = testPgSchema();
    before(() => pgSchema.create());
    crashSuite('PostgreSQL', 'writev', () => pgSchema.url);
    after(() => pgSchema.drop());
  });
});
