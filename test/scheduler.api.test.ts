import { describe, it, before, after } from 'node:test';
import { TargetCatalog } from '../src/lib/target.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { openStore, type StoreHandle } from '../src/store/db.js';
import { getWorkload } from '../src/store/workload.store.js';
import { Policy } from '../src/identity/policy.js';
import { LocalPlatform } from '../src/platform/local/local.platform.js';
import { MemBackend } from '../src/backend/mem/mem.backend.js';
import { Repository } from '../src/repository/repository.js';
import { WorkloadService } from '../src/services/workload.service.js';
import { SnapshotService } from '../src/services/snapshot.service.js';
import { SchedulerService, GLOBAL_SCHEDULER_DISABLED_MESSAGE } from '../src/services/scheduler.service.js';
import { JobRunner, type AnyJobHandler } from '../src/jobs/runner.js';
import { workloadJobHandlers } from '../src/jobs/workload.job.js';
import { snapshotJobHandlers } from '../src/jobs/snapshot.job.js';
import { Scheduler } from '../src/jobs/scheduler.js';
import { retentionJobHandlers } from '../src/jobs/retention.js';
import { buildHttpServer } from '../src/http/server.js';
import { workloadRoutes } from '../src/http/workloads.routes.js';
import { snapshotRoutes } from '../src/http/snapshots.routes.js';
import { schedulerRoutes } from '../src/http/scheduler.routes.js';
import type { RequestContext } from '../src/domain/context.js';
import { ManualClock } from '../src/lib/clock.js';
import { silentLogger } from '../src/lib/logger.js';
import { makeDisk, waitFor } from './harness.js';

/**
 * Schedules end to end on an app composed like app.ts but driven by a ManualClock: the real
 * HTTP routes, services, job runner, snapshot job (which applies retention when a snapshot
 * completes), local platform and repository (mem backend), plus the Scheduler ticked by the
 * test. The same endpoints on the real service: test/schedules-policies-quotas-settings.service.test.ts.
 */
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 15, 12, 0, 0);
const START = Date.UTC(2026, 0, 15, 13, 0, 0);
const hex = () => randomBytes(16).toString('hex');

describe('schedules, global job scheduler and retention over HTTP (composed app)', () => {
  const alpha = hex();
  const adminProject = hex();
  const clock = new ManualClock(T0);
  let home: string;
  let store: StoreHandle;
  let http: FastifyInstance;
  let runner: JobRunner;
  let scheduler: Scheduler;
  let repo: Repository;
  const vmId = randomUUID();

  const ctxs: Record<string, RequestContext> = {
    alice: { requestId: '', userId: hex(), userName: 'alice', projectId: alpha, projectName: 'alpha', roles: ['member'], isAdmin: false },
    admin: { requestId: '', userId: hex(), userName: 'admin', projectId: adminProject, projectName: 'admin', roles: ['admin'], isAdmin: true },
  };

  async function api(who: 'alice' | 'admin', method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) {
    const r = await http.inject({
      method,
      url: `/v1/${ctxs[who]!.projectId}${path}`,
      headers: { 'x-auth-token': who, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
    return { status: r.statusCode, text: r.body, json: r.body ? (JSON.parse(r.body) as any) : undefined }; // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  async function idle(workloadId: string): Promise<void> {
    await waitFor(
      async () => {
        const w = await getWorkload(store.db, { admin: true }, workloadId);
        const busy = await store.db.selectFrom('jobs').select('id').where('status', 'in', ['queued', 'running']).executeTakeFirst();
        return w?.status === 'available' && !busy;
      },
      10_000,
      'workload idle',
    );
  }

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'lifeboat-sched-api-'));
    const disk = join(home, 'vm1-vda.raw');
    makeDisk(disk, 256 * 1024, 7);
    writeFileSync(
      join(home, 'inventory.json'),
      JSON.stringify({
        instances: [
          {
            id: vmId,
            name: 'vm1',
            project_id: alpha,
            status: 'ACTIVE',
            availability_zone: 'nova',
            flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
            security_groups: ['default'],
            nics: [],
            disks: [{ device: '/dev/vda', path: disk, format: 'raw' }],
            metadata: {},
          },
        ],
      }),
    );
    store = await openStore('sqlite::memory:');
    const platform = await LocalPlatform.open({ inventoryPath: join(home, 'inventory.json'), restoreDir: join(home, 'restores'), logger: silentLogger });
    repo = await Repository.init(new MemBackend(), {}, { clock, logger: silentLogger });
    const policy = Policy.fromRules({}, { log: silentLogger });
    const workloads = new WorkloadService({ db: store.db, platform, clock });
    const snapHandlers: AnyJobHandler[] = snapshotJobHandlers({ db: store.db, platform, repo, clock, nodeName: 'TVM1' });
    runner = new JobRunner({
      db: store.db,
      dialect: store.dialect,
      clock,
      log: silentLogger,
      owner: 'test-worker',
      leaseMs: 10 * 60_000,
      pollMs: 10,
      handlers: [...workloadJobHandlers(store.db, platform, clock), ...snapHandlers, ...retentionJobHandlers({ db: store.db, repo, clock })],
    });
    runner.start();
    scheduler = new Scheduler({ db: store.db, clock, log: silentLogger, targets: TargetCatalog.only('mem://'), onQueued: () => runner.poke() });
    http = await buildHttpServer({
      log: silentLogger,
      publicUrl: 'http://lifeboat.test',
      validator: { validate: async (token) => ({ ...ctxs[token]! }) },
      policy,
      keystoneUri: 'http://keystone.test',
      v1Routes: [
        workloadRoutes({ workloads, policy, publicUrl: 'http://lifeboat.test' }),
        snapshotRoutes({ snapshots: new SnapshotService({ db: store.db, clock, targets: TargetCatalog.only('mem://') }), workloads, policy, publicUrl: 'http://lifeboat.test' }),
        schedulerRoutes({ scheduler: new SchedulerService({ db: store.db, clock }), workloads }),
      ],
    });
  });

  after(async () => {
    await http.close();
    await scheduler.stop();
    await runner.stop();
    await store.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('F13: global job scheduler get/enable/disable; members may read but not change it', async () => {
    assert.deepEqual((await api('alice', 'GET', '/global_job_scheduler')).json, { global_job_scheduler: true });
    const denied = await api('alice', 'POST', '/global_job_scheduler/disable');
    assert.equal(denied.status, 403);
    assert.match(denied.json.forbidden.message, /workload:workload_disable_global_job_scheduler/);
    const off = await api('admin', 'POST', '/global_job_scheduler/disable');
    assert.equal(off.status, 200);
    assert.deepEqual(off.json, { global_job_scheduler: false });
    assert.deepEqual((await api('alice', 'GET', '/global_job_scheduler')).json, { global_job_scheduler: false });
    assert.equal((await api('alice', 'POST', '/global_job_scheduler/enable')).status, 403);
    const on = await api('admin', 'POST', '/global_job_scheduler/enable');
    assert.deepEqual([on.status, on.json], [200, { global_job_scheduler: true }]);
  });

  let wid = '';

  it('F2 + F12: scheduled full snapshots every hour, retention keeps 3, equal spacing, the first is gone', async () => {
    const created = await api('alice', 'POST', '/workloads', {
      workload: {
        name: 'sched',
        instances: [{ 'instance-id': vmId }],
        jobschedule: { fullbackup_interval: '0', retention_policy_type: 'Number of Snapshots to Keep', interval: '1 hrs', enabled: true, start_date: '01/15/26', start_time: '13:00:00', retention_policy_value: 3 },
        metadata: {},
      },
    });
    assert.equal(created.status, 202, created.text);
    wid = created.json.workload.id;
    await idle(wid);
    await scheduler.tick();
    const detail = (await api('alice', 'GET', `/workloads/${wid}`)).json.workload.jobschedule;
    assert.equal(detail.enabled, true);
    assert.equal(Math.trunc(detail.nextrun), 3600);

    const firstIds: string[] = [];
    for (let i = 0; i < 4; i++) {
      clock.set(START + i * HOUR);
      const r = await scheduler.tick();
      assert.equal(r.outcomes.filter((o) => o.kind === 'fired').length, 1, `slot ${i}`);
      await idle(wid);
      if (i === 0) firstIds.push(...(await api('alice', 'GET', `/snapshots?workload_id=${wid}`)).json.snapshots.map((s: { id: string }) => s.id));
    }
    const list = (await api('alice', 'GET', `/snapshots?workload_id=${wid}`)).json.snapshots as { id: string; name: string; status: string }[];
    assert.equal(list.length, 3);
    assert.ok(!list.some((s) => s.id === firstIds[0]), 'the first snapshot is gone');
    const created_at: number[] = [];
    for (const s of list) {
      const d = (await api('alice', 'GET', `/snapshots/${s.id}`)).json.snapshot;
      assert.equal(d.status, 'available');
      assert.equal(d.snapshot_type, 'full');
      assert.equal(d.name, 'jobscheduler');
      created_at.push(Date.parse(`${d.created_at}Z`));
    }
    assert.deepEqual([created_at[1]! - created_at[0]!, created_at[2]! - created_at[1]!], [HOUR, HOUR]);
    // Gone from the target too.
    assert.deepEqual((await repo.listSnapshots()).sort(), list.map((s) => s.id).sort());
  });

  it('pause/resume: 200 with an empty body; enabled false and no nextrun while paused', async () => {
    const p = await api('alice', 'POST', `/workloads/${wid}/pause`);
    assert.equal(p.status, 200);
    assert.equal(p.text, '');
    let js = (await api('alice', 'GET', `/workloads/${wid}`)).json.workload.jobschedule;
    assert.equal(js.enabled, false);
    assert.ok(!('nextrun' in js));
    assert.equal(js.interval, '1 hrs');
    clock.set(START + 4 * HOUR);
    assert.equal((await scheduler.tick()).outcomes.length, 0, 'paused: nothing fires');
    const r = await api('alice', 'POST', `/workloads/${wid}/resume`);
    assert.equal(r.status, 200);
    js = (await api('alice', 'GET', `/workloads/${wid}`)).json.workload.jobschedule;
    assert.equal(js.enabled, true);
    assert.equal(Math.trunc(js.nextrun), 3600);
    assert.equal((await api('admin', 'POST', `/workloads/${wid}/pause`)).status, 404, "another project's workload");
  });

  it('F14 (service level until wired): pause while the global scheduler is disabled → 400 with the exact message', async () => {
    await api('admin', 'POST', '/global_job_scheduler/disable');
    try {
      const r = await api('alice', 'POST', `/workloads/${wid}/pause`);
      assert.equal(r.status, 400);
      assert.equal(r.json.badRequest.message, GLOBAL_SCHEDULER_DISABLED_MESSAGE);
      clock.set(START + 5 * HOUR);
      const t = await scheduler.tick();
      assert.equal(t.outcomes.filter((o) => o.kind === 'fired').length, 0);
    } finally {
      await api('admin', 'POST', '/global_job_scheduler/enable');
    }
  });
});
