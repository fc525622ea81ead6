import type { Instance } from '../../domain/instance.js';
import type { RestorePlan } from '../../domain/restore.js';
import type { Snapshot } from '../../domain/snapshot.js';
import { NotFoundError, UnavailableError, errorMessage } from '../../lib/errors.js';
import { isUuid } from '../../lib/ids.js';
import { silentLogger, type Logger } from '../../lib/logger.js';
import type { BackupSession, BeginBackupOptions, NewInstanceSpec, Platform, PlatformNetwork, PreparedInstance, RestoreCleanup, RestoreTag } from '../platform.js';
import { listHostNetworks } from './networks.js';
import { assignDomain } from './assign.js';
import { beginLibvirtBackup, cleanupDeadBackup, vanishedError, type LibvirtBackupDeps } from './backup.js';
import { beginOfflineBackup } from './offline.js';
import { parseDomainXml, type DomainInfo } from './domain-xml.js';
import { cleanupLibvirtRestore, createLibvirtInstance, type LibvirtRestoreDeps } from './restore.js';
import { cleanupLibvirtInPlace, openLibvirtInPlace, type InPlaceDeps } from './inplace.js';
import { checkLibvirtRestore } from './restore-check.js';
import type { BackupReadStats } from './stats.js';
import { isNoDomain, Virsh } from './virsh.js';

export interface LibvirtPlatformOptions {
  /** LIFEBOAT_LIBVIRT_URI, e.g. qemu:///system. */
  uri: string;
  /** LIFEBOAT_LIBVIRT_SCRATCH_DIR: NBD sockets and backup scratch files (QEMU's user must write there). */
  scratchDir: string;
  /** LIFEBOAT_RESTORE_DIR: disks of restored domains go to `<dir>/<uuid>/<target>.{qcow2,raw}`. */
  restoreDir: string;
  logger?: Logger;
}

/** libvirt's domain states → the Nova-like status Lifeboat reports. */
const STATUS: Record<string, string> = { running: 'ACTIVE', paused: 'PAUSED', 'shut off': 'SHUTOFF', crashed: 'ERROR', pmsuspended: 'SUSPENDED', 'in shutdown': 'ACTIVE', idle: 'ACTIVE' };

/** A domain as lookup() found it. */
interface Found {
  dom: DomainInfo;
  state: string;
}

/** How long beginBackup trusts getInstance's lookup of the same Instance object (a snapshot's open step). */
const SEEN_FRESH_MS = 2000;

/**
 * Domains of one libvirt host (README.md). The instance id is the domain UUID; the project
 * comes from Lifeboat's domain metadata (`lifeboat libvirt-assign`); unassigned domains and
 * domains of other projects are reported exactly like missing ones.
 */
export class LibvirtPlatform implements Platform {
  readonly name = 'libvirt';
  private readonly virsh: Virsh;
  private readonly log: Logger;
  private readonly scratchDir: string;
  private readonly restoreDir: string;
  /** The read statistics of the last backup of each domain (by UUID). */
  private readonly stats = new Map<string, BackupReadStats>();
  /**
   * What getInstance saw behind each Instance it returned, for a moment: a snapshot job looks
   * its instances up and then begins their backups with those very objects, so beginBackup
   * need not ask libvirt again (two virsh calls, ~4 ms of every snapshot). A domain that
   * changed in between fails backup-begin like one that changes right after the lookup.
   */
  private readonly seen = new WeakMap<Instance, { found: Found; at: number }>();

  constructor(opts: LibvirtPlatformOptions) {
    this.virsh = new Virsh(opts.uri);
    this.scratchDir = opts.scratchDir;
    this.restoreDir = opts.restoreDir;
    this.log = (opts.logger ?? silentLogger).child({ platform: 'libvirt' });
  }

  async listInstances(projectId: string): Promise<Instance[]> {
    const uuids = (await this.virsh.run(['list', '--all', '--uuid'])).split('\n').map((s) => s.trim()).filter(isUuid);
    const out: Instance[] = [];
    for (const uuid of uuids) {
      const found = await this.lookup(uuid);
      if (found && found.dom.projectId === projectId) out.push(toInstance(found.dom, found.state));
    }
    return out;
  }

  /** The host's libvirt networks and bridges (networks.ts): host-wide, the same for every project. */
  listNetworks(_projectId: string): Promise<PlatformNetwork[]> {
    return listHostNetworks(this.virsh);
  }

  async getInstance(projectId: string, instanceId: string): Promise<Instance | null> {
    if (!isUuid(instanceId)) return null;
    const found = await this.lookup(instanceId.toLowerCase());
    if (!found || found.dom.projectId !== projectId) return null;
    const instance = toInstance(found.dom, found.state);
    this.seen.set(instance, { found, at: Date.now() });
    return instance;
  }

  /** What getInstance saw behind `instance` if that was at most SEEN_FRESH_MS ago, else a new lookup. */
  private async lookupFor(instance: Instance): Promise<Found | null> {
    const s = this.seen.get(instance);
    this.seen.delete(instance);
    if (s && Date.now() - s.at <= SEEN_FRESH_MS) return s.found;
    return this.lookup(instance.id);
  }

  /** The domain's XML and state; null when libvirt has no such domain (it may vanish any time). */
  private async lookup(uuid: string): Promise<Found | null> {
    try {
      // Two shells at once: one round trip instead of two (every snapshot asks twice).
      const [xml, state] = await Promise.all([this.virsh.run(['dumpxml', uuid]), this.virsh.run(['domstate', uuid])]);
      return { dom: parseDomainXml(xml), state: state.trim() };
    } catch (e) {
      if (isNoDomain(e)) return null;
      throw e;
    }
  }

  /** Gives a domain (UUID) to a project or takes it away (null): `lifeboat libvirt-assign` as an admin API. */
  assign(domainUuid: string, projectId: string | null): Promise<{ uuid: string; name: string }> {
    return assignDomain(this.virsh, domainUuid, projectId);
  }

  /** Ends the virsh shells (the service stops): no virsh process outlives `lifeboat serve`. */
  close(): Promise<void> {
    return this.virsh.close();
  }

  /** Read statistics of the last finished backup of a domain (operator diagnostics, tests). */
  lastBackupStats(uuid: string): BackupReadStats | null {
    return this.stats.get(uuid) ?? null;
  }

  /**
   * A running domain: one pull-mode backup job over all its disks (backup.ts); a shut-off
   * domain: its images read through read-only qemu-nbd exports (offline.ts).
   */
  async beginBackup(instance: Instance, opts: BeginBackupOptions): Promise<BackupSession> {
    const found = await this.lookupFor(instance);
    if (!found || found.dom.projectId !== instance.project_id) throw NotFoundError.of('Instance', instance.id);
    if (found.state === 'shut off') {
      return beginOfflineBackup({ instance, dom: found.dom, base: opts.baseCheckpoint, scratchDir: this.scratchDir, log: this.log, onStats: (s) => this.stats.set(found.dom.uuid, s) });
    }
    if (found.state !== 'running') throw new UnavailableError(`Instance ${found.dom.name} (${found.dom.uuid}) is ${found.state}: only running and shut-off domains can be backed up`);
    return beginLibvirtBackup(this.backupDeps(), instance, found.dom, opts.baseCheckpoint).catch(async (e: unknown) => {
      // A domain that vanished while its job was set up: say which, not what the monitor or NBD saw.
      throw (await vanishedError(this.virsh, found.dom)) ?? e;
    });
  }

  /** A new domain (restore.ts): raw or qcow2 disks under the restore dir, defined (and started if asked) on publish. */
  createInstance(projectId: string, spec: NewInstanceSpec, tag: RestoreTag): Promise<PreparedInstance> {
    return createLibvirtInstance(this.restoreDeps(projectId), projectId, spec, tag);
  }

  private restoreDeps(projectId: string): LibvirtRestoreDeps {
    return { virsh: this.virsh, restoreDir: this.restoreDir, log: this.log, lookup: (uuid) => this.getInstance(projectId, uuid) };
  }

  /** Stages the snapshot's disks, then stops the domain, swaps them in and starts it again (inplace.ts). */
  openInPlaceSinks(projectId: string, instanceId: string, disks: { device: string; size: number }[], tag: RestoreTag, opts: { powerOn?: boolean } = {}): Promise<PreparedInstance> {
    return openLibvirtInPlace(this.inPlaceDeps(projectId), instanceId, disks, tag, opts);
  }

  /** Ends what a dead worker's backup left open on each running domain of the project (backup.ts). */
  async cleanupBackup(projectId: string, instanceIds: string[]): Promise<void> {
    for (const id of instanceIds) {
      const found = await this.lookup(id);
      if (!found || found.dom.projectId !== projectId || found.state !== 'running') continue;
      await cleanupDeadBackup(this.backupDeps(), found.dom.uuid).catch((e: unknown) => this.log.warn({ domain: id, err: errorMessage(e) }, 'cleaning up after a dead backup failed'));
    }
  }

  private backupDeps(): LibvirtBackupDeps {
    return { virsh: this.virsh, scratchDir: this.scratchDir, log: this.log, onStats: (uuid, s) => this.stats.set(uuid, s) };
  }

  private inPlaceDeps(projectId: string): InPlaceDeps {
    return {
      virsh: this.virsh,
      restoreDir: this.restoreDir,
      scratchDir: this.scratchDir,
      log: this.log,
      describe: async (uuid) => {
        const found = isUuid(uuid) ? await this.lookup(uuid) : null;
        return found && found.dom.projectId === projectId ? found : null;
      },
      lookup: (uuid) => this.getInstance(projectId, uuid),
    };
  }

  /** Networks, formats, one-click originals, in-place targets (restore-check.ts). */
  checkRestore(projectId: string, plan: RestorePlan, snapshot: Snapshot): Promise<void> {
    return checkLibvirtRestore({ virsh: this.virsh, getInstance: (uuid) => this.getInstance(projectId, uuid) }, plan, snapshot);
  }

  /**
   * Removes what a dead restore left: directories of new domains it never defined, staged
   * in-place images; an in-place swap it left cut off is finished first (inplace-swap.ts).
   */
  async cleanupRestore(projectId: string, tag: RestoreTag, instanceIds: string[] = []): Promise<RestoreCleanup> {
    await cleanupLibvirtRestore(this.restoreDeps(projectId), tag);
    const finished = await cleanupLibvirtInPlace(this.inPlaceDeps(projectId), tag, instanceIds);
    return { changeTrackingReset: finished };
  }
}

function toInstance(dom: DomainInfo, state: string): Instance {
  return {
    id: dom.uuid,
    name: dom.name,
    project_id: dom.projectId ?? '',
    status: STATUS[state] ?? state.toUpperCase(),
    availability_zone: 'nova',
    flavor: { vcpus: dom.vcpus, ram: dom.memoryMiB, disk: 0, ephemeral: 0 },
    security_groups: [],
    nics: dom.nics.map((n) => ({ mac_address: n.mac, ip_address: '', network: { id: `${n.type === 'bridge' ? 'bridge' : 'network'}:${n.network}`, name: n.network } })),
    disks: dom.disks.map((d) => ({ device: `/dev/${d.target}`, format: d.format })),
    metadata: {},
  };
}
