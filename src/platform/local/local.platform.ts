import { mkdir, readdir, realpath, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Disk, Instance } from '../../domain/instance.js';
import type { BackupDisk, BackupSession, BeginBackupOptions, DiskSink, DiskSource, RestoreTag } from '../platform.js';
import { AppError, NotFoundError, UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import { isHexId, isUuid, newId } from '../../lib/ids.js';
import { silentLogger, type Logger } from '../../lib/logger.js';
import type { NewInstanceSpec, Platform, PlatformNetwork, PreparedInstance } from '../platform.js';
import { hasCode } from '../disk-io/atomic-file.js';
import { FileDiskSink, openFileDiskSource, tempPathFor } from '../disk-io/file-disk.js';
import { InventoryFile, toPublic, validateInstance, type InventoryDisk, type InventoryInstance } from './inventory.js';

export interface LocalPlatformOptions {
  /** The inventory JSON file (LIFEBOAT_INVENTORY). Missing = empty inventory. */
  inventoryPath: string;
  /** Where restores put new instances' disks (LIFEBOAT_RESTORE_DIR): `<dir>/<instance-id>/<vda>.raw`. */
  restoreDir: string;
  logger?: Logger;
}

const DEVICE_RE = /^\/dev\/([a-z][a-z0-9]{0,31})$/;

/**
 * VMs described by an inventory file; disks are raw image files (README.md).
 *
 * Tenant scoping: every lookup filters by project; another project's instance is null / the same
 * NotFoundError as a missing one. Disk paths come only from the inventory (operator config),
 * never from the Instance objects callers pass back in, and are never shown to callers.
 */
export class LocalPlatform implements Platform {
  readonly name = 'local';
  readonly inventory: InventoryFile;
  private readonly restoreDir: string;
  private readonly log: Logger;

  constructor(opts: LocalPlatformOptions) {
    this.inventory = new InventoryFile({ path: opts.inventoryPath, logger: opts.logger });
    this.restoreDir = path.resolve(opts.restoreDir);
    this.log = (opts.logger ?? silentLogger).child({ platform: 'local' });
  }

  /**
   * Constructs and loads the inventory strictly: throws ValidationError when the file exists but
   * is invalid, so `serve` fails at startup with the list of problems. (A platform made with
   * `new` starts empty in that case and logs the error.)
   */
  static async open(opts: LocalPlatformOptions): Promise<LocalPlatform> {
    const p = new LocalPlatform(opts);
    await p.inventory.load();
    return p;
  }

  async listInstances(projectId: string): Promise<Instance[]> {
    const all = await this.inventory.instances();
    return all.filter((i) => i.project_id === projectId).map(toPublic);
  }

  /**
   * The networks declared in the inventory (top-level `networks`) for this project or shared,
   * plus those the project's VMs are on (with the subnets seen on their NICs).
   */
  async listNetworks(projectId: string): Promise<PlatformNetwork[]> {
    const byId = new Map<string, PlatformNetwork>();
    const addSubnet = (n: PlatformNetwork, sn: { id: string; name: string; cidr: string }) => {
      if (!n.subnets.some((x) => x.id === sn.id)) n.subnets.push({ id: sn.id, name: sn.name, cidr: sn.cidr });
    };
    for (const d of await this.inventory.networks()) {
      if (d.project_id !== null && d.project_id !== projectId) continue;
      const n: PlatformNetwork = { id: d.id, name: d.name, shared: d.project_id === null, active: true, subnets: [] };
      d.subnets.forEach((sn) => addSubnet(n, sn));
      byId.set(d.id, n);
    }
    for (const inst of await this.listInstances(projectId)) {
      for (const nic of inst.nics) {
        const n = byId.get(nic.network.id) ?? { id: nic.network.id, name: nic.network.name || nic.network.id, shared: false, active: true, subnets: [] };
        if (nic.network.subnet) addSubnet(n, nic.network.subnet);
        byId.set(n.id, n);
      }
    }
    return [...byId.values()];
  }

  async getInstance(projectId: string, instanceId: string): Promise<Instance | null> {
    const entry = await this.findEntry(projectId, instanceId);
    return entry ? toPublic(entry) : null;
  }

  private async findEntry(projectId: string, instanceId: string): Promise<InventoryInstance | undefined> {
    const all = await this.inventory.instances();
    return all.find((i) => i.id === instanceId && i.project_id === projectId);
  }

  /**
   * The image is looked up by (instance.project_id, instance.id, disk.device) in the current
   * inventory. A missing image file is an UnavailableError naming instance and device (the path
   * is logged, not put in the user-facing message).
   */
  async openDiskSource(instance: Instance, disk: Disk): Promise<DiskSource> {
    const entry = await this.findEntry(instance.project_id, instance.id);
    if (!entry) throw NotFoundError.of('Instance', instance.id);
    const d = entry.disks.find((x) => x.device === disk.device);
    if (!d) throw new NotFoundError(`Disk ${disk.device} of instance ${entry.name} (${entry.id}) could not be found.`);
    try {
      return await openFileDiskSource(d.path);
    } catch (e) {
      this.log.error({ instance: entry.id, device: d.device, path: d.path, err: errorMessage(e) }, 'cannot open disk image');
      const why = hasCode(e, 'ENOENT') ? 'its image file is missing' : `its image file cannot be read (${hasCode(e, 'EACCES', 'EPERM') ? 'permission denied' : errorMessage(e)})`;
      throw new UnavailableError(`Disk ${d.device} of instance ${entry.name} (${entry.id}) is unavailable: ${why}.`, { cause: e });
    }
  }

  /**
   * Opens every disk of the instance (all or none: a disk that cannot be opened closes the
   * ones already open). Image files have no CBT: no checkpoint, and the sources' change tokens
   * (dev:ino:size:mtime) let the datamover skip an unchanged disk entirely.
   */
  async beginBackup(instance: Instance, _opts: BeginBackupOptions): Promise<BackupSession> {
    const disks: BackupDisk[] = [];
    const closeAll = () => Promise.all(disks.map((d) => d.source.close().catch(() => undefined)));
    try {
      for (const disk of instance.disks) disks.push({ disk, source: await this.openDiskSource(instance, disk) });
    } catch (e) {
      await closeAll();
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
        await closeAll();
      },
    };
  }

  /**
   * Creates the disks of a new instance under `<restoreDir>/<new id>/` (file names from the new
   * uuid and the validated device basename only). Nothing is in the inventory until publish();
   * publish() requires every sink to be committed. Disks with a volume_type get a new volume_id.
   */
  /**
   * A NIC mapped to a network declared in the inventory takes that network's name and the
   * declared subnet it names (else the network's first), so the new VM's record matches the
   * network it joined; other NICs are kept as the snapshot had them.
   */
  private async withDeclaredNetworks(projectId: string, nics: NewInstanceSpec['nics']): Promise<NewInstanceSpec['nics']> {
    const declared = (await this.inventory.networks()).filter((n) => n.project_id === null || n.project_id === projectId);
    return nics.map((nic) => {
      const d = declared.find((n) => n.id === nic.network.id);
      if (!d) return nic;
      const subnet = d.subnets.find((sn) => sn.id === nic.network.subnet?.id) ?? d.subnets[0];
      return { ...nic, network: { id: d.id, name: d.name, ...(subnet ? { subnet: { ...subnet } } : {}) } };
    });
  }

  async createInstance(projectId: string, spec: NewInstanceSpec, tag?: RestoreTag): Promise<PreparedInstance> {
    if (!isHexId(projectId)) throw new ValidationError(`Invalid project id ${JSON.stringify(projectId)}`);
    const id = newId();
    const dir = path.join(this.restoreDir, id);
    const marker = tag ? this.partialMarker(checkTag(tag), id) : null;
    const basenames = checkDevices(spec.disks);
    const disks: InventoryDisk[] = spec.disks.map((d, i) => {
      if (d.format !== 'raw') throw new ValidationError(`Disk ${d.device}: the local platform restores only raw disks (got ${JSON.stringify(d.format)})`);
      checkSize(d.device, d.size);
      const disk: InventoryDisk = { device: d.device, format: 'raw', path: path.join(dir, `${basenames[i]}.raw`) };
      if (d.volume_type !== undefined) {
        disk.volume_type = d.volume_type;
        disk.volume_id = newId();
      }
      return disk;
    });
    // Validate the whole entry before creating any file, so a bad spec leaves nothing behind.
    const entry = validateInstance(
      {
        id,
        name: spec.name,
        project_id: projectId,
        status: 'ACTIVE',
        availability_zone: spec.availability_zone,
        flavor: spec.flavor,
        security_groups: spec.security_groups,
        nics: await this.withDeclaredNetworks(projectId, spec.nics),
        disks,
        metadata: spec.metadata,
      },
      'new instance',
    );

    const sinks = new Map<string, FileDiskSink>();
    const removeAll = async (): Promise<void> => {
      await Promise.all([...sinks.values()].map((s) => s.abort()));
      await rm(dir, { recursive: true, force: true });
      if (marker) await unlink(marker).catch(() => undefined);
    };
    try {
      // The marker goes first: a crash at any later point leaves a directory cleanupRestore finds.
      if (marker) await mkdir(this.restoreDir, { recursive: true }).then(() => writeFile(marker, '', { flag: 'wx' }));
      await mkdir(dir, { recursive: true });
      for (const [i, d] of spec.disks.entries()) sinks.set(d.device, await FileDiskSink.create((disks[i] as InventoryDisk).path, d.size));
    } catch (e) {
      await removeAll();
      throw new UnavailableError(`Cannot create disks for the restored instance in the restore directory: ${errorMessage(e)}`, { cause: e });
    }

    let state: 'prepared' | 'published' | 'discarded' = 'prepared';
    return {
      instance: toPublic(entry),
      sinks: sinks as Map<string, DiskSink>,
      publish: async () => {
        if (state !== 'prepared') throw new AppError('internal', `publish of a ${state} instance ${id}`);
        const pending = [...sinks.entries()].filter(([, s]) => s.status !== 'committed').map(([dev]) => dev);
        if (pending.length > 0) throw new AppError('internal', `Cannot publish instance ${id}: disks not committed: ${pending.join(', ')}`);
        await this.inventory.addInstance(entry);
        state = 'published';
        // Published: the directory is the instance's now (a left marker would be ignored anyway).
        if (marker) await unlink(marker).catch(() => undefined);
        this.log.info({ instance: id, project: projectId }, 'restored instance added to the inventory');
        return toPublic(entry);
      },
      // After publish the instance belongs to the inventory: discard is then a no-op.
      discard: async () => {
        if (state !== 'prepared') return;
        state = 'discarded';
        await removeAll();
      },
    };
  }

  /**
   * Sinks over existing disks of an instance: each writes a temp file beside the image and
   * renames over it on commit, so an aborted or crashed restore leaves the original intact. The
   * image takes the snapshot's size; the original's permission bits are kept (ownership is not).
   * publish() only checks that every sink committed; discard() aborts the uncommitted ones
   * (images already committed stay restored — rename cannot be undone).
   */
  async openInPlaceSinks(projectId: string, instanceId: string, wanted: { device: string; size: number }[], tag?: RestoreTag): Promise<PreparedInstance> {
    const restoreId = tag ? checkTag(tag) : null;
    const entry = await this.findEntry(projectId, instanceId);
    if (!entry) throw NotFoundError.of('Instance', instanceId);
    checkDevices(wanted);
    const targets = wanted.map((w) => {
      const d = entry.disks.find((x) => x.device === w.device);
      if (!d) throw new ValidationError(`Instance ${entry.name} (${entry.id}) has no disk ${w.device}`);
      checkSize(w.device, w.size);
      return { device: w.device, size: w.size, file: d.path };
    });
    const sinks = new Map<string, FileDiskSink>();
    try {
      for (const t of targets) {
        // Replace the real image when the inventory path is a symlink (the link stays); a
        // missing image is simply re-created.
        const file = await realpath(t.file).catch(() => t.file);
        const mode = await stat(file).then(
          (s) => s.mode,
          () => undefined,
        );
        sinks.set(t.device, await FileDiskSink.create(file, t.size, { mode, ...(restoreId ? { tempPath: tempPathFor(file, restoreId) } : {}) }));
      }
    } catch (e) {
      await Promise.all([...sinks.values()].map((s) => s.abort()));
      throw new UnavailableError(`Cannot open disks of instance ${entry.name} (${entry.id}) for an in-place restore: ${errorMessage(e)}`, { cause: e });
    }
    const instance = toPublic(entry);
    return {
      instance,
      sinks: sinks as Map<string, DiskSink>,
      publish: async () => {
        const pending = [...sinks.entries()].filter(([, s]) => s.status !== 'committed').map(([dev]) => dev);
        if (pending.length > 0) throw new AppError('internal', `Cannot publish instance ${instanceId}: disks not committed: ${pending.join(', ')}`);
        return instance;
      },
      discard: async () => {
        await Promise.all([...sinks.values()].map((s) => s.abort()));
      },
    };
  }
  /**
   * After a restore's worker died: removes its in-place temp files (named from the restore id
   * beside each image of `instanceIds`) and the directories of new instances it never
   * published (found by their marker; an instance that reached the inventory is kept).
   */
  async cleanupRestore(projectId: string, tag: RestoreTag, instanceIds: string[]): Promise<void> {
    const restoreId = checkTag(tag);
    for (const id of instanceIds) {
      const entry = await this.findEntry(projectId, id);
      for (const d of entry?.disks ?? []) {
        const file = await realpath(d.path).catch(() => d.path);
        await unlinkQuiet(tempPathFor(file, restoreId), this.log);
      }
    }
    const prefix = `${PARTIAL_PREFIX}${restoreId}.`;
    const names = await readdir(this.restoreDir).catch((e: unknown) => (hasCode(e, 'ENOENT') ? [] : Promise.reject(e)));
    const inventory = await this.inventory.instances();
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const id = name.slice(prefix.length);
      if (!isUuid(id)) continue;
      if (!inventory.some((i) => i.id === id)) {
        await rm(path.join(this.restoreDir, id), { recursive: true, force: true });
        this.log.warn({ instance: id, restore: restoreId }, 'removed the partial instance of a restore whose worker died');
      }
      await unlinkQuiet(path.join(this.restoreDir, name), this.log);
    }
  }

  /** `<restoreDir>/.partial.<restoreId>.<instanceId>`: exists while that instance is unpublished. */
  private partialMarker(restoreId: string, instanceId: string): string {
    return path.join(this.restoreDir, `${PARTIAL_PREFIX}${restoreId}.${instanceId}`);
  }
}

const PARTIAL_PREFIX = '.partial.';

/** Restore ids become parts of file names: only uuids are accepted. */
function checkTag(tag: RestoreTag): string {
  if (!isUuid(tag.restoreId)) throw new AppError('internal', `restore id ${JSON.stringify(tag.restoreId)} is not a uuid`);
  return tag.restoreId.toLowerCase();
}

async function unlinkQuiet(file: string, log: Logger): Promise<void> {
  try {
    await unlink(file);
    log.warn({ file }, 'removed a file left by a restore whose worker died');
  } catch (e) {
    if (!hasCode(e, 'ENOENT')) throw e;
  }
}

/** Devices must be /dev/<name> and unique; returns the basenames (used in file names). */
function checkDevices(disks: { device: string }[]): string[] {
  const seen = new Set<string>();
  return disks.map((d) => {
    const m = DEVICE_RE.exec(d.device);
    if (!m) throw new ValidationError(`Invalid device name ${JSON.stringify(d.device)} (expected e.g. /dev/vda)`);
    if (seen.has(d.device)) throw new ValidationError(`Device ${d.device} is listed twice`);
    seen.add(d.device);
    return m[1] as string;
  });
}

function checkSize(device: string, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new ValidationError(`Disk ${device}: size must be a non-negative integer of bytes (got ${size})`);
}
