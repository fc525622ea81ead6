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
import { encryptionKeyWarning, openRepositories, platformSettings, probeTarget } from './targets.js';
import type { RepositorySet } from '../repository/repository-set.js';
import { TargetCatalog, type NamedTarget } from '../lib/target.js';
import type { Repository } from '../repository/repository.js';
import { GcScheduler } from '../jobs/gc.js';
import { Scheduler } from '../jobs/scheduler.js';
import { retentionJobHandlers } from '../jobs/retention.js';
import { SchedulerService } from '../services/scheduler.service.js';
import { schedulerRoutes } from '../http/scheduler.routes.js';
import { PolicyService } from '../services/policy.service.js';
import { QuotaService } from '../services/quota.service.js';
import { SettingService, loadOrCreateSettingsKey } from '../services/setting.service.js';
import { NodeRegistry, listNodeInfo } from '../services/node.service.js';
import { settingsKeyId } from '../store/setting.store.js';
import { WLM_VERSION } from '../domain/snapshot.js';
import { nodeRoutes } from '../http/nodes.routes.js';
import { repoVerifyRoutes } from '../http/repo-verify.routes.js';
import { RepoVerifyService } from '../services/repo-verify.service.js';
import { repoVerifyJobHandlers } from '../jobs/repo-verify.job.js';
import { platformRoutes } from '../http/platform.routes.js';
import { PlatformInventoryService } from '../services/platform-inventory.service.js';
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
import { backupTargetRoutes } from '../http/backup-targets.routes.js';
import { BackupTargetService } from '../services/backup-target.service.js';
import { identityRoutes } from '../http/identity.routes.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { TokenValidator } from '../identity/token-validator.js';
import type { IdentityLookup } from '../domain/identity-lookup.js';
import { fileIdentityLookup } from '../identity/file-identity-lookup.js';
import { keystoneIdentityLookup } from '../identity/keystone-identity-lookup.js';
import { scanTargets } from '../jobs/target-catalog.js';
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
  /** The default target's repository. */
  repo: Repository;
  /** Every configured target's repository. */
  repos: RepositorySet;
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
  let stopOnFailure: () => Promise<void> = async () => undefined;
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
    const keyWarning = encryptionKeyWarning(config);
    if (keyWarning) log.warn(keyWarning);

    const platform = await openPlatform(platformSettings(config, log));
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

    const metrics = new LifeboatMetrics();
    metrics.setJobSource(() => countJobsByKindAndStatus(store.db));
    const targets = TargetCatalog.of(config.targets, config.defaultTarget);
    const repos = await openRepositories(config, 'init', { clock, log, observer: metrics, keyManager: platform.keyManager });
    const repo = repos.default;
    const backend = repo.backend;
    const workloads = new WorkloadService({ db: store.db, platform, clock, targets });
    const backupTargets = new BackupTargetService({ db: store.db, catalog: targets, targets: config.targets, probe: (t) => probeTarget(repos, t) });
    const restores = new RestoreService({ db: store.db, clock, platform });
    const snapshots = new SnapshotService({ db: store.db, clock, targets });
    const schedulerService = new SchedulerService({ db: store.db, clock });
    const secretKey = loadOrCreateSettingsKey(config.settingsKey.path, { create: config.settingsKey.create });
    const ids = identitySource;
    const projects: ProjectLister | undefined = ids
      ? {
          projectName: async (id: string) => ids.current().projectById(id)?.name ?? null,
          listProjects: async () => ids.current().data.projects.map((p) => ({ id: p.id, name: p.name })),
        }
      : undefined;
    const policies = new PolicyService({ db: store.db, clock, projects });
    const quotas = new QuotaService({ db: store.db, clock, projects });
    const targetScan = () => scanTargets(repos);
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
    // Every configured target (LIFEBOAT_TARGETS), as the storage view lists them.
    const targetUsage = async (t: NamedTarget) => ({
      name: t.name,
      kind: t.target.kind,
      description: targets.describe(t.name),
      online: await repos.get(t.name).backend.stat(CONFIG_KEY).then((x) => x !== null, () => false),
      capacity: await targetCapacity(t.target).catch(() => null),
    });
    const usage = new UsageService({ db: store.db, platform, projects, targets: () => Promise.all(config.targets.map(targetUsage)) });

    // This process in the node registry (admin metrics/nodes); refuses to start on a settings
    // key other than the one the running nodes and the stored secrets use.
    const owner = `${config.nodeName}:${process.pid}:${randomBytes(4).toString('hex')}`;
    const leaseMs = config.jobLeaseSeconds * 1000;
    let runner: JobRunner | null = null;
    const registry = new NodeRegistry({
      db: store.db,
      clock,
      log,
      id: owner,
      nodeName: config.nodeName,
      role: o.role,
      version: WLM_VERSION,
      settingsKeyId: settingsKeyId(secretKey),
      settingsKeySource: config.settingsKey.create ? 'settings.key in LIFEBOAT_HOME' : 'LIFEBOAT_SETTINGS_KEY_FILE',
      concurrency: o.role === 'api' ? 0 : config.workerConcurrency,
      running: () => runner?.running ?? 0,
      heartbeatMs: Math.max(250, Math.min(10_000, Math.floor(leaseMs / 3))),
    });
    await registry.register(leaseMs);
    stopOnFailure = () => registry.stop();
    let gc: GcScheduler[] = [];
    let scheduler: Scheduler | null = null;
    // File-level recovery: mounts live in the worker process of this host (recovery/mounts.ts).
    const fr = config.fileRecovery;
    const mountEngine =
      o.role !== 'api'
        ? new SnapshotMounts({ home: config.home, repos, forceTcg: fr.forceTcg, idleMs: fr.mountIdleSeconds * 1000, logger: log, onExpired: (id) => void snapshotMounts.released(id).catch(() => undefined) })
        : null;
    const snapshotMounts = new SnapshotMountService({ db: store.db, clock, platform, mounts: mountEngine, log });
    if (mountEngine) await snapshotMounts.reconcile();
    const searches = new FileSearchService({ db: store.db, clock });
    if (o.role !== 'api') {
      // One collector per target, each told only the snapshots its target holds.
      gc = repos.entries().map((t) => new GcScheduler(store.db, t.repo, log, undefined, { name: t.name, isDefault: t.isDefault }));
      const gcs = { request: () => gc.forEach((g) => g.request()) };
      runner = new JobRunner({
        db: store.db,
        dialect: store.dialect,
        clock,
        log,
        owner,
        leaseMs,
        nodeName: config.nodeName,
        concurrency: config.workerConcurrency,
        handlers: [
          ...repoVerifyJobHandlers({ db: store.db, repo: repos, clock }),
          ...fileSearchJobHandlers({ db: store.db, repo: repos, clock, home: config.home, forceTcg: fr.forceTcg, tag: applianceTag(config.home) }),
          ...workloadJobHandlers(store.db, platform, clock),
          ...snapshotJobHandlers({
            db: store.db,
            platform,
            repo: repos,
            clock,
            nodeName: config.nodeName,
            liveWindowMs: leaseMs,
            onSnapshotDeleted: () => gcs.request(),
            onSnapshotFinished: (id) => void notifySnapshotFinished(notify, id),
            metrics,
          }),
          ...retentionJobHandlers({ db: store.db, repo: repos, clock, onSnapshotDeleted: () => gcs.request() }),
          ...restoreJobHandlers({ db: store.db, platform, repo: repos, clock, nodeName: config.nodeName, onRestoreFinished: (id) => void notifyRestoreFinished(notify, id) }),
        ],
      });
      // Reconciles (repairs of jobs lost with a dead worker) run in the background from here on.
      runner.start();
      const r = runner;
      scheduler = new Scheduler({ db: store.db, clock, log, targets, onQueued: () => r.poke() });
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
          // Scale-out admin views (issue 14): configured targets, registered nodes.
          backupTargetRoutes({ targets: backupTargets }),
          nodeRoutes({ nodes: () => listNodeInfo(store.db, clock.now(), leaseMs), jobs: () => countJobsByKindAndStatus(store.db) }),
          platformRoutes({ inventory: new PlatformInventoryService(platform) }),
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
          repoVerifyRoutes({ verifications: new RepoVerifyService({ db: store.db, clock, targets }) }),
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
      repos,
      address,
      async close() {
        if (purge) clearInterval(purge);
        await http?.close();
        await opsHttp?.close();
        await scheduler?.stop();
        await snapshotMounts.close(); // file recovery: no mount outlives the service
        await runner?.stop();
        await Promise.all(gc.map((g) => g.stop()));
        await registry.stop();
        await platform.close?.(); // after the last job: no platform process outlives the service
        await store.close();
      },
      async shutdown() {
        if (purge) clearInterval(purge);
        drain.start();
        await registry.draining();
        await scheduler?.stop();
        await snapshotMounts.close(); // file recovery: no mount outlives the service
        await runner?.stop(config.shutdownGraceSeconds * 1000);
        await http?.close();
        await opsHttp?.close();
        await Promise.all(gc.map((g) => g.stop()));
        await registry.stop();
        await platform.close?.(); // after the last job: no platform process outlives the service
        await store.close();
      },
    };
  } catch (e) {
    await stopOnFailure().catch(() => undefined);
    await store.close();
    throw e;
  }
}
