import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore, type StoreHandle } from '../src/store/db.js';
import { claimJob, enqueueJob } from '../src/store/job.store.js';
import { getRestore, insertRestore } from '../src/store/restore.store.js';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { Repository } from '../src/repository/repository.js';
import { LocalPlatform } from '../src/platform/local/local.platform.js';
import { writeTestInventory } from '../src/platform/local/demo-inventory.js';
import { RESTORE_LOST_MESSAGE, type Restore, type RestoreKind, type RestorePlan } from '../src/domain/restore.js';
import { ManualClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { newId } from '../src/lib/ids.js';
import { RESTORE_JOBS } from '../src/jobs/kinds.js';
import { JobRunner } from '../src/jobs/runner.js';
import { restoreJobHandlers } from '../src/jobs/restore.job.js';

/**
 * A restore whose worker was killed leaves files behind (the process never reached commit or
 * discard). The reconciler, once the job's lease has expired, fails the restore and has the
 * platform remove exactly what that restore left: the in-place temp file beside the image, or
 * the partial directory of a new instance. Each case first shows the leftover exists.
 */
const P = 'c'.repeat(32);
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const LEASE = 1000;

describe('reconciler after a killed restore (local platform)', () => {
  let dir: string;
  let h: StoreHandle;
  let platform: LocalPlatform;
  let vmId: string;
  let image: string;
  const clock = new ManualClock(T0);

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-restore-job-'));
    const inv = await writeTestInventory(dir, [{ name: 'vm', projectId: P, disks: [{ sizeMiB: 1 }] }]);
    vmId = inv.instances[0]!.id;
    image = inv.instances[0]!.disks[0]!.path;
    platform = await LocalPlatform.open({ inventoryPath: inv.inventoryPath, restoreDir: path.join(dir, 'instances') });
    h = await openStore('sqlite::memory:');
  });
  after(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A restore row and its job, claimed by a worker that then "dies" (its lease runs out). */
  async function runningRestore(kind: RestoreKind): Promise<{ restore: Restore; plan: RestorePlan }> {
    const plan: RestorePlan = { kind, instances: [{ id: vmId, name: 'vm-restored', availability_zone: 'nova', devices: ['/dev/vda'], networkMap: {} }] };
    const restore: Restore = {
      id: newId(),
      project_id: P,
      user_id: 'd'.repeat(32),
      snapshot_id: newId(),
      workload_id: newId(),
      name: 'r',
      description: '',
      status: 'executing',
      kind,
      options: {},
      host: 'dead-node',
      size: 0,
      uploaded_size: 0,
      progress_percent: 0,
      progress_msg: null,
      warning_msg: null,
      error_msg: null,
      time_taken: 0,
      instances: [],
      metadata: [],
      created_at: clock.now(),
      updated_at: null,
      finished_at: null,
    };
    await insertRestore(h.db, restore);
    await enqueueJob(h.db, { kind: RESTORE_JOBS.run, payload: { restoreId: restore.id, plan }, resourceId: restore.id, now: clock.now() });
    assert.ok(await claimJob(h.db, h.dialect, 'dead-worker', LEASE, clock.now()));
    return { restore, plan };
  }

  async function reconcile(): Promise<void> {
    clock.advance(LEASE + 1);
    const repo = await Repository.init(new MemBackend(), {}, { clock, logger: silentLogger });
    const runner = new JobRunner({ db: h.db, dialect: h.dialect, clock, log: silentLogger, owner: 'survivor', leaseMs: LEASE, handlers: restoreJobHandlers({ db: h.db, platform, repo, clock, nodeName: 'n' }) });
    assert.equal(await runner.reconcile(), 1);
  }

  it('an interrupted in-place restore: its temp file is removed, the image untouched', async () => {
    const { restore } = await runningRestore('inplace');
    const original = await readFile(image);
    // What the dead worker had done: a sink opened and half written, never committed.
    const prepared = await platform.openInPlaceSinks(P, vmId, [{ device: '/dev/vda', size: 1 << 20 }], { restoreId: restore.id });
    await prepared.sinks.get('/dev/vda')!.write(randomBytes(65536), 0);
    const temps = async () => (await readdir(path.dirname(image))).filter((n) => n.endsWith('.tmp'));
    assert.equal((await temps()).length, 1, 'the leftover temp file exists');

    await reconcile();
    assert.deepEqual(await temps(), []);
    assert.ok((await readFile(image)).equals(original));
    const r = await getRestore(h.db, { admin: true }, restore.id);
    assert.equal(r?.status, 'error');
    assert.equal(r?.error_msg, RESTORE_LOST_MESSAGE);
    await prepared.discard(); // the "dead" worker's descriptor, still open in this test process
  });

  it("a killed one-click restore: the new instance's partial directory is removed", async () => {
    const { restore } = await runningRestore('oneclick');
    const partial = await platform.createInstance(
      P,
      { name: 'vm-restored', availability_zone: 'nova', flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 }, security_groups: [], nics: [], metadata: {}, disks: [{ device: '/dev/vda', format: 'raw', size: 1 << 20 }] },
      { restoreId: restore.id },
    );
    await partial.sinks.get('/dev/vda')!.write(randomBytes(65536), 0);
    const restoreDir = path.join(dir, 'instances');
    assert.ok((await readdir(restoreDir)).includes(partial.instance.id), 'the partial instance directory exists');

    await reconcile();
    assert.deepEqual(await readdir(restoreDir), []);
    assert.equal(await platform.getInstance(P, partial.instance.id), null);
    assert.equal((await getRestore(h.db, { admin: true }, restore.id))?.status, 'error');
    await partial.discard();
  });
});
