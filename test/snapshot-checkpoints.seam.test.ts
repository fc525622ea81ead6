import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openStore, type StoreHandle } from '../src/store/db.js';
import { getWorkload, insertWorkload } from '../src/store/workload.store.js';
import { getSnapshot, getSnapshotCheckpoints, insertSnapshot, transitionSnapshot, updateSnapshotFields } from '../src/store/snapshot.store.js';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { listAll } from '../src/backend/backend.js';
import { faultyBackend } from '../src/backend/testing.js';
import { Repository } from '../src/repository/repository.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import type { BackupOutcome, BackupSession, BeginBackupOptions, Checkpoint, DiskSource, Extent, Platform, PlatformNetwork } from '../src/platform/platform.js';
import type { Instance } from '../src/domain/instance.js';
import type { Snapshot, SnapshotType } from '../src/domain/snapshot.js';
import type { Workload } from '../src/domain/workload.js';
import { testSnapshot, testWorkload } from '../src/domain/testing.js';
import type { JobHandler, KindJob } from '../src/jobs/runner.js';
import { ManualClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { newId } from '../src/lib/ids.js';
import { SNAPSHOT_JOBS } from '../src/jobs/kinds.js';
import { diskKey, snapshotJobHandlers } from '../src/jobs/snapshot.job.js';

/**
 * The platform seam for changed-block tracking, end to end through the snapshot job: a fake
 * platform (behind the Platform interface, like libvirt will be) hands out a checkpoint per
 * backup and the exact extents changed since the base checkpoint. The job must pass the
 * previous snapshot's checkpoint back at begin, the datamover must read only the changed
 * extents, and the checkpoint must be recorded in both the DB row and the manifest.
 */
const CS = 64 * 1024;
const PROJECT = 'a'.repeat(32);
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);

/** A disk whose reads are counted; changed extents are answered for one base only. */
class CbtSource implements DiskSource {
  readonly size: number;
  bytesRead = 0;
  closed = false;
  changedExtentsSince?: (base: string) => Promise<Extent[] | null>;
  /** Awaited before the first read (what happens meanwhile elsewhere, e.g. a user's cancel). */
  beforeFirstRead?: () => Promise<void>;
  constructor(
    private readonly data: Buffer,
    base: string | null,
    changed: Extent[] | null,
    private readonly failAt: number | null = null,
  ) {
    this.size = data.length;
    if (base) this.changedExtentsSince = async (b) => (b === base ? changed : null);
  }
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const hook = this.beforeFirstRead;
    this.beforeFirstRead = undefined;
    await hook?.();
    if (this.failAt !== null && position + length > this.failAt) throw new Error('disk read error');
    const n = Math.max(0, Math.min(length, this.size - position));
    this.data.copy(buf, offset, position, position + n);
    this.bytesRead += n;
    return n;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

interface FakeVm {
  instance: Instance;
  data: Buffer;
  /** Extents written since the last checkpoint this fake handed out. */
  dirty: Extent[];
  failBegin?: boolean;
  failReadAt?: number;
  beforeFirstRead?: () => Promise<void>;
  /** Awaited when the backup session ends (the job has written the manifest when it commits). */
  onEnd?: (outcome: BackupOutcome) => Promise<void>;
}

/** A CBT platform in miniature: every backup takes a new checkpoint and resets the dirty map. */
class FakeCbtPlatform implements Platform {
  readonly name = 'fake-cbt';
  readonly begins: { instanceId: string; opts: BeginBackupOptions }[] = [];
  readonly ends: { instanceId: string; outcome: BackupOutcome }[] = [];
  /** Each readsDone call: the bytes its source had read then, and how many sessions had ended. */
  readonly readsDone: { instanceId: string; bytesRead: number; endsBefore: number }[] = [];
  readonly sources: CbtSource[] = [];
  warnings: string[] = [];
  private seq = 0;
  private readonly current = new Map<string, Checkpoint>();
  constructor(readonly vms: FakeVm[]) {}

  async listInstances(projectId: string): Promise<Instance[]> {
    return this.vms.map((v) => v.instance).filter((i) => i.project_id === projectId);
  }
  async listNetworks(): Promise<PlatformNetwork[]> {
    return [];
  }
  async getInstance(projectId: string, id: string): Promise<Instance | null> {
    return (await this.listInstances(projectId)).find((i) => i.id === id) ?? null;
  }
  async beginBackup(instance: Instance, opts: BeginBackupOptions): Promise<BackupSession> {
    this.begins.push({ instanceId: instance.id, opts });
    const vm = this.vms.find((v) => v.instance.id === instance.id)!;
    if (vm.failBegin) throw new Error(`cannot start the backup of ${instance.name}`);
    // Changed extents only for the checkpoint this platform handed out last (the chain).
    const known = this.current.get(instance.id);
    const trusted = opts.baseCheckpoint && known && known.name === opts.baseCheckpoint.name && known.state === opts.baseCheckpoint.state;
    const source = new CbtSource(Buffer.from(vm.data), trusted ? known.name : null, trusted ? [...vm.dirty] : null, vm.failReadAt ?? null);
    source.beforeFirstRead = vm.beforeFirstRead;
    this.sources.push(source);
    const checkpoint = { name: `ck-${++this.seq}`, state: `<domaincheckpoint><name>ck-${this.seq}</name></domaincheckpoint>` };
    return {
      disks: [{ disk: instance.disks[0]!, source }],
      checkpoint,
      warnings: this.warnings,
      readsDone: () => {
        this.readsDone.push({ instanceId: instance.id, bytesRead: source.bytesRead, endsBefore: this.ends.length });
      },
      end: async (outcome) => {
        this.ends.push({ instanceId: instance.id, outcome });
        await vm.onEnd?.(outcome);
        await source.close();
        if (outcome === 'committed') {
          this.current.set(instance.id, checkpoint);
          vm.dirty = [];
        }
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

function vm(name: string, data: Buffer): FakeVm {
  return {
    instance: {
      id: newId(),
      name,
      project_id: PROJECT,
      status: 'ACTIVE',
      availability_zone: 'nova',
      flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
      security_groups: [],
      nics: [],
      disks: [{ device: '/dev/vda', format: 'raw' }],
      metadata: {},
    },
    data,
    dirty: [],
  };
}

/** Guest writes: new bytes at `offset`, remembered as dirty like a QEMU bitmap would. */
function guestWrite(v: FakeVm, offset: number, length: number): void {
  randomBytes(length).copy(v.data, offset);
  v.dirty.push({ offset, length });
}

describe('snapshot job through a CBT platform seam', () => {
  let h: StoreHandle;
  let repo: Repository;
  const clock = new ManualClock(T0);

  before(async () => {
    h = await openStore('sqlite::memory:');
    repo = await Repository.init(new MemBackend(), { chunkSize: CS, packSize: 1 << 20 }, { clock, logger: silentLogger });
  });
  after(async () => {
    await h.close();
  });

  async function workloadOf(vms: FakeVm[]): Promise<Workload> {
    const w = testWorkload({ project_id: PROJECT, created_at: T0, instances: vms.map((v) => ({ id: v.instance.id, name: v.instance.name, metadata: {} })) });
    await insertWorkload(h.db, w);
    return w;
  }

  /** Locks the workload and runs one snapshot job to its end, like the service + runner would. */
  async function snap(platform: Platform, w: Workload, type: SnapshotType, progressEveryMs = 5): Promise<Snapshot> {
    clock.advance(60_000);
    await h.db.updateTable('workloads').set({ status: 'locked' }).where('id', '=', w.id).execute();
    // As the snapshot-start service leaves it: creating, not yet on any host.
    const s = testSnapshot(w, { status: 'creating', host: '', snapshot_type: type, created_at: clock.now(), finished_at: null });
    await insertSnapshot(h.db, s);
    const handler = snapshotJobHandlers({ db: h.db, platform, repo, clock, nodeName: 'node-1', progressEveryMs }).find((x): x is JobHandler<typeof SNAPSHOT_JOBS.take> => x.kind === SNAPSHOT_JOBS.take)!;
    const job: KindJob<typeof SNAPSHOT_JOBS.take> = {
      id: newId(),
      kind: SNAPSHOT_JOBS.take,
      payload: { snapshotId: s.id },
      resourceId: s.id,
      targetNode: null,
      status: 'running',
      leaseOwner: 'me',
      leaseExpiresAt: null,
      attempts: 1,
      error: null,
      createdAt: clock.now(),
    };
    await handler.run(job, { signal: new AbortController().signal, log: silentLogger }).catch(() => undefined);
    return (await getSnapshot(h.db, { admin: true }, s.id))!;
  }

  async function restored(snapshotId: string, v: FakeVm): Promise<Buffer> {
    const sink = new MemDiskSink(v.data.length);
    await restoreDisk({ repo, snapshotId, diskKey: diskKey(v.instance.id, '/dev/vda'), sink });
    return sink.data;
  }

  it('hands the recorded checkpoint back at begin and reads only the changed extents', async () => {
    const v = vm('vm-cbt', randomBytes(64 * CS));
    const platform = new FakeCbtPlatform([v]);
    const w = await workloadOf([v]);

    const s1 = await snap(platform, w, 'full');
    assert.equal(s1.status, 'available', s1.error_msg ?? '');
    assert.deepEqual(platform.begins[0]!.opts, { baseCheckpoint: null });
    assert.equal(platform.sources[0]!.bytesRead, 64 * CS, 'a full reads the whole disk');
    // Recorded in the DB row and in the manifest, state included (libvirt keeps its XML there).
    const ck1 = { name: 'ck-1', state: '<domaincheckpoint><name>ck-1</name></domaincheckpoint>' };
    assert.deepEqual(JSON.parse((await getSnapshotCheckpoints(h.db, s1.id))!), { [v.instance.id]: ck1 });
    assert.deepEqual(((await repo.readManifest(s1.id)).meta as { checkpoints: unknown }).checkpoints, { [v.instance.id]: ck1 });

    guestWrite(v, 3 * CS + 100, 10);
    guestWrite(v, 40 * CS, 2 * CS); // two whole chunks
    const s2 = await snap(platform, w, 'incremental');
    assert.equal(s2.status, 'available', s2.error_msg ?? '');
    assert.deepEqual(platform.begins[1]!.opts, { baseCheckpoint: ck1 });
    assert.equal(platform.sources[1]!.bytesRead, 3 * CS, 'only the three changed chunks are read');
    assert.ok((await restored(s2.id, v)).equals(v.data), 'the incremental restores byte-exact');
    assert.equal(JSON.parse((await getSnapshotCheckpoints(h.db, s2.id))!)[v.instance.id].name, 'ck-2');

    const s3 = await snap(platform, w, 'incremental');
    assert.equal(s3.status, 'available');
    assert.equal(platform.begins[2]!.opts.baseCheckpoint?.name, 'ck-2', 'the newest snapshot is the next base');
    assert.equal(platform.sources[2]!.bytesRead, 0, 'nothing changed, nothing read');
    assert.deepEqual(
      platform.ends.map((e) => e.outcome),
      ['committed', 'committed', 'committed'],
    );
    assert.ok(platform.sources.every((x) => x.closed));
    // Each session is told once that its disks are read, after the last read, before its end.
    assert.deepEqual(
      platform.readsDone.map((r) => [r.bytesRead, r.endsBefore]),
      [
        [64 * CS, 0],
        [3 * CS, 1],
        [0, 2],
      ],
    );
  });

  it('a full trusts no checkpoint, and a checkpoint the DB and manifest disagree on is not used', async () => {
    const v = vm('vm-chain', randomBytes(16 * CS));
    const platform = new FakeCbtPlatform([v]);
    const w = await workloadOf([v]);
    const s1 = await snap(platform, w, 'full');
    const s2 = await snap(platform, w, 'full');
    assert.equal(s2.status, 'available');
    assert.equal(platform.begins[1]!.opts.baseCheckpoint, null);

    // The DB row now names a checkpoint the manifest does not carry: read in full, correctly.
    await updateSnapshotFields(h.db, s2.id, { checkpoints: JSON.stringify({ [v.instance.id]: { name: 'ck-999' } }) });
    guestWrite(v, 0, 100);
    const s3 = await snap(platform, w, 'incremental');
    assert.equal(s3.status, 'available');
    assert.equal(platform.begins[2]!.opts.baseCheckpoint, null);
    assert.equal(platform.sources[2]!.bytesRead, 16 * CS);
    assert.ok((await restored(s3.id, v)).equals(v.data));
    void s1;
  });

  it("the platform's warnings reach warning_msg", async () => {
    const v = vm('vm-warn', randomBytes(4 * CS));
    const platform = new FakeCbtPlatform([v]);
    platform.warnings = ['checkpoint chain restarted: disk resized'];
    const w = await workloadOf([v]);
    const s = await snap(platform, w, 'full');
    assert.equal(s.status, 'available');
    assert.equal(s.warning_msg, 'checkpoint chain restarted: disk resized');
  });

  it('every opened session is ended on failure: a later begin fails, or a read fails mid-run', async () => {
    const a = vm('vm-a', randomBytes(4 * CS));
    const b = vm('vm-b', randomBytes(4 * CS));
    b.failBegin = true;
    const platform = new FakeCbtPlatform([a, b]);
    const w = await workloadOf([a, b]);
    const s = await snap(platform, w, 'full');
    assert.equal(s.status, 'error');
    assert.match(s.error_msg ?? '', /cannot start the backup of vm-b/);
    assert.deepEqual(platform.ends, [{ instanceId: a.instance.id, outcome: 'failed' }]);
    assert.ok(platform.sources[0]!.closed);
    assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');

    b.failBegin = false;
    b.failReadAt = 2 * CS;
    const s2 = await snap(platform, w, 'full');
    assert.equal(s2.status, 'error');
    assert.match(s2.error_msg ?? '', /disk read error/);
    assert.deepEqual(
      platform.ends.slice(1).map((e) => e.outcome),
      ['failed', 'failed'],
    );
    assert.ok(platform.sources.every((x) => x.closed));
    await assert.rejects(repo.readManifest(s2.id), 'nothing was published');
    assert.equal(await getSnapshotCheckpoints(h.db, s2.id), null);
    // vm-a was read completely and its session told so; vm-b's read failed: its session never was.
    assert.deepEqual(
      platform.readsDone.map((r) => [r.instanceId, r.bytesRead]),
      [[a.instance.id, 4 * CS]],
    );
  });

  /** What the cancel service does to a running snapshot (its row → cancelling). */
  const requestCancel = async (w: Workload): Promise<void> => {
    const row = await h.db.selectFrom('snapshots').select('id').where('workload_id', '=', w.id).where('status', 'in', ['creating', 'executing', 'uploading']).executeTakeFirstOrThrow();
    assert.ok(await transitionSnapshot(h.db, row.id, ['creating', 'executing', 'uploading'], 'cancelling', clock.now() / 1000));
  };
  // The progress ticker (the usual way a cancel is seen) never ticks in these two runs: the copy
  // is shorter than one tick, as a fast disk's is. An accepted cancel must still win.
  const NO_TICK = 3_600_000;

  it('a cancel accepted while the disks are copied ends the snapshot cancelled, even when the copy is shorter than a progress tick', async () => {
    const v = vm('vm-cancel-copy', randomBytes(8 * CS));
    const w = await workloadOf([v]);
    v.beforeFirstRead = () => requestCancel(w);
    const platform = new FakeCbtPlatform([v]);
    const s = await snap(platform, w, 'full', NO_TICK);
    assert.equal(s.status, 'cancelled', s.error_msg ?? '');
    assert.equal(platform.sources[0]!.bytesRead, 8 * CS, 'the copy itself ran to its end');
    assert.deepEqual(platform.ends.map((e) => e.outcome), ['failed'], 'its checkpoint is no base');
    await assert.rejects(repo.readManifest(s.id), 'nothing was published');
    assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
  });

  it('a cancel accepted after the manifest was written (while the sessions end) ends it cancelled and removes it from the target', async () => {
    const v = vm('vm-cancel-commit', randomBytes(4 * CS));
    const w = await workloadOf([v]);
    v.onEnd = async (outcome) => {
      if (outcome === 'committed') await requestCancel(w);
    };
    const platform = new FakeCbtPlatform([v]);
    const s = await snap(platform, w, 'full', NO_TICK);
    assert.equal(s.status, 'cancelled', s.error_msg ?? '');
    await assert.rejects(repo.readManifest(s.id), 'the cancelled snapshot is not on the target');
    assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
  });

  it("a chunk index that cannot load (the writer was handed out before it): the snapshot fails naming the cause, its sessions end, no lease and no object of it stay", async () => {
    const inner = new MemBackend();
    let refuse = false;
    const shared = repo;
    repo = await Repository.init(
      faultyBackend(inner, (op, key) => (refuse && op === 'list' && key.startsWith('index/') ? new Error('target listing refused') : null)),
      { chunkSize: CS, packSize: 1 << 20 },
      { clock, logger: silentLogger },
    );
    try {
      const v = vm('vm-index', randomBytes(16 * CS));
      const platform = new FakeCbtPlatform([v]);
      const w = await workloadOf([v]);
      const s1 = await snap(platform, w, 'full');
      assert.equal(s1.status, 'available', s1.error_msg ?? '');
      const objects = new Set(await listAll(inner, ''));
      refuse = true;
      guestWrite(v, 5 * CS, CS);
      const s2 = await snap(platform, w, 'incremental');
      assert.equal(s2.status, 'error');
      assert.match(s2.error_msg ?? '', /target listing refused/);
      assert.deepEqual(platform.ends.map((e) => e.outcome), ['committed', 'failed'], 'its checkpoint is no base');
      assert.deepEqual((await listAll(inner, '')).filter((k) => !objects.has(k)), [], 'no lease, pack or index of the failed snapshot');
      assert.equal((await getWorkload(h.db, { admin: true }, w.id))?.status, 'available');
      refuse = false;
      const s3 = await snap(platform, w, 'incremental');
      assert.equal(s3.status, 'available', s3.error_msg ?? '');
      assert.ok((await restored(s3.id, v)).equals(v.data));
    } finally {
      repo = shared;
    }
  });
});
