import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/config.js';
import { openStore, type StoreHandle } from '../store/db.js';
import { loosePermissionWarnings, preparePrivateFiles } from './file-modes.js';
import { loadOrCreateIdentityFile, type CreatedCredentials } from '../identity/identity-file.js';
import { EmbeddedIdentity } from '../identity/embedded-identity.js';
import { IdentitySource } from '../identity/identity-source.js';
import { Policy } from '../identity/policy.js';
import { applianceTag, SnapshotMounts } from '../recovery/mounts.js';
import { SnapshotMountService } from '../services/snapshot-mount.service.js';
import { snapshotMountRoutes } from '../http/snapshot-mount.routes.js';
import { FileSearchService } from '../services/file-search.service.js';
import { fileSearchJobHandlers } from '../jobs/file-search.job.js';
import { fileSearchRoutes } from '../http/file-search.routes.js';
import { openPlatform } from '../platform/open.js';
import { LibvirtPlatform } from '../platform/libvirt/libvirt.platform.js';
import { libvirtAdminRoutes } from '../http/libvirt-admin.routes.js';
import type { Platform } from '../platform/platform.js';
import { ensureDemoInventory } from '../platform/local/demo-inventory.js';
import { WorkloadService } from '../services/workload.service.js';
import { SnapshotService } from '../services/snapshot.service.js';
import { RestoreService } from '../services/restore.service.js';
import { restoreJobHandlers } from '../jobs/restore.job.js';
import { restoreRoutes } from '../http/restores.routes.js';
import { snapshotJobHandlers } from '../jobs/snapshot.job.js';
import { snapshotRoutes } from '../http/snapshots.routes.js';
import { openBackend } from '../backend/open.js';
import { describeTarget } from '../lib/target.js';
import { Repository } from '../repository/repository.js';
import { GcScheduler } from '../jobs/gc.js';
import { Scheduler } from '../jobs/scheduler.js';
import { retentionJobHandlers } from '../jobs/retention.js';
import { SchedulerService } from '../services/scheduler.service.js';
import { schedulerRoutes } from '../http/scheduler.routes.js';
import { PolicyService } from '../services/policy.service.js';
import { QuotaService } from '../services/quota.service.js';
import { SettingService, loadOrCreateSettingsKey } from '../services/setting.service.js';
import { createSmtpMailer, notifySnapshotFinished, notifyRestoreFinished } from '../jobs/notify.js';
import { policyRoutes } from '../http/policies.routes.js';
import { quotaRoutes } from '../http/quotas.routes.js';
import { settingRoutes } from '../http/settings.routes.js';
import { trustRoutes } from '../http/trusts.routes.js';
import { TrustService } from '../services/trust.service.js';
import { JobRunner } from '../jobs/runner.js';
import { workloadJobHandlers } from '../jobs/workload.job.js';
import { buildHttpServer } from '../http/server.js';
import { HttpDrain } from '../http/drain.js';
import { workloadRoutes } from '../http/workloads.routes.js';
import { identityRoutes } from '../http/identity.routes.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage } from '../lib/errors.js';
import type { TokenValidator } from '../identity/token-validator.js';
import type { IdentityLookup } from '../domain/identity-lookup.js';
import { fileIdentityLookup } from '../identity/file-identity-lookup.js';
import { keystoneIdentityLookup } from '../identity/keystone-identity-lookup.js';
import { scanTarget } from '../jobs/target-catalog.js';
import { ImportService } from '../services/import.service.js';
import { OrphanService } from '../services/orphan.service.js';
import { ReassignService } from '../services/reassign.service.js';
import { drRoutes } from '../http/dr.routes.js';
import { LifeboatMetrics } from '../lib/metrics.js';
import { countJobsByKindAndStatus, pingStore } from '../store/ops.store.js';
import { CONFIG_KEY } from '../repository/keys.js';
import { targetCapacity } from '../backend/capacity.js';
import { AuditService } from '../services/audit.service.js';
import { UsageService, type ProjectLister } from '../services/usage.service.js';
import { adminRoutes } from '../http/admin.routes.js';
import { installAuditTrail } from '../http/audit.hook.js';
import { startOpsServer } from '../http/ops.server.js';

/**
 * The composition root: builds store, identity, policy, platform, services, job runner and
 * HTTP server from a Config. No logic lives here beyond wiring and start/stop order.
 */
export type Role = 'api' | 'worker' | 'all';

export interface StartOptions {
  role: Role;
  /** Create the demo identity and demo VMs when missing (the `npm start` path). */
  demo: boolean;
  clock?: Clock;
  log?: Logger;
  /** Called once with credentials generated for a new identity file (print them; never log). */
  onCredentials?: (created: CreatedCredentials[], demoVms: string[]) => void;
  /** Listen on the configured address (false for tests using inject). */
  listen?: boolean;
}

export interface Lifeboat {
  http: FastifyInstance | null;
  runner: JobRunner | null;
  store: StoreHandle;
  platform: Platform;
  repo: Repository;
  /** host:port actually bound (port 0 in config picks a free one). */
  address: string | null;
  /** Stops at once: running jobs are cancelled and handed over ("service restarted"). */
  close(): Promise<void>;
  /**
   * Graceful stop (SIGTERM/SIGINT): HTTP answers 503 + Retry-After and drops keep-alives, no
   * new job or scheduled run starts, running jobs get LIFEBOAT_SHUTDOWN_GRACE seconds to
   * finish, then the rest are cancelled and handed over; then everything closes.
   */
  shutdown(): Promise<void>;
}

export function createLogger(level: string): Logger {
  return pino({
    level,
    redact: { paths: ['req.headers["x-auth-token"]', 'req.headers["x-subject-token"]', 'password', '*.password'], censor: '[redacted]' },
  }) as unknown as Logger;
}

export async function startLifeboat(config: Config, o: StartOptions): Promise<Lifeboat> {
  const clock = o.clock ?? systemClock;
  const log = o.log ?? createLogger(config.logLevel);
  preparePrivateFiles(config);

  const identityFile = config.keystone ? null : loadOrCreateIdentityFile(config.identity, { demo: o.demo });
  const store = await openStore(config.db);
  try {
    let demoVms: string[] = [];
    if (o.demo && identityFile && config.platform === 'local') {
      const demoProject = identityFile.identity.data.projects.find((p) => p.name === 'demo');
      if (demoProject) {
        const made = await ensureDemoInventory({ inventoryPath: config.inventory, diskDir: join(config.home, 'disks'), projectId: demoProject.id });
        demoVms = made.instances.map((i) => `${i.name} (${i.id})`);
      }
    }
    if (identityFile && (identityFile.created.length > 0 || demoVms.length > 0)) o.onCredentials?.(identityFile.created, demoVms);
    for (const w of [...(identityFile?.warnings ?? []), ...loosePermissionWarnings(config)]) log.warn(w);

    const openstack = config.keystone ? { keystone: config.keystone, ...config.openstack, nodeName: config.nodeName } : undefined;
    const platform = await openPlatform({ kind: config.platform, inventoryPath: config.inventory, restoreDir: config.restoreDir, libvirt: config.libvirt, openstack, logger: log });
    const policy = Policy.load(config.policy ?? undefined, { log });

    let validator: TokenValidator;
    let embedded: EmbeddedIdentity | null = null;
    let keystoneUri: string;
    let identityLookup: IdentityLookup;
    // The identity file is followed as it changes (identity-source.ts).
    const identitySource = identityFile ? new IdentitySource(config.identity, identityFile.identity, log) : null;
    if (identitySource) {
      embedded = new EmbeddedIdentity({
        db: store.db,
        identity: () => identitySource.current(),
        publicUrl: config.publicUrl,
        clock,
        tokenTtlSeconds: config.tokenTtlSeconds,
        loginLimits: config.login,
        log,
      });
      validator = embedded;
      keystoneUri = embedded.identityV3Url;
      identityLookup = fileIdentityLookup(() => identitySource.current());
    } else {
      const { KeystoneValidator } = await import('../identity/keystone-validator.js');
      const k = config.keystone!;
      const keystone = new KeystoneValidator({ url: k.url, username: k.user, password: k.password, projectName: k.project, userDomainName: k.userDomain, projectDomainName: k.projectDomain, clock, log });
      validator = keystone;
      identityLookup = keystoneIdentityLookup(keystone);
      keystoneUri = k.url;
    }

    const targetDescription = describeTarget(config.target);
    const metrics = new LifeboatMetrics();
    metrics.setJobSource(() => countJobsByKindAndStatus(store.db));
    const backend = await openBackend(config.target, {
      create: true,
      connections: config.targetConnections,
      observer: metrics,
      retry: { onRetry: (r) => log.warn({ op: r.op, key: r.key, attempt: r.attempt, delayMs: r.delayMs, err: errorMessage(r.error) }, 'backup target request failed; retrying') },
    });
    const repo = await Repository.init(backend, {}, { clock, logger: log });
    const workloads = new WorkloadService({ db: store.db, platform, clock });
    const restores = new RestoreService({ db: store.db, clock, platform });
    const snapshots = new SnapshotService({ db: store.db, clock, targetDescription });
    const schedulerService = new SchedulerService({ db: store.db, clock });
    const secretKey = loadOrCreateSettingsKey(join(config.home, 'settings.key'));
    const ids = identitySource;
    const projects: ProjectLister | undefined = ids
      ? {
          projectName: async (id: string) => ids.current().projectById(id)?.name ?? null,
          listProjects: async () => ids.current().data.projects.map((p) => ({ id: p.id, name: p.name })),
        }
      : undefined;
    const policies = new PolicyService({ db: store.db, clock, projects });
    const quotas = new QuotaService({ db: store.db, clock, projects });
    const targetScan = () => scanTarget(repo);
    const imports = new ImportService({ db: store.db, clock, scanTarget: targetScan, projects: identityLookup });
    const orphans = new OrphanService({ db: store.db, clock, identity: identityLookup, scanTarget: targetScan });
    const reassign = new ReassignService({ db: store.db, clock, identity: identityLookup });
    const mailer = createSmtpMailer({ allow: config.smtpAllow, log });
    const settings = new SettingService({ db: store.db, clock, secretKey, mailer });
    const notify = { db: store.db, secretKey, log, mailer };
    const audit = new AuditService({ db: store.db, clock, log, retentionDays: config.auditRetentionDays });
    /** The target answers and holds this repository (readiness, storage view). */
    const checkTarget = async () => {
      if ((await backend.stat(CONFIG_KEY)) === null) throw new Error('the repository config is missing');
    };
    const targetUsage = async () => ({
      name: 'default',
      kind: config.target.kind,
      description: targetDescription,
      online: await checkTarget().then(() => true, () => false),
      capacity: await targetCapacity(config.target).catch(() => null),
    });
    const usage = new UsageService({ db: store.db, platform, projects, targets: async () => [await targetUsage()] });

    let runner: JobRunner | null = null;
    let gc: GcScheduler | null = null;
    let scheduler: Scheduler | null = null;
    // File-level recovery: mounts live in the worker process of this host (recovery/mounts.ts).
    const fr = config.fileRecovery;
    const mountEngine =
      o.role !== 'api'
        ? new SnapshotMounts({ home: config.home, repo, forceTcg: fr.forceTcg, idleMs: fr.mountIdleSeconds * 1000, logger: log, onExpired: (id) => void snapshotMounts.released(id).catch(() => undefined) })
        : null;
    const snapshotMounts = new SnapshotMountService({ db: store.db, clock, platform, mounts: mountEngine, log });
    if (mountEngine) await snapshotMounts.reconcile();
    const searches = new FileSearchService({ db: store.db, clock });
    if (o.role !== 'api') {
      const gcs = new GcScheduler(store.db, repo, log);
      gc = gcs;
      runner = new JobRunner({
        db: store.db,
        dialect: store.dialect,
        clock,
        log,
        owner: `${config.nodeName}:${process.pid}:${randomBytes(4).toString('hex')}`,
        leaseMs: config.jobLeaseSeconds * 1000,
        nodeName: config.nodeName,
        concurrency: config.workerConcurrency,
        handlers: [
          ...fileSearchJobHandlers({ db: store.db, repo, clock, home: config.home, forceTcg: fr.forceTcg, tag: applianceTag(config.home) }),
          ...workloadJobHandlers(store.db, platform, clock),
          ...snapshotJobHandlers({
            db: store.db,
            platform,
            repo,
            clock,
            nodeName: config.nodeName,
            onSnapshotDeleted: () => gcs.request(),
            onSnapshotFinished: (id) => void notifySnapshotFinished(notify, id),
            metrics,
          }),
          ...retentionJobHandlers({ db: store.db, repo, clock, onSnapshotDeleted: () => gcs.request() }),
          ...restoreJobHandlers({ db: store.db, platform, repo, clock, nodeName: config.nodeName, onRestoreFinished: (id) => void notifyRestoreFinished(notify, id) }),
        ],
      });
      await runner.reconcile();
      runner.start();
      const r = runner;
      scheduler = new Scheduler({ db: store.db, clock, log, targetDescription, onQueued: () => r.poke() });
      scheduler.start();
    }

    // Expired tokens are useless; keep the table small.
    const purge = embedded ? setInterval(() => void embedded?.purgeExpired().catch(() => undefined), 10 * 60_000) : null;
    purge?.unref();

    let http: FastifyInstance | null = null;
    let address: string | null = null;
    const drain = new HttpDrain();
    const ops = { metrics, metricsAccess: config.metricsAccess, readiness: [{ name: 'store', check: () => pingStore(store.db) }, { name: 'target', check: checkTarget }] };
    if (o.role !== 'worker') {
      http = await buildHttpServer({
        drain,
        log,
        publicUrl: config.publicUrl,
        validator,
        policy,
        keystoneUri,
        v1Routes: [
          workloadRoutes({ workloads, policy, publicUrl: config.publicUrl }),
          snapshotRoutes({ snapshots, workloads, policy }),
          snapshotMountRoutes({ snapshots, mounts: snapshotMounts }),
          fileSearchRoutes({ searches }),
          restoreRoutes({ restores, snapshots, publicUrl: config.publicUrl }),
          ...(platform instanceof LibvirtPlatform ? [libvirtAdminRoutes({ assign: (uuid, projectId) => platform.assign(uuid, projectId) })] : []),
          schedulerRoutes({ scheduler: schedulerService, workloads }),
          policyRoutes({ policies, policy }),
          quotaRoutes({ quotas }),
          settingRoutes({ settings, policy }),
          trustRoutes({ trusts: new TrustService({ db: store.db, clock, broker: platform.trusts ?? null }) }),
          drRoutes({ workloads, imports, orphans, reassign, publicUrl: config.publicUrl }),
          adminRoutes({ usage, audit }),
        ],
        v1Hooks: [(v1) => installAuditTrail(v1, audit, log)],
        ops,
        rootMounts: embedded ? [(app) => app.register(identityRoutes, { prefix: '/identity', identity: embedded })] : [],
      });
      // Same-process workers start a job as soon as it is enqueued instead of on the next poll.
      if (runner) {
        const r = runner;
        http.addHook('onResponse', async (req) => {
          if (req.method !== 'GET') r.poke();
        });
      }
      if (o.listen !== false) {
        await http.listen({ host: config.listen.host, port: config.listen.port });
        const a = http.server.address();
        address = a && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : null;
      } else {
        await http.ready();
      }
    }
    const opsHttp = config.metricsListen ? await startOpsServer({ log, validator, policy, keystoneUri, ops, listen: config.metricsListen }) : null;

    return {
      http,
      runner,
      store,
      platform,
      repo,
      address,
      async close() {
        if (purge) clearInterval(purge);
        await http?.close();
        await opsHttp?.close();
        await scheduler?.stop();
        await snapshotMounts.close(); // file recovery: no mount outlives the service
        await runner?.stop();
        await gc?.stop();
        await store.close();
      },
      async shutdown() {
        if (purge) clearInterval(purge);
        drain.start();
        await scheduler?.stop();
        await snapshotMounts.close(); // file recovery: no mount outlives the service
        await runner?.stop(config.shutdownGraceSeconds * 1000);
        await http?.close();
        await opsHttp?.close();
        await gc?.stop();
        await store.close();
      },
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}
