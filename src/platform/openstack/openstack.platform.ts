import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Disk, Instance } from '../../domain/instance.js';
import { ValidationError } from '../../lib/errors.js';
import { isUuid } from '../../lib/ids.js';
import { silentLogger, type Logger } from '../../lib/logger.js';
import { OpenStackApi } from '../../openstack/api.js';
import type { OpenStackSession } from '../../openstack/session.js';
import { openFileDiskSource } from '../disk-io/file-disk.js';
import type { BackupDisk, BackupSession, BeginBackupOptions, DiskSource, NewInstanceSpec, Platform, PreparedInstance, RestoreTag } from '../platform.js';
import { describeServers, unprotectableReason } from './discovery.js';
import type { KeystoneTrustBroker } from './trust-broker.js';
import { exportVolume } from './volume-export.js';
import { prepareOpenStackInstance } from './restore.js';

export interface OpenStackPlatformOptions {
  /** Lifeboat's service identity (admin + service roles): discovery sees every project's servers and their hosts. */
  session: OpenStackSession;
  /** Keystone trusts to the service user (the vendor's /trusts API; scheduled work). */
  trusts: KeystoneTrustBroker;
  /** LIFEBOAT_NODE_NAME: the compute host this worker serves (compute-host data path). */
  nodeName: string;
  /** Where temporary copies of disks go (API-only data path). */
  scratchDir: string;
  logger?: Logger;
}

/**
 * The Nova servers of a cloud (README.md). Instances are servers; every lookup runs with
 * Lifeboat's service identity but is scoped to the caller's project here, so a server of
 * another project is reported exactly like a missing one (null).
 */
export class OpenStackPlatform implements Platform {
  readonly name = 'openstack';
  readonly api: OpenStackApi;
  readonly trusts: KeystoneTrustBroker;
  private readonly log: Logger;

  constructor(readonly opts: OpenStackPlatformOptions) {
    this.api = new OpenStackApi(opts.session);
    this.trusts = opts.trusts;
    this.log = (opts.logger ?? silentLogger).child({ platform: 'openstack' });
  }

  async listInstances(projectId: string): Promise<Instance[]> {
    const servers = await this.api.listServers(projectId);
    return describeServers(this.api, servers.filter((s) => s.tenant_id === projectId));
  }

  async getInstance(projectId: string, instanceId: string): Promise<Instance | null> {
    if (!isUuid(instanceId)) return null;
    const s = await this.api.getServer(instanceId.toLowerCase());
    if (!s || s.tenant_id !== projectId) return null;
    const [inst] = await describeServers(this.api, [s]);
    return inst ?? null;
  }

  unprotectableReason(inst: Instance): string | null {
    return unprotectableReason(inst);
  }

  /**
   * API-only backup (no Lifeboat worker on the server's host): every Cinder volume of the
   * server is exported through a snapshot, a temporary volume and a Glance upload into a local
   * sparse file in the scratch directory, which `end()` deletes. No changed-block tracking on
   * this path (every snapshot reads the volumes in full; the repository dedups). A root disk
   * that is not a volume cannot be read through the APIs here: the backup fails naming it.
   */
  async beginBackup(instance: Instance, _opts: BeginBackupOptions): Promise<BackupSession> {
    for (const d of instance.disks) {
      if (!d.volume_id) throw new Error(`Disk ${d.device} of server ${instance.name} (${instance.id}) is a local image-backed disk; it can be read only by a Lifeboat worker on the server's compute host, and none serves it`);
    }
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
    const volumeId = disk.volume_id!;
    const started = Date.now();
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
    const tenant = await this.trusts.sessionForProject(projectId);
    if (!tenant) throw new ValidationError(`Restoring into project ${projectId} needs a trust from one of its users to Lifeboat: create one with POST /trusts {"trusts": {"role_name": "member"}}`);
    const tenantApi = new OpenStackApi(tenant);
    return prepareOpenStackInstance(
      { service: this.api, tenant, tenantApi, scratchDir: this.opts.scratchDir, log: this.log, describe: async (id) => (await this.getInstance(projectId, id)) },
      projectId,
      spec,
      tag,
    );
  }

  openInPlaceSinks(_projectId: string, _instanceId: string, _disks: { device: string; size: number }[], _tag: RestoreTag): Promise<PreparedInstance> {
    return Promise.reject(new Error('in-place restores on OpenStack are not available yet'));
  }

  async cleanupRestore(_projectId: string, _tag: RestoreTag, _instanceIds: string[]): Promise<void> {
    this.log.debug({}, 'no OpenStack restore state to clean up');
  }
}
