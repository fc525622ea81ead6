import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { KeyManager } from '../platform.js';
import { BarbicanKeyManager } from './key-manager.js';
import path from 'node:path';
import type { Disk, Instance } from '../../domain/instance.js';
import type { RestorePlan } from '../../domain/restore.js';
import type { Snapshot } from '../../domain/snapshot.js';
import { NotFoundError, UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import { isUuid } from '../../lib/ids.js';
import { silentLogger, type Logger } from '../../lib/logger.js';
import { OpenStackApi } from '../../openstack/api.js';
import type { OpenStackSession } from '../../openstack/session.js';
import { openFileDiskSource } from '../disk-io/file-disk.js';
import type { BackupDisk, BackupSession, BeginBackupOptions, DiskSource, NewInstanceSpec, Placement, Platform, PlatformNetwork, PreparedInstance, RestoreTag } from '../platform.js';
import type { NovaServer } from '../../openstack/types.js';
import { Virsh } from '../libvirt/virsh.js';
import type { BackupReadStats } from '../libvirt/stats.js';
import { beginHostBackup, NoDomainError, cleanupHostBackup, type HostBackupDeps } from './host-backup.js';
import { describeServers, unprotectableReason } from './discovery.js';
import type { KeystoneTrustBroker } from './trust-broker.js';
import { exportVolume } from './volume-export.js';
import { exportRootImage } from './root-image-export.js';
import { prepareOpenStackInstance } from './restore.js';
import { checkOpenStackRestore } from './restore-check.js';
import { checkInPlace, openOpenStackInPlace, type InPlaceTarget } from './restore-inplace.js';
import type { RestoreDeps } from './restore-resources.js';
import { cleanupOpenStackRestore } from './restore-cleanup.js';

export interface OpenStackPlatformOptions {
  /** Lifeboat's service identity (admin + service roles): discovery sees every project's servers and their hosts. */
  session: OpenStackSession;
  /** Keystone trusts to the service user (the vendor's /trusts API; scheduled work). */
  trusts: KeystoneTrustBroker;
  /** LIFEBOAT_NODE_NAME: the compute host this worker serves (compute-host data path). */
  nodeName: string;
  /** Where temporary copies of disks go (API-only data path). */
  scratchDir: string;
  /**
   * LIFEBOAT_OS_DATA_PATH: `host` reads disks only through libvirt on the server's compute host
   * (this worker when its node name is the host), `api` only through Cinder/Glance/Nova, `auto`
   * (default) on the host when a live worker serves it, else through the APIs (routing decides).
   */
  dataPath?: OsDataPath;
  /** The compute host's libvirt (LIFEBOAT_LIBVIRT_URI, LIFEBOAT_LIBVIRT_SCRATCH_DIR: owned by QEMU's user). */
  libvirt?: { uri: string; scratchDir: string };
  logger?: Logger;
}

export type OsDataPath = 'auto' | 'host' | 'api';

/** A server read this recently (a snapshot's routing step, then its backup) is not asked for again. */
const SERVER_FRESH_MS = 10_000;

/**
 * The Nova servers of a cloud (README.md). Instances are servers; every lookup runs with
 * Lifeboat's service identity but is scoped to the caller's project here, so a server of
 * another project is reported exactly like a missing one (null).
 */
export class OpenStackPlatform implements Platform {
  readonly name = 'openstack';
  /** A restore's servers publish side by side (uploads and boots are waits on the cloud). */
  readonly concurrentPublishes = 3;
  /** Barbican secrets as key-encryption keys (`secret_uuid`), read with the service identity; made at first use. */
  get keyManager(): KeyManager {
    this.barbican ??= new BarbicanKeyManager(this.opts.session);
    return this.barbican;
  }
  private barbican: KeyManager | undefined;
  readonly api: OpenStackApi;
  readonly trusts: KeystoneTrustBroker;
  private readonly log: Logger;
  private readonly dataPath: OsDataPath;
  /** The host path's libvirt connection; opened at the first host backup. */
  private virsh: Virsh | null = null;
  private readonly servers = new Map<string, { server: NovaServer; at: number }>();
  private readonly stats = new Map<string, BackupReadStats>();
  /** Hypervisor type by compute host (it does not change while the host exists). */
  private readonly hypervisors = new Map<string, string | null>();

  constructor(readonly opts: OpenStackPlatformOptions) {
    this.api = new OpenStackApi(opts.session);
    this.trusts = opts.trusts;
    this.dataPath = opts.dataPath ?? 'auto';
    this.log = (opts.logger ?? silentLogger).child({ platform: 'openstack' });
  }

  /** The server as Lifeboat's service identity sees it (host and instance name included); null when gone. */
  private async server(id: string): Promise<NovaServer | null> {
    const seen = this.servers.get(id);
    if (seen && Date.now() - seen.at < SERVER_FRESH_MS) return seen.server;
    const s = await this.api.getServer(id);
    this.remember(s);
    return s;
  }

  private remember(s: NovaServer | null): void {
    if (!s) return;
    for (const [id, v] of this.servers) if (Date.now() - v.at >= SERVER_FRESH_MS) this.servers.delete(id);
    this.servers.set(s.id, { server: s, at: Date.now() });
  }

  /** This worker reads the server through libvirt: not `api`, and its node name is the server's host. */
  private onThisHost(s: NovaServer): boolean {
    return this.dataPath !== 'api' && !!this.opts.libvirt && s['OS-EXT-SRV-ATTR:host'] === this.opts.nodeName;
  }

  private hostDeps(): HostBackupDeps {
    const lv = this.opts.libvirt!;
    this.virsh ??= new Virsh(lv.uri);
    return { virsh: this.virsh, scratchDir: lv.scratchDir, log: this.log, onStats: (id, st) => this.stats.set(id, st) };
  }

  /** Read statistics of the last host-path backup of a server (operator diagnostics, tests). */
  lastBackupStats(serverId: string): BackupReadStats | null {
    return this.stats.get(serverId) ?? null;
  }

  /** Ends the host path's virsh shells (the service stops). */
  async close(): Promise<void> {
    await this.virsh?.close();
  }

  /**
   * Where each server's disks can be read (jobs/routing.ts): on its compute host
   * (`OS-EXT-SRV-ATTR:host`, visible to the service identity only) unless the data path is
   * `api`; anywhere when every disk can be read through the APIs and the path is not `host`.
   */
  async placement(_projectId: string, instances: Instance[]): Promise<Map<string, Placement>> {
    const out = new Map<string, Placement>();
    for (const inst of instances) {
      const s = await this.server(inst.id);
      const host = s?.['OS-EXT-SRV-ATTR:host'] ?? null;
      if (!s || this.dataPath === 'api') out.set(inst.id, { host: null, anywhere: true });
      else if (this.dataPath === 'host') out.set(inst.id, { host, anywhere: false, reason: 'LIFEBOAT_OS_DATA_PATH=host reads disks only on their compute host' });
      else {
        const reason = await this.apiUnreadableReason(inst, s);
        out.set(inst.id, reason === null ? { host, anywhere: true } : { host, anywhere: false, reason });
      }
    }
    return out;
  }

  async listInstances(projectId: string): Promise<Instance[]> {
    const servers = await this.api.listServers(projectId);
    return describeServers(this.api, servers.filter((s) => s.tenant_id === projectId));
  }

  async getInstance(projectId: string, instanceId: string): Promise<Instance | null> {
    if (!isUuid(instanceId)) return null;
    const s = await this.api.getServer(instanceId.toLowerCase());
    this.remember(s);
    if (!s || s.tenant_id !== projectId) return null;
    const [inst] = await describeServers(this.api, [s]);
    return inst ?? null;
  }

  /**
   * The Neutron networks a server of the project can be plugged into: the project's own and the
   * shared ones (what restore-check.ts accepts as a networks_mapping target), with their subnets.
   * Another project's private network is never listed.
   */
  async listNetworks(projectId: string): Promise<PlatformNetwork[]> {
    const [own, shared] = await Promise.all([this.api.listNetworks({ project_id: projectId }), this.api.listNetworks({ shared: 'true' })]);
    const nets = [...new Map([...own, ...shared].filter((n) => n.project_id === projectId || n.shared === true).map((n) => [n.id, n])).values()];
    const subnets = await this.api.listSubnets(nets.map((n) => n.id));
    return nets.map((n) => ({
      id: n.id,
      name: n.name || n.id,
      shared: n.shared === true,
      active: n.status === undefined || n.status === 'ACTIVE',
      subnets: subnets.filter((sn) => sn.network_id === n.id).map((sn) => ({ id: sn.id, name: sn.name, cidr: sn.cidr })),
    }));
  }

  unprotectableReason(inst: Instance): string | null {
    return unprotectableReason(inst);
  }

  /**
   * A scheduled run acts through a new trust-scoped token of the owner's trust, and every
   * server of the workload must be visible through it (still in the owner's project, still
   * the owner's to see): the tenant-facing check of the run, as the owner.
   */
  async beginScheduledRun(projectId: string, ownerUserId: string, instanceIds: string[]): Promise<void> {
    const { session, trustId } = await this.trusts.sessionForScheduledRun(projectId, ownerUserId);
    const owner = new OpenStackApi(session);
    for (const id of instanceIds) {
      if (!(await owner.getServer(id))) throw new Error(`Server ${id} of the workload is not visible to its owner (user ${ownerUserId}) in project ${projectId} through trust ${trustId}`);
    }
    this.log.info({ projectId, trustId, servers: instanceIds.length }, 'scheduled run acts through a new trust-scoped token');
  }

  /**
   * The compute-host path when this worker serves the server's host (host-backup.ts), else the
   * API path below; with LIFEBOAT_OS_DATA_PATH=host a server elsewhere fails naming its host.
   */
  async beginBackup(instance: Instance, opts: BeginBackupOptions): Promise<BackupSession> {
    const s = await this.server(instance.id);
    if (!s) throw NotFoundError.of('Instance', instance.id);
    if (this.onThisHost(s)) return this.beginOnThisHost(instance, s, opts);
    if (this.dataPath === 'host') {
      const host = s['OS-EXT-SRV-ATTR:host'] ?? 'unknown';
      throw new UnavailableError(`Server ${instance.name} (${instance.id}) sits on compute host ${host}; with LIFEBOAT_OS_DATA_PATH=host only the Lifeboat worker of that host (LIFEBOAT_NODE_NAME=${host}) reads it, and this worker is ${this.opts.nodeName}`);
    }
    return this.beginApiBackup(instance, s);
  }

  /**
   * The host path; with `auto`, a server Nova places on this host but whose domain this
   * worker's libvirt does not hold (a host whose hypervisor is not this libvirt, or a server
   * moving away) is read through the APIs instead when they can read it, with a warning on the
   * snapshot (no dirty bitmaps: every read is full).
   */
  private async beginOnThisHost(instance: Instance, s: NovaServer, opts: BeginBackupOptions): Promise<BackupSession> {
    try {
      return await beginHostBackup(this.hostDeps(), instance, opts.baseCheckpoint);
    } catch (e) {
      if (!(e instanceof NoDomainError) || this.dataPath !== 'auto' || (await this.apiUnreadableReason(instance, s)) !== null) throw e;
      const why = `Server ${instance.name} (${instance.id}) has no libvirt domain on compute host ${this.opts.nodeName}: read through the APIs`;
      this.log.warn({ server: instance.id }, why);
      const session = await this.beginApiBackup(instance, s);
      return { disks: session.disks, checkpoint: session.checkpoint, warnings: [...session.warnings, why], end: (outcome) => session.end(outcome), readsDone: () => session.readsDone?.() };
    }
  }

  /**
   * Why a disk of the server cannot be read through the APIs, or null: volumes always can; an
   * image-booted root disk through Nova createImage, which needs a hypervisor that copies
   * disks (the fake driver's images hold no data).
   */
  private async apiUnreadableReason(instance: Instance, s: NovaServer): Promise<string | null> {
    const root = instance.disks.find((d) => !d.volume_id);
    if (!root) return null;
    const host = s['OS-EXT-SRV-ATTR:host'] ?? null;
    const type = host ? await this.hypervisorType(host) : null;
    if (type && type.toLowerCase() !== 'fake') return null;
    const where = host ? `compute host ${host}, whose hypervisor (${type ?? 'unknown'}) cannot copy it through Nova createImage` : 'no compute host';
    return `Disk ${root.device} of server ${instance.name} (${instance.id}) is a local image-backed disk on ${where}; only a Lifeboat worker on that host (LIFEBOAT_NODE_NAME=${host ?? '<host>'}) can read it`;
  }

  private async hypervisorType(host: string): Promise<string | null> {
    if (!this.hypervisors.has(host)) this.hypervisors.set(host, await this.api.hypervisorTypeOf(host));
    return this.hypervisors.get(host) ?? null;
  }

  /** What a dead worker's host-path backup left on this host (job, checkpoint metadata, scratch files). */
  async cleanupBackup(_projectId: string, instanceIds: string[]): Promise<void> {
    for (const id of instanceIds) {
      const s = await this.server(id).catch(() => null);
      if (!s || !this.onThisHost(s)) continue;
      await cleanupHostBackup(this.hostDeps(), id).catch((e: unknown) => this.log.warn({ server: id, err: errorMessage(e) }, 'cleaning up after a dead backup failed'));
    }
  }

  /**
   * API-only backup (no Lifeboat worker on the server's host): every Cinder volume of the
   * server is exported through a snapshot, a temporary volume and a Glance upload, an
   * image-booted root disk through Nova createImage (root-image-export.ts), each into a local
   * sparse file in the scratch directory, which `end()` deletes. No changed-block tracking on
   * this path (every snapshot reads the disks in full; the repository dedups). A root disk
   * createImage cannot copy (fake driver) fails the backup naming the host and the worker it needs.
   */
  private async beginApiBackup(instance: Instance, server: NovaServer): Promise<BackupSession> {
    const why = await this.apiUnreadableReason(instance, server);
    if (why) throw new UnavailableError(why);
    await mkdir(this.opts.scratchDir, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(path.join(this.opts.scratchDir, 'os-backup-'));
    const disks: BackupDisk[] = [];
    const release = async () => {
      await Promise.all(disks.map((d) => d.source.close().catch(() => undefined)));
      await rm(dir, { recursive: true, force: true });
    };
    try {
      for (const disk of instance.disks) disks.push({ disk, source: await this.exportDisk(instance, disk, dir) });
    } catch (e) {
      await release();
      throw e;
    }
    let ended = false;
    return {
      disks,
      checkpoint: null,
      warnings: [],
      end: async () => {
        if (ended) return;
        ended = true;
        await release();
      },
    };
  }

  private async exportDisk(instance: Instance, disk: Disk, dir: string): Promise<DiskSource> {
    const started = Date.now();
    if (!disk.volume_id) {
      const out = await exportRootImage(this.api, instance.id, dir, this.log);
      this.log.info({ server: instance.id, device: disk.device, bytes: out.size, ms: Date.now() - started }, 'root disk exported through Nova createImage and Glance');
      return openFileDiskSource(out.file);
    }
    const volumeId = disk.volume_id;
    const size = disk.volume_size ?? (await this.api.getVolume(volumeId))?.size;
    if (!size) throw new Error(`Cinder volume ${volumeId} of server ${instance.name} (${instance.id}) no longer exists`);
    const out = await exportVolume(this.api, volumeId, size, dir, this.log);
    this.log.info({ server: instance.id, volume: volumeId, bytes: out.size, ms: Date.now() - started }, 'volume exported through Cinder and Glance');
    return openFileDiskSource(out.file);
  }

  /**
   * A new server in the tenant's project (restore.ts), created through a trust a user of the
   * project gave Lifeboat (POST /trusts): Nova and Cinder create resources only in the
   * project of the token.
   */
  async createInstance(projectId: string, spec: NewInstanceSpec, tag: RestoreTag): Promise<PreparedInstance> {
    const deps = await this.tenantDeps(projectId);
    return prepareOpenStackInstance({ ...deps, describe: async (id) => await this.getInstance(projectId, id) }, projectId, spec, tag);
  }

  /** Overwrites Cinder volumes of the server in place, keeping their ids (restore-inplace.ts). */
  async openInPlaceSinks(projectId: string, instanceId: string, disks: { device: string; size: number; data_bytes?: number }[], tag: RestoreTag, opts: { powerOn?: boolean } = {}): Promise<PreparedInstance> {
    const target = await this.inPlaceTarget(projectId, instanceId);
    return openOpenStackInPlace(await this.tenantDeps(projectId), target, disks, tag, opts.powerOn);
  }

  /** Networks and mapped subnets exist for the project (restore-check.ts); in place: the servers and their data volumes. */
  async checkRestore(projectId: string, plan: RestorePlan, snapshot: Snapshot): Promise<void> {
    if (plan.kind !== 'inplace') return checkOpenStackRestore(this.api, projectId, plan, snapshot);
    for (const p of plan.instances) checkInPlace(await this.inPlaceTarget(projectId, p.id), p.devices);
  }

  private async inPlaceTarget(projectId: string, serverId: string): Promise<InPlaceTarget> {
    const server = isUuid(serverId) ? await this.api.getServer(serverId.toLowerCase()) : null;
    const instance = server && server.tenant_id === projectId ? (await describeServers(this.api, [server]))[0] : undefined;
    if (!server || !instance) throw NotFoundError.of('Instance', serverId);
    return { server, instance };
  }

  /** Acting in the tenant's project needs a trust from one of its users (POST /trusts). */
  private async tenantDeps(projectId: string): Promise<RestoreDeps> {
    const tenant = await this.trusts.sessionForProject(projectId);
    if (!tenant) throw new ValidationError(`Restoring into project ${projectId} needs a trust from one of its users to Lifeboat: create one with POST /trusts {"trusts": {"role_name": "member"}}`);
    return { service: this.api, tenant, tenantApi: new OpenStackApi(tenant), scratchDir: this.opts.scratchDir, log: this.log };
  }

  /** What a dead restore left unpublished: marked servers and volumes, its ports and temporary images (restore-cleanup.ts). */
  async cleanupRestore(projectId: string, tag: RestoreTag, _instanceIds: string[]): Promise<void> {
    await cleanupOpenStackRestore(this.api, projectId, tag, this.log);
  }
}

