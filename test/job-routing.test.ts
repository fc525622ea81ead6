import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { storeKinds } from '../src/store/testing.js';
import type { StoreHandle } from '../src/store/db.js';
import { insertWorkload } from '../src/store/workload.store.js';
import { getSnapshot, insertSnapshot } from '../src/store/snapshot.store.js';
import { insertNode } from '../src/store/node.store.js';
import { enqueueJob } from '../src/store/job.store.js';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { Repository } from '../src/repository/repository.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import type { BackupSession, Placement, Platform, PlatformNetwork } from '../src/platform/platform.js';
import type { Instance } from '../src/domain/instance.js';
import type { Snapshot } from '../src/domain/snapshot.js';
import { testSnapshot, testWorkload } from '../src/domain/testing.js';
import { JobRunner } from '../src/jobs/runner.js';
import { SNAPSHOT_JOBS } from '../src/jobs/kinds.js';
import { diskKey, snapshotJobHandlers } from '../src/jobs/snapshot.job.js';
import { systemClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { newId } from '../src/lib/ids.js';
import { waitFor } from '../src/lib/testing.js';

/**
 * Per-host routing of snapshots (jobs/routing.ts) through real job runners of several nodes on
 * one store (SQLite, and PostgreSQL when LIFEBOAT_TEST_PG is set). The platform below the job
 * layer is a fake that says where each VM's disks can be read (Platform.placement) and records
 * on which node's platform each backup began.
 */
const PROJECT = 'a'.repeat(32);
const LEASE = 2_000;
const CS = 64 * 1024;

interface Vm {
  instance: Instance;
  data: Buffer;
  placement: Placement;
}

function vm(name: string, placement: Placement): Vm {
  return {
    instance: {
      id: newId(),
      name,
      project_id: PROJECT,
      status: 'ACTIVE',
      availability_zone: 'nova',
      flavor: { vcpus: 1, ram: 128, disk: 1, ephemeral: 0 },
      security_groups: [],
      nics: [],
      disks: [{ device: '/dev/vda', format: 'raw' }],
      metadata: {},
    },
    data: randomBytes(4 * CS),
    placement,
  };
}

/** One node's view of the same VMs: it knows where they sit and logs the backups it began. */
class PlacedPlatform implements Platform {
  readonly name = 'placed';
  readonly begun: string[] = [];
  /** How each backup session ended, by VM name: committed or failed. */
  readonly ended: string[] = [];
  /** Set: every backup this node begins fails with it (a host whose reads break). */
  failWith: string | null = null;
  /** Set: reads wait for it (a part still copying when the snapshot stops). */
  readGate: Promise<void> | null = null;
  constructor(
    readonly node: string,
    private readonly vms: Vm[],
  ) {}
  async listInstances(projectId: string): Promise<Instance[]> {
    return this.vms.map((v) => v.instance).filter((i) => i.project_id === projectId);
  }
  async getInstance(projectId: string, id: string): Promise<Instance | null> {
    return (await this.listInstances(projectId)).find((i) => i.id === id) ?? null;
  }
  async listNetworks(): Promise<PlatformNetwork[]> {
    return [];
  }
  async placement(_projectId: string, instances: Instance[]): Promise<Map<string, Placement>> {
    return new Map(instances.map((i) => [i.id, this.vms.find((v) => v.instance.id === i.id)!.placement]));
  }
  async beginBackup(instance: Instance): Promise<BackupSession> {
    const v = this.vms.find((x) => x.instance.id === instance.id)!;
    if (v.placement.host !== null && v.placement.host !== this.node && !v.placement.anywhere) throw new Error(`${this.node} cannot read ${instance.name}: it sits on ${v.placement.host}`);
    if (this.failWith) throw new Error(this.failWith);
    this.begun.push(instance.name);
    const data = v.data;
    const gate = () => this.readGate ?? Promise.resolve();
    return {
      disks: [
        {
          disk: instance.disks[0]!,
          source: {
            size: data.length,
            read: async (buf, offset, length, position) => {
              await gate();
              return data.copy(buf, offset, position, Math.min(data.length, position + length));
            },
            close: async () => undefined,
          },
        },
      ],
      checkpoint: null,
      warnings: [],
      end: async (outcome) => {
        this.ended.push(`${instance.name}:${outcome}`);
      },
    };
  }
  async createInstance(): Promise<never> {
    throw new Error('not used');
  }
  async openInPlaceSinks(): Promise<never> {
    throw new Error('not used');
  }
  async cleanupRestore(): Promise<void> {}
}

for (const kind of storeKinds()) {
  describe(`snapshot routing to compute-host workers (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let repo: Repository;
    const runners: JobRunner[] = [];

    before(async () => {
      h = await kind.open();
      repo = await Repository.init(new MemBackend(), { chunkSize: CS, packSize: 1 << 20 }, { clock: systemClock, logger: silentLogger });
    });
    // Each test starts the workers it needs; none outlives its test.
    afterEach(async () => {
      await Promise.all(runners.splice(0).map((r) => r.stop()));
    });
    after(async () => {
      await h.close();
    });

    /** A registered, heartbeating worker row for `node` (what the node registry writes). */
    async function registerNode(node: string, o: { heartbeatAgoMs?: number; status?: string; concurrency?: number } = {}): Promise<void> {
      const now = Date.now();
      await insertNode(h.db, {
        id: `${node}:${newId()}`,
        node_name: node,
        role: 'worker',
        pid: 1,
        version: 't',
        settings_key_id: 'k',
        status: o.status ?? 'up',
        running_jobs: 0,
        concurrency: o.concurrency ?? 2,
        loadavg: 0,
        started_at: now,
        heartbeat_at: now - (o.heartbeatAgoMs ?? 0),
      });
    }

    function startRunner(platform: PlacedPlatform, concurrency?: number): JobRunner {
      const r = new JobRunner({
        db: h.db,
        dialect: h.dialect,
        clock: systemClock,
        log: silentLogger,
        owner: `${platform.node}:${newId()}`,
        leaseMs: LEASE,
        nodeName: platform.node,
        pollMs: 20,
        reconcileMs: 60_000,
        concurrency,
        handlers: snapshotJobHandlers({ db: h.db, platform, repo, clock: systemClock, nodeName: platform.node, progressEveryMs: 20, liveWindowMs: LEASE }),
      });
      runners.push(r);
      r.start();
      return r;
    }

    /**
     * A locked workload of `vms` with a `creating` snapshot and its untargeted job, as the service
     * leaves them. `now` is the job's created_at: workers claim the oldest first, and two jobs of
     * one millisecond go in id order (random), so a test that needs an order passes distinct times.
     */
    async function requestSnapshot(vms: Vm[], now = Date.now()): Promise<string> {
      const w = testWorkload({ project_id: PROJECT, status: 'locked', instances: vms.map((v) => ({ id: v.instance.id, name: v.instance.name, metadata: {} })) });
      await insertWorkload(h.db, w);
      const s = testSnapshot(w, { status: 'creating', host: '', created_at: now, finished_at: null });
      await insertSnapshot(h.db, s);
      await enqueueJob(h.db, { kind: SNAPSHOT_JOBS.take, payload: { snapshotId: s.id }, resourceId: s.id, now });
      return s.id;
    }

    const finished = (id: string): Promise<Snapshot> =>
      waitFor(
        async () => {
          const s = await getSnapshot(h.db, { admin: true }, id);
          return s && ['available', 'error', 'cancelled'].includes(s.status) ? s : null;
        },
        20_000,
        `snapshot ${id} to finish`,
      );

    const jobsOf = (id: string) => h.db.selectFrom('jobs').select(['status', 'target_node', 'error', 'lease_owner']).where('resource_id', '=', id).orderBy('created_at').execute();

    it('a VM whose disks only its host can read is snapshotted by that host\'s worker; the first worker hands it over', async () => {
      await registerNode('h1');
      await registerNode('h2');
      const a = vm('on-h2', { host: 'h2', anywhere: false });
      const p1 = new PlacedPlatform('h1', [a]);
      const p2 = new PlacedPlatform('h2', [a]);
      startRunner(p1);
      const id = await requestSnapshot([a]);
      // Only h1 runs: the snapshot waits for h2's worker, and h1 never claims h2's job.
      // The first job ends just after the hand-over it committed: wait for both, do not race it.
      const waiting = await waitFor(
        async () => {
          const jobs = await jobsOf(id);
          return jobs.length === 2 && jobs[0]?.status === 'done' ? jobs : null;
        },
        10_000,
        'the hand-over',
      );
      assert.deepEqual(
        waiting.map((j) => [j.status, j.target_node]),
        [
          ['done', null],
          ['queued', 'h2'],
        ],
      );
      const pending = await getSnapshot(h.db, { admin: true }, id);
      assert.equal(pending?.status, 'creating');
      assert.match(pending?.progress_msg ?? '', /compute host h2/);
      startRunner(p2);
      const s = await finished(id);
      assert.equal(s.status, 'available', s.error_msg ?? '');
      assert.equal(s.host, 'h2');
      assert.deepEqual([p1.begun, p2.begun], [[], ['on-h2']]);
      // The job row ends just after the snapshot it made is available: wait for it, do not race it.
      const jobs = await waitFor(async () => ((await jobsOf(id))[1]?.status === 'done' ? jobsOf(id) : null), 10_000, "h2's job to end done");
      assert.match(jobs[1]?.lease_owner ?? '', /^h2:/);
      const sink = new MemDiskSink(a.data.length);
      await restoreDisk({ repo, snapshotId: id, diskKey: diskKey(a.instance.id, '/dev/vda'), sink });
      assert.ok(sink.data.equals(a.data), 'restores byte-exact');
    });

    it('no live worker serves the host: fails at once naming the host, unless the disks can be read anywhere', async () => {
      await registerNode('h3', { heartbeatAgoMs: 10 * LEASE }); // dead
      await registerNode('h4', { status: 'draining' });
      const onH3 = vm('on-h3', { host: 'h3', anywhere: false });
      const onH4 = vm('on-h4', { host: 'h4', anywhere: false });
      const readable = vm('api-readable', { host: 'h3', anywhere: true });
      const p1 = new PlacedPlatform('h1', [onH3, onH4, readable]);
      startRunner(p1);
      const s3 = await finished(await requestSnapshot([onH3]));
      assert.equal(s3.status, 'error');
      assert.match(s3.error_msg ?? '', /on-h3 .* sits on compute host h3, which no live Lifeboat worker serves \(run a worker there with LIFEBOAT_NODE_NAME=h3\)/);
      const s4 = await finished(await requestSnapshot([onH4]));
      assert.match(s4.error_msg ?? '', /compute host h4, which no live Lifeboat worker serves/, 'a draining worker takes no new work');
      assert.deepEqual((await jobsOf(s3.id)).map((j) => j.target_node), [null], 'nothing was queued for h3');
      const any = await finished(await requestSnapshot([readable]));
      assert.equal(any.status, 'available', any.error_msg ?? '');
      assert.equal(any.host, 'h1');
      assert.deepEqual(p1.begun, ['api-readable']);
    });

    /** Every VM's disk restores byte-exact from the snapshot's one manifest. */
    async function assertRestores(id: string, vms: Vm[]): Promise<void> {
      for (const v of vms) {
        const sink = new MemDiskSink(v.data.length);
        await restoreDisk({ repo, snapshotId: id, diskKey: diskKey(v.instance.id, '/dev/vda'), sink });
        assert.ok(sink.data.equals(v.data), `${v.instance.name} restores byte-exact`);
      }
    }

    /** Waits until the snapshot's parent job runs on `node` (the parent is whoever claims first: tests start the other hosts after). */
    const claimedBy = (id: string, node: string) =>
      waitFor(async () => ((await getSnapshot(h.db, { admin: true }, id))?.host === node ? true : null), 10_000, `the snapshot to be claimed by ${node}`);

    const partsOf = (id: string) => h.db.selectFrom('snapshot_parts').select(['node', 'status', 'error_msg', 'bytes_done', 'bytes_total']).where('snapshot_id', '=', id).orderBy('node').execute();

    it('VMs pinned to two hosts: the snapshot is split, each host\'s worker reads its own VMs, one manifest holds them all; one pinned and one readable anywhere go to the pinned host', async () => {
      await registerNode('h5');
      await registerNode('h6');
      const a = vm('a-on-h5', { host: 'h5', anywhere: false });
      const b = vm('b-on-h6', { host: 'h6', anywhere: false });
      const a2 = vm('a2-on-h5', { host: 'h5', anywhere: false });
      const c = vm('c-anywhere', { host: null, anywhere: true });
      const c2 = vm('c2-anywhere', { host: null, anywhere: true });
      const all = [a, b, a2, c, c2];
      const p1 = new PlacedPlatform('h1', all);
      const p5 = new PlacedPlatform('h5', all);
      const p6 = new PlacedPlatform('h6', all);
      startRunner(p1);
      startRunner(p5);
      startRunner(p6);
      const two = await finished(await requestSnapshot([a, b, c]));
      assert.equal(two.status, 'available', two.error_msg ?? '');
      // The parent read the VM any worker can read wherever it ran; each host read its own VM.
      const parentPlatform = [p1, p5, p6].find((p) => p.node === two.host)!;
      assert.ok(parentPlatform.begun.includes('c-anywhere'), `the parent (${two.host}) read c`);
      assert.ok(p5.begun.includes('a-on-h5') && p6.begun.includes('b-on-h6'));
      assert.deepEqual([...p1.begun, ...p5.begun, ...p6.begun].sort(), ['a-on-h5', 'b-on-h6', 'c-anywhere']);
      assert.deepEqual([...p1.ended, ...p5.ended, ...p6.ended].sort(), ['a-on-h5:committed', 'b-on-h6:committed', 'c-anywhere:committed']);
      await assertRestores(two.id, [a, b, c]);
      assert.equal(two.instances.length, 3);
      assert.equal(two.restore_size, a.data.length + b.data.length + c.data.length);
      const parts = await partsOf(two.id);
      assert.deepEqual(parts.map((p) => p.status), parts.map(() => 'done'));
      assert.deepEqual(parts.map((p) => p.node), ['h5', 'h6'].filter((n) => n !== two.host));
      assert.deepEqual(parts.map((p) => [Number(p.bytes_done), Number(p.bytes_total)]), parts.map(() => [4 * CS, 4 * CS]), 'each part copied its one disk');
      // One host only: handed over whole, no parts.
      const mixed = await finished(await requestSnapshot([a2, c2]));
      assert.equal(mixed.status, 'available', mixed.error_msg ?? '');
      assert.equal(mixed.host, 'h5');
      assert.deepEqual(await partsOf(mixed.id), []);
      assert.deepEqual(p5.begun.slice(-2), ['a2-on-h5', 'c2-anywhere']);
      await assertRestores(mixed.id, [a2, c2]);
    });

    it('a part that fails fails the whole snapshot, naming its host and why; every session ends failed and the workload is usable again', async () => {
      await registerNode('h7');
      await registerNode('h8');
      const on7 = vm('on-h7', { host: 'h7', anywhere: true });
      const on8 = vm('on-h8', { host: 'h8', anywhere: false });
      const p7 = new PlacedPlatform('h7', [on7, on8]);
      const p8 = new PlacedPlatform('h8', [on7, on8]);
      p8.failWith = 'the hypervisor said no';
      startRunner(p7);
      const id = await requestSnapshot([on7, on8]);
      await claimedBy(id, 'h7');
      startRunner(p8);
      const s = await finished(id);
      assert.equal(s.status, 'error');
      assert.match(s.error_msg ?? '', /the part read on compute host h8 failed: the hypervisor said no/);
      assert.deepEqual((await partsOf(s.id)).map((p) => [p.node, p.status]), [['h8', 'failed']]);
      assert.deepEqual(p7.ended, ['on-h7:failed']);
      await assert.rejects(repo.readManifest(s.id), /manifest of snapshot .* is missing/);
      const w = await h.db.selectFrom('workloads').select('status').where('id', '=', s.workload_id).executeTakeFirstOrThrow();
      assert.equal(w.status, 'available');
    });

    it('a cancel stops the parent and every part: the snapshot ends cancelled, the parts failed, every session failed', async () => {
      await registerNode('h11');
      await registerNode('h12');
      const x = vm('x-on-h11', { host: 'h11', anywhere: false });
      const y = vm('y-on-h12', { host: 'h12', anywhere: false });
      const p11 = new PlacedPlatform('h11', [x, y]);
      const p12 = new PlacedPlatform('h12', [x, y]);
      let open!: () => void;
      p12.readGate = new Promise<void>((resolve) => (open = resolve));
      startRunner(p11);
      const id = await requestSnapshot([x, y]);
      await claimedBy(id, 'h11');
      startRunner(p12);
      let s: Snapshot;
      try {
        await waitFor(async () => ((await partsOf(id)).some((p) => p.status === 'running') && p12.begun.length === 1 ? true : null), 10_000, 'the part to start copying');
        // The parent's disk is copied, the part's is not: the snapshot says half (each VM has one 4-chunk disk).
        await waitFor(async () => ((await getSnapshot(h.db, { admin: true }, id))?.progress_percent === 50 ? true : null), 10_000, 'the snapshot to report 50 %');
        await h.db.updateTable('snapshots').set({ status: 'cancelling' }).where('id', '=', id).execute();
        s = await finished(id);
      } finally {
        open(); // a failed wait must not leave the part's read hanging (the runners could not stop)
      }
      assert.equal(s.status, 'cancelled');
      await waitFor(async () => ((await partsOf(id)).every((p) => p.status === 'failed') && p12.ended.length === 1 ? true : null), 10_000, 'the part to stop');
      assert.deepEqual([...p11.ended, ...p12.ended].sort(), ['x-on-h11:failed', 'y-on-h12:failed']);
      await assert.rejects(repo.readManifest(id), /manifest of snapshot .* is missing/);
    });

    it('two hosts whose every slot holds a parent waiting on the other: their parts still run (outside the limit), both snapshots end available', async () => {
      await registerNode('h15');
      await registerNode('h16');
      const vms = ['a', 'b'].flatMap((t) => [vm(`${t}-on-h15`, { host: 'h15', anywhere: false }), vm(`${t}-on-h16`, { host: 'h16', anywhere: false })]);
      const p15 = new PlacedPlatform('h15', vms);
      const p16 = new PlacedPlatform('h16', vms);
      // Both requested first: h15 takes the first parent; the second's job is then older than
      // the first's part, so h16 takes the second parent, and each holds its one slot waiting.
      // The second's job is a millisecond younger than the first's, never of the same one: a tie
      // goes by random id, and h15 taking the second parent first left the first unclaimed.
      const requestedAt = Date.now();
      const first = await requestSnapshot(vms.slice(0, 2), requestedAt);
      const second = await requestSnapshot(vms.slice(2), requestedAt + 1);
      startRunner(p15, 1);
      await claimedBy(first, 'h15');
      await waitFor(async () => ((await partsOf(first)).length === 1 ? true : null), 10_000, 'the first part');
      startRunner(p16, 1);
      const [s1, s2] = [await finished(first), await finished(second)];
      assert.deepEqual([s1.status, s1.host, s2.status, s2.host], ['available', 'h15', 'available', 'h16'], `${s1.error_msg ?? ''} ${s2.error_msg ?? ''}`);
      await assertRestores(first, vms.slice(0, 2));
      await assertRestores(second, vms.slice(2));
    });

    it("a part whose host's worker is gone fails the snapshot at the reconciler's next round, naming the host", async () => {
      await registerNode('h13');
      await registerNode('h14');
      const x = vm('x-on-h13', { host: 'h13', anywhere: false });
      const y = vm('y-on-h14', { host: 'h14', anywhere: false });
      const p13 = new PlacedPlatform('h13', [x, y]);
      const r = startRunner(p13);
      const id = await requestSnapshot([x, y]);
      await waitFor(async () => ((await partsOf(id)).length === 1 ? true : null), 10_000, 'the part for h14');
      // h14's worker stops heartbeating: its queued part can never run.
      await h.db.updateTable('nodes').set({ heartbeat_at: Date.now() - 10 * LEASE }).where('node_name', '=', 'h14').execute();
      assert.equal(await r.reconcile(), 1);
      const s = await finished(id);
      assert.equal(s.status, 'error');
      assert.match(s.error_msg ?? '', /the part read on compute host h14 failed: no live Lifeboat worker serves node h14/);
      assert.deepEqual(p13.ended, ['x-on-h13:failed']);
    });

    it('the reconciler fails a queued job targeted at a node with no live worker, naming it; a live node\'s job waits', async () => {
      const a = vm('on-h9', { host: 'h9', anywhere: false });
      const w = testWorkload({ project_id: PROJECT, status: 'locked', instances: [{ id: a.instance.id, name: a.instance.name, metadata: {} }] });
      await insertWorkload(h.db, w);
      const s = testSnapshot(w, { status: 'creating', host: '', created_at: Date.now(), finished_at: null });
      await insertSnapshot(h.db, s);
      await enqueueJob(h.db, { kind: SNAPSHOT_JOBS.take, payload: { snapshotId: s.id }, resourceId: s.id, now: Date.now(), targetNode: 'h9' });
      await registerNode('h10');
      const other = testSnapshot(w, { status: 'creating', host: '', created_at: Date.now(), finished_at: null });
      await insertSnapshot(h.db, other);
      await enqueueJob(h.db, { kind: SNAPSHOT_JOBS.take, payload: { snapshotId: other.id }, resourceId: other.id, now: Date.now(), targetNode: 'h10' });
      const r = new JobRunner({ db: h.db, dialect: h.dialect, clock: systemClock, log: silentLogger, owner: 'h1:x', leaseMs: LEASE, nodeName: 'h1', handlers: snapshotJobHandlers({ db: h.db, platform: new PlacedPlatform('h1', [a]), repo, clock: systemClock, nodeName: 'h1' }) });
      assert.equal(await r.reconcile(), 1);
      const failed = await getSnapshot(h.db, { admin: true }, s.id);
      assert.equal(failed?.status, 'error');
      assert.match(failed?.error_msg ?? '', /no live Lifeboat worker serves node h9 \(a worker with LIFEBOAT_NODE_NAME=h9 must run there\)/);
      assert.deepEqual((await jobsOf(s.id)).map((j) => j.status), ['failed']);
      assert.deepEqual((await jobsOf(other.id)).map((j) => [j.status, j.target_node]), [['queued', 'h10']]);
      assert.equal((await getSnapshot(h.db, { admin: true }, other.id))?.status, 'creating');
    });
  });
}
