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
    await announceStart(config, o, identityFile, log);
    const platform = await openPlatform(platformSettings(config, log));
    const policy = Policy.load(config.policy ?? undefined, { log });
    const identity = await openIdentity(config, store, identityFile, clock, log);
    const metrics = new LifeboatMetrics();
    metrics.setJobSource(() => countJobsByKindAndStatus(store.db));
    const targets = TargetCatalog.of(config.targets, config.defaultTarget);
    const repos = await openRepositories(config, 'init', { clock, log, observer: metrics, keyManager: platform.keyManager });
    const services = buildServices({ config, store, platform, repos, targets, identity, clock, log });

    // This process in the node registry (admin metrics/nodes).
    const owner = `${config.nodeName}:${process.pid}:${randomBytes(4).toString('hex')}`;
    const leaseMs = config.jobLeaseSeconds * 1000;
    const work: WorkerParts = { runner: null, scheduler: null, gc: [] };
    const registry = await registerNode({ config, store, clock, log, owner, leaseMs, role: o.role, secretKey: services.secretKey, running: () => work.runner?.running ?? 0 });
    stopOnFailure = () => registry.stop();
    const snapshotMounts = await openFileRecovery({ config, store, platform, repos, clock, log, role: o.role });
    if (o.role !== 'api') Object.assign(work, startWorker({ config, store, platform, repos, clock, log, owner, leaseMs, metrics, notify: services.notify, targets: services.targets }));

    // Expired tokens are useless; keep the table small.
    const embedded = identity.embedded;
    const purge = embedded ? setInterval(() => void embedded.purgeExpired().catch(() => undefined), 10 * 60_000) : null;
    purge?.unref();

    const drain = new HttpDrain();
    const ops = { metrics, metricsAccess: config.metricsAccess, readiness: [{ name: 'store', check: () => pingStore(store.db) }, { name: 'target', check: services.checkTarget }] };
    const api =
      o.role !== 'worker'
        ? await startApi({ config, o, store, platform, policy, identity, services, snapshotMounts, clock, log, leaseMs, drain, ops, runner: work.runner })
        : { http: null, address: null };
    const opsHttp = config.metricsListen
      ? await startOpsServer({ log, validator: identity.validator, policy, keystoneUri: identity.keystoneUri, ops, listen: config.metricsListen })
      : null;

    const { http } = api;
    const { runner, scheduler, gc } = work;
    return {
      http,
      runner,
      store,
      platform,
      repo: repos.default,
      repos,
      address: api.address,
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

type IdentityFile = ReturnType<typeof loadOrCreateIdentityFile>;

/** Makes the demo VMs when asked (`npm start`), hands new credentials to the caller, and logs the startup warnings. */
async function announceStart(config: Config, o: StartOptions, identityFile: IdentityFile | null, log: Logger): Promise<void> {
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
}

interface IdentityParts {
  validator: TokenValidator;
  /** The embedded Keystone-compatible identity (null with an external Keystone). */
  embedded: EmbeddedIdentity | null;
  /** The identity file, followed as it changes (identity-source.ts); null with an external Keystone. */
  source: IdentitySource | null;
  keystoneUri: string;
  lookup: IdentityLookup;
}

/** The embedded identity over the identity file, or an external Keystone when configured. */
async function openIdentity(config: Config, store: StoreHandle, identityFile: IdentityFile | null, clock: Clock, log: Logger): Promise<IdentityParts> {
  if (identityFile) {
    const source = new IdentitySource(config.identity, identityFile.identity, log);
    const embedded = new EmbeddedIdentity({
      db: store.db,
      identity: () => source.current(),
      publicUrl: config.publicUrl,
      clock,
      tokenTtlSeconds: config.tokenTtlSeconds,
      loginLimits: config.login,
      log,
    });
    return { validator: embedded, embedded, source, keystoneUri: embedded.identityV3Url, lookup: fileIdentityLookup(() => source.current()) };
  }
  const { KeystoneValidator } = await import('../identity/keystone-validator.js');
  const k = config.keystone!;
  const keystone = new KeystoneValidator({ url: k.url, username: k.user, password: k.password, projectName: k.project, userDomainName: k.userDomain, projectDomainName: k.projectDomain, clock, log });
  return { validator: keystone, embedded: null, source: null, keystoneUri: k.url, lookup: keystoneIdentityLookup(keystone) };
}

interface ServiceDeps {
  config: Config;
  store: StoreHandle;
  platform: Platform;
  repos: RepositorySet;
  targets: TargetCatalog;
  identity: IdentityParts;
  clock: Clock;
  log: Logger;
}

/** The services behind the API (no I/O beyond reading or creating the settings key). */
function buildServices({ config, store, platform, repos, targets, identity, clock, log }: ServiceDeps) {
  const db = store.db;
  const secretKey = loadOrCreateSettingsKey(config.settingsKey.path, { create: config.settingsKey.create });
  const ids = identity.source;
  const projects: ProjectLister | undefined = ids
    ? {
        projectName: async (id: string) => ids.current().projectById(id)?.name ?? null,
        listProjects: async () => ids.current().data.projects.map((p) => ({ id: p.id, name: p.name })),
      }
    : undefined;
  const targetScan = () => scanTargets(repos);
  const mailer = createSmtpMailer({ allow: config.smtpAllow, log });
  const audit = new AuditService({ db, clock, log, retentionDays: config.auditRetentionDays });
  return {
    targets,
    secretKey,
    audit,
    workloads: new WorkloadService({ db, platform, clock, targets }),
    backupTargets: new BackupTargetService({ db, catalog: targets, targets: config.targets, probe: (t) => probeTarget(repos, t) }),
    restores: new RestoreService({ db, clock, platform }),
    snapshots: new SnapshotService({ db, clock, targets }),
    schedulerService: new SchedulerService({ db, clock }),
    policies: new PolicyService({ db, clock, projects }),
    quotas: new QuotaService({ db, clock, projects }),
    imports: new ImportService({ db, clock, scanTarget: targetScan, projects: identity.lookup }),
    orphans: new OrphanService({ db, clock, identity: identity.lookup, scanTarget: targetScan }),
    reassign: new ReassignService({ db, clock, identity: identity.lookup }),
    settings: new SettingService({ db, clock, secretKey, mailer }),
    notify: { db, secretKey, log, mailer },
    usage: new UsageService({ db, platform, projects, targets: () => Promise.all(config.targets.map((t) => targetUsage(repos, targets, t))) }),
    /** The target answers and holds this repository (readiness, storage view). */
    checkTarget: async () => {
      if ((await repos.default.backend.stat(CONFIG_KEY)) === null) throw new Error('the repository config is missing');
    },
  };
}
type Services = ReturnType<typeof buildServices>;

/** One configured target (LIFEBOAT_TARGETS) as the storage view lists it. */
async function targetUsage(repos: RepositorySet, targets: TargetCatalog, t: NamedTarget) {
  return {
    name: t.name,
    kind: t.target.kind,
    description: targets.describe(t.name),
    online: await repos.get(t.name).backend.stat(CONFIG_KEY).then((x) => x !== null, () => false),
    capacity: await targetCapacity(t.target).catch(() => null),
  };
}

/**
 * This process in the node registry (admin metrics/nodes); refuses to start on a settings key
 * other than the one the running nodes and the stored secrets use.
 */
async function registerNode(d: {
  config: Config;
  store: StoreHandle;
  clock: Clock;
  log: Logger;
  owner: string;
  leaseMs: number;
  role: Role;
  secretKey: Buffer;
  running: () => number;
}): Promise<NodeRegistry> {
  const { config, leaseMs } = d;
  const registry = new NodeRegistry({
    db: d.store.db,
    clock: d.clock,
    log: d.log,
    id: d.owner,
    nodeName: config.nodeName,
    role: d.role,
    version: WLM_VERSION,
    settingsKeyId: settingsKeyId(d.secretKey),
    settingsKeySource: config.settingsKey.create ? 'settings.key in LIFEBOAT_HOME' : 'LIFEBOAT_SETTINGS_KEY_FILE',
    concurrency: d.role === 'api' ? 0 : config.workerConcurrency,
    running: d.running,
    heartbeatMs: Math.max(250, Math.min(10_000, Math.floor(leaseMs / 3))),
  });
  await registry.register(leaseMs);
  return registry;
}

/** File-level recovery: mounts live in the worker process of this host (recovery/mounts.ts); an API-only process only records them. */
async function openFileRecovery(d: { config: Config; store: StoreHandle; platform: Platform; repos: RepositorySet; clock: Clock; log: Logger; role: Role }): Promise<SnapshotMountService> {
  const fr = d.config.fileRecovery;
  const mountEngine =
    d.role !== 'api'
      ? new SnapshotMounts({ home: d.config.home, repos: d.repos, forceTcg: fr.forceTcg, idleMs: fr.mountIdleSeconds * 1000, logger: d.log, onExpired: (id) => void snapshotMounts.released(id).catch(() => undefined) })
      : null;
  const snapshotMounts = new SnapshotMountService({ db: d.store.db, clock: d.clock, platform: d.platform, mounts: mountEngine, log: d.log });
  if (mountEngine) await snapshotMounts.reconcile();
  return snapshotMounts;
}

interface WorkerParts {
  runner: JobRunner | null;
  scheduler: Scheduler | null;
  gc: GcScheduler[];
}

/** A worker's parts, started: the collectors (one per target), the job runner with every job kind's handlers, and the scheduler. */
function startWorker(d: {
  config: Config;
  store: StoreHandle;
  platform: Platform;
  repos: RepositorySet;
  clock: Clock;
  log: Logger;
  owner: string;
  leaseMs: number;
  metrics: LifeboatMetrics;
  notify: Services['notify'];
  targets: TargetCatalog;
}): WorkerParts {
  const { config, store, platform, repos, clock, log } = d;
  const db = store.db;
  // One collector per target, each told only the snapshots its target holds.
  const gc = repos.entries().map((t) => new GcScheduler(db, t.repo, log, undefined, { name: t.name, isDefault: t.isDefault }));
  const gcs = { request: () => gc.forEach((g) => g.request()) };
  const fr = config.fileRecovery;
  const runner = new JobRunner({
    db,
    dialect: store.dialect,
    clock,
    log,
    owner: d.owner,
    leaseMs: d.leaseMs,
    nodeName: config.nodeName,
    concurrency: config.workerConcurrency,
    handlers: [
      ...repoVerifyJobHandlers({ db, repo: repos, clock }),
      ...fileSearchJobHandlers({ db, repo: repos, clock, home: config.home, forceTcg: fr.forceTcg, tag: applianceTag(config.home) }),
      ...workloadJobHandlers(db, platform, clock),
      ...snapshotJobHandlers({
        db,
        platform,
        repo: repos,
        clock,
        nodeName: config.nodeName,
        liveWindowMs: d.leaseMs,
        onSnapshotDeleted: () => gcs.request(),
        onSnapshotFinished: (id) => void notifySnapshotFinished(d.notify, id),
        metrics: d.metrics,
      }),
      ...retentionJobHandlers({ db, repo: repos, clock, onSnapshotDeleted: () => gcs.request() }),
      ...restoreJobHandlers({ db, platform, repo: repos, clock, nodeName: config.nodeName, onRestoreFinished: (id) => void notifyRestoreFinished(d.notify, id) }),
    ],
  });
  // Reconciles (repairs of jobs lost with a dead worker) run in the background from here on.
  runner.start();
  const scheduler = new Scheduler({ db, clock, log, targets: d.targets, onQueued: () => runner.poke() });
  scheduler.start();
  return { runner, scheduler, gc };
}

interface ApiDeps {
  config: Config;
  o: StartOptions;
  store: StoreHandle;
  platform: Platform;
  policy: Policy;
  identity: IdentityParts;
  services: Services;
  snapshotMounts: SnapshotMountService;
  clock: Clock;
  log: Logger;
  leaseMs: number;
  drain: HttpDrain;
  ops: Parameters<typeof buildHttpServer>[0]['ops'];
  runner: JobRunner | null;
}

/** The API's HTTP server, listening on the configured address unless `o.listen` is false (tests using inject). */
async function startApi(d: ApiDeps): Promise<{ http: FastifyInstance; address: string | null }> {
  const { config, identity, services } = d;
  const embedded = identity.embedded;
  const http = await buildHttpServer({
    drain: d.drain,
    log: d.log,
    publicUrl: config.publicUrl,
    validator: identity.validator,
    policy: d.policy,
    keystoneUri: identity.keystoneUri,
    v1Routes: v1RoutesOf(d),
    v1Hooks: [(v1) => installAuditTrail(v1, services.audit, d.log)],
    ops: d.ops,
    rootMounts: embedded ? [(app) => app.register(identityRoutes, { prefix: '/identity', identity: embedded })] : [],
  });
  // Same-process workers start a job as soon as it is enqueued instead of on the next poll.
  const runner = d.runner;
  if (runner) {
    http.addHook('onResponse', async (req) => {
      if (req.method !== 'GET') runner.poke();
    });
  }
  if (d.o.listen === false) {
    await http.ready();
    return { http, address: null };
  }
  await http.listen({ host: config.listen.host, port: config.listen.port });
  const a = http.server.address();
  return { http, address: a && typeof a === 'object' ? `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}` : null };
}

/** Every route group under /v1/{tenant_id}. */
function v1RoutesOf(d: ApiDeps) {
  const { config, store, platform, policy, services: s, clock } = d;
  return [
    // Scale-out admin views (issue 14): configured targets, registered nodes.
    backupTargetRoutes({ targets: s.backupTargets }),
    nodeRoutes({ nodes: () => listNodeInfo(store.db, clock.now(), d.leaseMs), jobs: () => countJobsByKindAndStatus(store.db) }),
    platformRoutes({ inventory: new PlatformInventoryService(platform) }),
    workloadRoutes({ workloads: s.workloads, policy, publicUrl: config.publicUrl }),
    snapshotRoutes({ snapshots: s.snapshots, workloads: s.workloads, policy, publicUrl: config.publicUrl }),
    snapshotMountRoutes({ snapshots: s.snapshots, mounts: d.snapshotMounts }),
    fileSearchRoutes({ searches: new FileSearchService({ db: store.db, clock }) }),
    restoreRoutes({ restores: s.restores, snapshots: s.snapshots, publicUrl: config.publicUrl }),
    ...(platform instanceof LibvirtPlatform ? [libvirtAdminRoutes({ assign: (uuid, projectId) => platform.assign(uuid, projectId) })] : []),
    schedulerRoutes({ scheduler: s.schedulerService, workloads: s.workloads }),
    policyRoutes({ policies: s.policies, policy }),
    quotaRoutes({ quotas: s.quotas }),
    settingRoutes({ settings: s.settings, policy }),
    trustRoutes({ trusts: new TrustService({ db: store.db, clock, broker: platform.trusts ?? null }) }),
    drRoutes({ workloads: s.workloads, imports: s.imports, orphans: s.orphans, reassign: s.reassign, publicUrl: config.publicUrl }),
    adminRoutes({ usage: s.usage, audit: s.audit }),
    repoVerifyRoutes({ verifications: new RepoVerifyService({ db: store.db, clock, targets: s.targets }) }),
  ];
}
