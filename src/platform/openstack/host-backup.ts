import type { Disk, Instance } from '../../domain/instance.js';
import { UnavailableError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { BackupSession, Checkpoint } from '../platform.js';
import { beginLibvirtBackup, cleanupDeadBackup, vanishedError } from '../libvirt/backup.js';
import { beginOfflineBackup } from '../libvirt/offline.js';
import { parseDomainXml, type DomainDisk, type DomainInfo } from '../libvirt/domain-xml.js';
import type { BackupReadStats } from '../libvirt/stats.js';
import { isNoDomain, type Virsh } from '../libvirt/virsh.js';

/**
 * The compute-host data path (issue 12 item 3; OpenStack-in-a-box README §7.2-§7.5): a worker
 * whose LIFEBOAT_NODE_NAME is the server's `OS-EXT-SRV-ATTR:host` reads the server's libvirt
 * domain (UUID = server id) through the libvirt platform's backup code: one pull job over the
 * image-backed root disk and every attached Cinder volume (disks of the same domain, matched by
 * `<serial>` = volume id), dirty bitmaps on qcow2 disks, raw volumes read in full
 * (checkpoint='no'). Checkpoint metadata lives in libvirt only while a job runs (redefined
 * before, `checkpoint-delete --metadata` after), so Nova's hard reboot and delete keep
 * working. A shut-off server's images are read through read-only qemu-nbd exports.
 */
export interface HostBackupDeps {
  virsh: Virsh;
  /** Where QEMU creates NBD sockets and scratch files (owned by QEMU's user). */
  scratchDir: string;
  log: Logger;
  onStats?: (serverId: string, stats: BackupReadStats) => void;
}

/** Each disk of the instance with the domain disk that holds it. */
interface Matched {
  disk: Disk;
  domainDisk: DomainDisk;
}

/**
 * Pairs the instance's disks (discovery) with the domain's: a volume by `<serial>`, the
 * image-backed root disk by its device name (else the one domain disk without a serial).
 * A disk of the instance the domain does not have fails the backup naming it; domain disks
 * Nova did not report (config drive, swap) are not read.
 */
export function matchDisks(instance: Instance, dom: DomainInfo): Matched[] {
  const out: Matched[] = [];
  for (const disk of instance.disks) {
    const target = disk.device.replace(/^\/dev\//, '');
    const found = disk.volume_id
      ? dom.disks.find((d) => d.serial === disk.volume_id)
      : (dom.disks.find((d) => d.target === target && !d.serial) ?? soleUnserialed(dom));
    if (!found) throw new UnavailableError(`Disk ${disk.device}${disk.volume_id ? ` (volume ${disk.volume_id})` : ''} of server ${instance.name} (${instance.id}) is not a disk of its libvirt domain on this host`);
    out.push({ disk, domainDisk: found });
  }
  return out;
}

function soleUnserialed(dom: DomainInfo): DomainDisk | undefined {
  const local = dom.disks.filter((d) => !d.serial);
  return local.length === 1 ? local[0] : undefined;
}

/** The server has no libvirt domain on this host: moved away, or its host's hypervisor is not this libvirt. */
export class NoDomainError extends UnavailableError {
  constructor(instance: Instance) {
    super(`Server ${instance.name} (${instance.id}) has no libvirt domain on this host (it may have moved to another compute host)`);
    this.name = 'NoDomainError';
  }
}

async function lookupDomain(virsh: Virsh, instance: Instance): Promise<{ dom: DomainInfo; state: string }> {
  try {
    const [xml, state] = await Promise.all([virsh.run(['dumpxml', instance.id]), virsh.run(['domstate', instance.id])]);
    return { dom: parseDomainXml(xml), state: state.trim() };
  } catch (e) {
    if (isNoDomain(e)) throw new NoDomainError(instance);
    throw e;
  }
}

/**
 * Begins the backup of a server on this host. The libvirt code sees the domain with only the
 * matched disks, named by their targets; the session hands the instance's own disk records
 * (device, volume id) back to the snapshot.
 */
export async function beginHostBackup(d: HostBackupDeps, instance: Instance, base: Checkpoint | null): Promise<BackupSession> {
  const { dom: full, state } = await lookupDomain(d.virsh, instance);
  const matched = matchDisks(instance, full);
  const dom: DomainInfo = { ...full, projectId: instance.project_id, disks: matched.map((m) => m.domainDisk) };
  const shadow: Instance = { ...instance, disks: matched.map((m) => ({ ...m.disk, device: `/dev/${m.domainDisk.target}`, format: m.domainDisk.format })) };
  const onStats = (s: BackupReadStats) => d.onStats?.(instance.id, s);
  let session: BackupSession;
  if (state === 'shut off') {
    session = await beginOfflineBackup({ instance: shadow, dom, base, scratchDir: d.scratchDir, log: d.log, onStats });
  } else if (state === 'running') {
    session = await beginLibvirtBackup({ virsh: d.virsh, scratchDir: d.scratchDir, log: d.log, onStats: (_uuid, s) => onStats(s) }, shadow, dom, base).catch(async (e: unknown) => {
      throw (await vanishedError(d.virsh, dom)) ?? e;
    });
  } else {
    throw new UnavailableError(`Server ${instance.name} (${instance.id}) is ${state} on its compute host: only running and shut-off servers can be backed up`);
  }
  const byTarget = new Map(matched.map((m) => [`/dev/${m.domainDisk.target}`, m.disk]));
  return {
    disks: session.disks.map((x) => ({ disk: byTarget.get(x.disk.device) ?? x.disk, source: x.source })),
    checkpoint: session.checkpoint,
    warnings: session.warnings,
    end: (outcome) => session.end(outcome),
    readsDone: () => session.readsDone?.(),
  };
}

/** What a dead worker's backup left on this host's domain of the server (reconciler). */
export async function cleanupHostBackup(d: HostBackupDeps, serverId: string): Promise<void> {
  await cleanupDeadBackup({ virsh: d.virsh, scratchDir: d.scratchDir, log: d.log }, serverId);
}
