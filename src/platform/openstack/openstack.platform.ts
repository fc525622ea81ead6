import type { Instance } from '../../domain/instance.js';
import { isUuid } from '../../lib/ids.js';
import { silentLogger, type Logger } from '../../lib/logger.js';
import { OpenStackApi } from '../../openstack/api.js';
import type { OpenStackSession } from '../../openstack/session.js';
import type { BackupSession, BeginBackupOptions, NewInstanceSpec, Platform, PreparedInstance, RestoreTag } from '../platform.js';
import { describeServers, unprotectableReason } from './discovery.js';

export interface OpenStackPlatformOptions {
  /** Lifeboat's service identity (admin + service roles): discovery sees every project's servers and their hosts. */
  session: OpenStackSession;
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
  private readonly log: Logger;

  constructor(readonly opts: OpenStackPlatformOptions) {
    this.api = new OpenStackApi(opts.session);
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

  beginBackup(_instance: Instance, _opts: BeginBackupOptions): Promise<BackupSession> {
    return Promise.reject(new Error('backups of OpenStack servers are not available yet'));
  }

  createInstance(_projectId: string, _spec: NewInstanceSpec, _tag: RestoreTag): Promise<PreparedInstance> {
    return Promise.reject(new Error('restores to OpenStack are not available yet'));
  }

  openInPlaceSinks(_projectId: string, _instanceId: string, _disks: { device: string; size: number }[], _tag: RestoreTag): Promise<PreparedInstance> {
    return Promise.reject(new Error('in-place restores on OpenStack are not available yet'));
  }

  async cleanupRestore(_projectId: string, _tag: RestoreTag, _instanceIds: string[]): Promise<void> {
    this.log.debug({}, 'no OpenStack restore state to clean up');
  }
}
