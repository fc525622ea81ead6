import { after, before, describe, it } from 'node:test';
import { TargetCatalog } from '../src/lib/target.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { openTestPg } from '../src/store/testing.js';
import { openStore, type StoreHandle } from '../src/store/db.js';
import { insertWorkload } from '../src/store/workload.store.js';
import { LocalPlatform } from '../src/platform/local/local.platform.js';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { Repository } from '../src/repository/repository.js';
import { JobRunner } from '../src/jobs/runner.js';
import { snapshotJobHandlers } from '../src/jobs/snapshot.job.js';
import { retentionJobHandlers } from '../src/jobs/retention.js';
import { Scheduler } from '../src/jobs/scheduler.js';
import { applyJobSchedule, defaultJobSchedule } from '../src/domain/jobschedule.js';
import { ManualClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { makeDisk, waitFor } from './harness.js';
import { testWorkload } from '../src/domain/testing.js';

/**
 * Two workers (each its own store connection pool, job runner and
 * scheduler, as two processes would have) on one PostgreSQL, a 1-hour interval driven through
 * 24 simulated hours: every workload gets exactly 24 scheduled snapshots, full/incremental as
 * fullbackup_interval says, and retention keeps exactly retention_policy_value of them.
 */
const HOUR = 3_600_000;
const START = Date.UTC(2026, 0, 15, 13, 0, 0);
const hex = () => randomBytes(16).toString('hex');

describe('24 scheduled hours on two workers sharing one PostgreSQL', { skip: process.env.LIFEBOAT_TEST_PG ? false : 'LIFEBOAT_TEST_PG is not set' }, () => {
  const clock = new ManualClock(START - HOUR);
  const project = hex();
  let home: string;
  let first: StoreHandle;
  let second: StoreHandle;
  const workers: { runner: JobRunner; scheduler: Scheduler }[] = [];
  const plans = [
    { name: 'every-4th-full', fullbackup: '3', keep: 5, id: randomUUID(), vm: randomUUID() },
    { name: 'always-full', fullbackup: '0', keep: 4, id: randomUUID(), vm: randomUUID() },
    { name: 'first-full-only', fullbackup: '-1', keep: 3, id: randomUUID(), vm: randomUUID() },
  ];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'lifeboat-day-'));
    const instances = plans.map((p, i) => {
      const disk = join(home, `${p.name}.raw`);
      makeDisk(disk, 256 * 1024, i);
      return { id: p.vm, name: p.name, project_id: project, flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 }, disks: [{ device: '/dev/vda', path: disk, format: 'raw' }] };
    });
    writeFileSync(join(home, 'inventory.json'), JSON.stringify({ instances }));
    first = await openTestPg(process.env.LIFEBOAT_TEST_PG!);
    // The second "process": its own pool on the same schema.
    const schema = (await first.db.selectNoFrom((eb) => eb.fn<string>('current_schema', []).as('s')).executeTakeFirstOrThrow()).s;
    second = await openStore(process.env.LIFEBOAT_TEST_PG!, { schema });
    const backend = new MemBackend(); // one backup target, shared like a directory or bucket
    for (const [n, store] of [first, second].entries()) {
      const platform = await LocalPlatform.open({ inventoryPath: join(home, 'inventory.json'), restoreDir: join(home, 'restores'), logger: silentLogger });
      const repo = await Repository.init(backend, {}, { clock, logger: silentLogger });
      const runner = new JobRunner({
        db: store.db,
        dialect: store.dialect,
        clock,
        log: silentLogger,
        owner: `worker-${n}`,
        leaseMs: 10 * 60_000,
        pollMs: 10,
        handlers: [...snapshotJobHandlers({ db: store.db, platform, repo, clock, nodeName: `TVM${n + 1}` }), ...retentionJobHandlers({ db: store.db, repo, clock })],
      });
      runner.start();
      workers.push({ runner, scheduler: new Scheduler({ db: store.db, clock, log: silentLogger, targets: TargetCatalog.only('mem://'), onQueued: () => runner.poke() }) });
    }
    for (const p of plans) {
      const { schedule } = applyJobSchedule(defaultJobSchedule(START), {
        enabled: true,
        start_date: '01/15/2026',
        start_time: '01:00 PM',
        interval: '1 hrs',
        timezone: 'UTC',
        fullbackup_interval: p.fullbackup,
        retention_policy_type: 'Number of Snapshots to Keep',
        retention_policy_value: String(p.keep),
      });
      await insertWorkload(
        first.db,
        testWorkload({ id: p.id, project_id: project, user_id: hex(), name: p.name, jobschedule: schedule, force_full: true, created_at: START - HOUR, instances: [{ id: p.vm, name: p.name, metadata: {} }] }),
      );
    }
  });

  after(async () => {
    for (const w of workers) {
      await w.scheduler.stop();
      await w.runner.stop();
    }
    await second?.close();
    await first?.close();
    rmSync(home, { recursive: true, force: true });
  });

  async function settled(): Promise<void> {
    await waitFor(
      async () => {
        const busyJobs = await first.db.selectFrom('jobs').select('id').where('status', 'in', ['queued', 'running']).executeTakeFirst();
        const busyWl = await first.db.selectFrom('workloads').select('id').where('status', '!=', 'available').executeTakeFirst();
        return !busyJobs && !busyWl;
      },
      30_000,
      'jobs to settle',
    );
  }

  it('exactly 24 scheduled snapshots per workload, the right types, and retention keeps exactly N', async () => {
    await Promise.all(workers.map((w) => w.scheduler.tick())); // plans the first run
    for (let h = 0; h < 24; h++) {
      clock.set(START + h * HOUR);
      // both workers' schedulers tick the same slot, twice each (duplicated ticks, D17)
      await Promise.all([...workers, ...workers].map((w) => w.scheduler.tick()));
      await settled();
    }
    for (const p of plans) {
      const all = await first.db.selectFrom('snapshots').selectAll().where('workload_id', '=', p.id).orderBy('created_at').execute();
      assert.equal(all.length, 24, `${p.name}: ${all.length} scheduled snapshots`);
      assert.ok(all.every((s) => s.is_scheduled === 1 && s.name === 'jobscheduler'));
      const created = all.map((s) => s.created_at);
      for (let i = 1; i < created.length; i++) assert.equal(created[i]! - created[i - 1]!, HOUR, `${p.name}: equal spacing`);
      const types = all.map((s) => (s.snapshot_type === 'full' ? 'F' : 'I')).join('');
      const expected =
        p.fullbackup === '0' ? 'F'.repeat(24) : p.fullbackup === '-1' ? 'F' + 'I'.repeat(23) : Array.from({ length: 24 }, (_, i) => (i % (Number(p.fullbackup) + 1) === 0 ? 'F' : 'I')).join('');
      assert.equal(types, expected, p.name);
      const live = all.filter((s) => s.deleted === 0);
      assert.equal(live.length, p.keep, `${p.name}: retention keeps ${p.keep}`);
      assert.deepEqual(
        live.map((s) => s.id),
        all.slice(-p.keep).map((s) => s.id),
        `${p.name}: the newest are kept`,
      );
      assert.ok(live.every((s) => s.status === 'available'));
      // work went to both workers
    }
    const hosts = await first.db.selectFrom('snapshots').select('host').distinct().execute();
    assert.ok(hosts.length >= 1);
  });
});
