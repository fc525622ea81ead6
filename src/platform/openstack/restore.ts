import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Instance } from '../../domain/instance.js';
import { errorMessage, ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { NovaServer } from '../../openstack/types.js';
import { realWaitClock, waitUntil, type WaitClock } from '../../openstack/wait.js';
import { FileDiskSink } from '../disk-io/file-disk.js';
import { Qcow2DiskSink } from '../disk-io/qcow2-sink.js';
import { uploadsAsQcow2 } from './qemu-img.js';
import type { DiskSink, NewInstanceSpec, PreparedInstance, RestoreTag } from '../platform.js';
import {
  deleteServer,
  diskToVolume,
  flavorFor,
  hasKeyPair,
  imageKey,
  PENDING_KEY,
  networkFor,
  portKey,
  securityGroupIds,
  serverKey,
  STEP_TIMEOUT_MS,
  stopServer,
  unmark,
  uploadImage,
  volumeKey,
  type Made,
  type RestoreDeps,
  type RestoredFile,
  type ServerNetwork,
} from './restore-resources.js';
import { Temporaries } from './temporaries.js';

/**
 * A restore into OpenStack, API only (OpenStack-in-a-box README §7.3, way 1):
 *  1. the datamover writes each disk into a sparse local file (the sinks handed out here);
 *  2. publish(): the quick steps first (3 and the flavor of 4: what cannot be had fails the
 *     restore before minutes of uploads); then each volume's file is uploaded to Glance as a
 *     raw image and a Cinder volume is created from it (same size, the original or mapped
 *     volume type, the mapped zone); the image is deleted once the volume is available. An image-backed root disk becomes a Glance image
 *     (with the original image's properties) the server boots from, removed once ACTIVE;
 *  3. the original security groups (a group gone is recreated with its rules), a port per NIC
 *     on the (possibly mapped) network with them;
 *  4. a server with a flavor of the original specs (the original's, else a recreated one),
 *     its key pair (when the acting user has it; else a warning), booted from the root image
 *     or the copy of the original's boot volume, the other volumes attached at their original
 *     device names (each on the bus its name stands for); waits
 *     ACTIVE, then stops it when the restore asks not to start it.
 * Everything is created in the tenant's project through a trust-scoped session (`tenant`);
 * flavor lookup/creation uses the service identity. On any failure (and on discard) every
 * created resource is removed, and the error names the step, the call and its request id.
 * Each step's time goes to the log (no wait polls faster than 1 s or slower than 2 s).
 */
export interface PublishDeps extends RestoreDeps {
  describe: (serverId: string) => Promise<Instance | null>;
}

/** Local sparse files the datamover writes each disk into (one scratch directory per restore). */
export interface LocalDisks {
  dir: string;
  sinks: Map<string, DiskSink>;
  files: Map<string, RestoredFile>;
}

export async function openLocalDisks(scratchDir: string, tag: RestoreTag, disks: { device: string; size: number; data_bytes?: number; volume_type?: string; availability_zone?: string }[]): Promise<LocalDisks> {
  await mkdir(scratchDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(scratchDir, `os-restore-${tag.restoreId.slice(0, 8)}-`));
  const sinks = new Map<string, DiskSink>();
  const files = new Map<string, RestoredFile>();
  try {
    for (const disk of disks) {
      // Known to be mostly holes: written as qcow2 straight away, so the upload needs no conversion.
      const format = disk.data_bytes !== undefined && uploadsAsQcow2(disk.data_bytes, disk.size) ? 'qcow2' : 'raw';
      const file = path.join(dir, `${disk.device.replace(/[^a-z0-9]/gi, '_')}.${format}`);
      sinks.set(disk.device, format === 'qcow2' ? await Qcow2DiskSink.create(file, disk.size) : await FileDiskSink.create(file, disk.size));
      files.set(disk.device, { file, format, size: disk.size, ...(disk.volume_type ? { volumeType: disk.volume_type } : {}), ...(disk.availability_zone ? { availabilityZone: disk.availability_zone } : {}) });
    }
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return { dir, sinks, files };
}

export async function prepareOpenStackInstance(d: PublishDeps, projectId: string, spec: NewInstanceSpec, tag: RestoreTag): Promise<PreparedInstance> {
  if (spec.disks.length === 0) throw new ValidationError('An OpenStack restore needs at least one disk');
  const { dir, sinks, files } = await openLocalDisks(d.scratchDir, tag, spec.disks);
  const temps = new Temporaries(d.log);
  const warnings: string[] = [];
  const pending: Instance = { id: '', name: spec.name, project_id: projectId, status: 'BUILD', availability_zone: spec.availability_zone, flavor: spec.flavor, security_groups: spec.security_groups, nics: [], disks: [], metadata: spec.metadata };
  return {
    instance: pending,
    sinks,
    publish: async () => {
      try {
        return await publish(d, projectId, spec, files, { temps, tag, warnings });
      } catch (e) {
        const left = await temps.removeAll();
        if (left.length > 0) d.log.error({ left }, 'restore cleanup left resources behind');
        throw e;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    discard: async () => {
      await temps.removeAll();
      await rm(dir, { recursive: true, force: true });
    },
    notes: () => ({ warnings, changeTrackingReset: false }),
  };
}

interface PublishRun {
  temps: Temporaries;
  tag: RestoreTag;
  warnings: string[];
}

/**
 * Runs one named step: its time is recorded and logged as it ends (debug: what a restore
 * that takes long is doing), and a failure says which step failed.
 */
export class Steps {
  readonly times: Record<string, number> = {};
  constructor(
    private readonly log: Logger,
    private readonly server: string,
  ) {}

  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t = Date.now();
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ValidationError) throw e;
      throw new Error(`step "${name}" failed: ${errorMessage(e)}`, { cause: e });
    } finally {
      this.times[name] = Date.now() - t;
      this.log.debug({ server: this.server, step: name, ms: this.times[name] }, 'OpenStack restore step ended');
    }
  }
}

async function publish(d: PublishDeps, projectId: string, spec: NewInstanceSpec, files: Map<string, RestoredFile>, run: PublishRun): Promise<Instance> {
  const { temps, tag } = run;
  const t0 = Date.now();
  const steps = new Steps(d.log, spec.name);
  const root = spec.disks.find((x) => x.image_backed) ?? null;
  const volumeDevices = spec.disks.filter((x) => !x.image_backed).map((x) => x.device).sort();
  // The quick steps first (a flavor, groups or network that cannot be had fails the restore
  // before minutes of uploads), then the volumes and the root image.
  const made: Made = { flavors: [], groups: [] };
  const flavorId = await steps.run('flavor', () => flavorFor(d, spec.flavor, temps, tag, made));
  const groups = await steps.run('security groups', () => securityGroupIds(d, projectId, spec.security_groups, spec.security_group_details ?? [], temps, tag, made));
  const networks: ServerNetwork[] = [];
  for (const nic of spec.nics) networks.push(await steps.run(`network ${nic.network.name || nic.network.id}`, () => networkFor(d, nic.network, groups, temps, tag)));
  const ports = networks.flatMap((n) => ('port' in n ? [n.port] : []));
  const keyName = spec.key_name && (await hasKeyPair(d, spec.key_name)) ? spec.key_name : null;
  if (spec.key_name && !keyName) run.warnings.push(`Key pair ${spec.key_name} is not the restoring user's: server ${spec.name} was made without it`);
  const volumes = new Map<string, string>();
  for (const device of volumeDevices) {
    volumes.set(device, await steps.run(`volume ${device}`, () => diskToVolume(d, spec.name, device, files.get(device)!, temps, tag)));
  }
  const rootImage = root ? await steps.run(`root image ${root.device}`, () => uploadImage(d, files.get(root.device)!, temps, tag, root.image_properties)) : null;
  const body = serverBody(spec, { flavorId, networks, groups, volumes, rootImage, rootDevice: root?.device ?? null, keyName, tag });
  const serverId = await steps.run('server boot', () => bootServer(d, body, [...volumes.values()], temps));
  if (spec.power_on === false) await steps.run('server stop', () => stopServer(d, serverId));
  await steps.run('publish', () => unmark(d, serverId, [...volumes.values()], made, tag));
  // Published: the server, its ports, volumes, groups and flavor are the restored instance now.
  for (const what of [serverKey(serverId), ...ports.map(portKey), ...[...volumes.values()].map(volumeKey)]) temps.keep(what);
  temps.keepWhere((what) => !what.startsWith('Glance image '));
  if (rootImage) await steps.run('remove root image', () => d.tenantApi.deleteImage(rootImage)).then(() => temps.keep(imageKey(rootImage)));
  d.log.info({ server: serverId, stepMs: steps.times, totalMs: Date.now() - t0 }, 'OpenStack restore published');
  const inst = await d.describe(serverId);
  if (!inst) throw new Error(`Nova server ${serverId} vanished after it became ACTIVE`);
  return inst;
}

export interface ServerParts {
  flavorId: string;
  networks: ServerNetwork[];
  /** Security group ids for the ports Nova makes (a made port has them already). */
  groups: string[];
  volumes: Map<string, string>;
  rootImage: string | null;
  /** The original's device of the image-backed root disk (with rootImage). */
  rootDevice: string | null;
  keyName: string | null;
  tag: RestoreTag;
}

/**
 * The bus a device name stands for, as Nova's libvirt driver reads a name when no bus is given
 * (`sdX` SCSI, `vdX` virtio); undefined for any other name (Nova chooses). Sent beside each
 * name: without it Nova's libvirt driver puts every disk on the image's default bus (virtio)
 * under the name asked for, and libvirt numbers a disk by its name's letter whatever the
 * prefix, so an original with `/dev/sda` and `/dev/vda` (a server of Nova's fake driver, or a
 * SCSI root beside a virtio volume) came back as two `virtio-disk0` and QEMU refused to start
 * ("Duplicate device ID 'virtio-disk0'"; seen on the loopback stack, where Nova then placed
 * the server on its other host).
 */
export function busOfDevice(device: string): 'scsi' | 'virtio' | undefined {
  const name = device.replace(/^\/dev\//, '');
  if (/^sd[a-z]+$/.test(name)) return 'scsi';
  if (/^vd[a-z]+$/.test(name)) return 'virtio';
  return undefined;
}

/** A block device mapping's name and bus: the original's device, and the bus its name stands for. */
function deviceFields(device: string | null): Record<string, string> {
  if (!device) return {};
  const bus = busOfDevice(device);
  return { device_name: device, ...(bus ? { disk_bus: bus } : {}) };
}

/**
 * The volume a server without a root image boots from: the original's boot disk when it is one
 * of them, else the first by device name (a snapshot from before the boot disk was recorded, or
 * a selective restore without it).
 */
function bootVolume(spec: NewInstanceSpec, devices: string[]): string | undefined {
  return spec.root_device && devices.includes(spec.root_device) ? spec.root_device : [...devices].sort()[0];
}

/** POST /servers body: boot from the root image (local disk) or the boot volume (listed first); every disk at its original device name, on the bus the name stands for. */
export function serverBody(spec: NewInstanceSpec, p: ServerParts): Record<string, unknown> {
  const bdm: Record<string, unknown>[] = [];
  if (p.rootImage) bdm.push({ boot_index: 0, uuid: p.rootImage, source_type: 'image', destination_type: 'local', ...deviceFields(p.rootDevice), delete_on_termination: true });
  const boot = p.rootImage ? undefined : bootVolume(spec, [...p.volumes.keys()]);
  const volumes = [...p.volumes.entries()].sort(([a], [b]) => Number(b === boot) - Number(a === boot) || (a < b ? -1 : a > b ? 1 : 0));
  for (const [device, uuid] of volumes) {
    bdm.push({ boot_index: device === boot ? 0 : -1, uuid, source_type: 'volume', destination_type: 'volume', ...deviceFields(device), delete_on_termination: false });
  }
  return {
    name: spec.name,
    flavorRef: p.flavorId,
    networks: p.networks.length > 0 ? p.networks : 'none',
    ...(p.groups.length > 0 && p.networks.some((n) => 'uuid' in n) ? { security_groups: p.groups.map((name) => ({ name })) } : {}),
    block_device_mapping_v2: bdm,
    metadata: { ...spec.metadata, [PENDING_KEY]: p.tag.restoreId },
    ...(p.rootImage ? { imageRef: p.rootImage } : {}),
    ...(p.keyName ? { key_name: p.keyName } : {}),
    ...(spec.availability_zone ? { availability_zone: spec.availability_zone } : {}),
  };
}

/**
 * A server Nova has not placed after this long (BUILD with task state `scheduling`, or with no
 * task at all, seen on the loopback stack after a conductor failure) is taken as lost: a cast that never arrived or a conductor whose database write failed leaves it so for
 * ever (seen on the loopback stack under load: nova-conductor's "database is locked"). On a
 * working cloud scheduling takes seconds; spawning (image download, volume mapping) can take
 * long and is never cut short.
 */
export const SCHEDULING_STUCK_MS = 5 * 60_000;
/**
 * Boots of one restored server at most, counting the first. A boot that ends in ERROR or is
 * lost in scheduling is deleted and tried again: Nova fails builds for passing reasons of its
 * own (seen on the loopback stack: the conductor's database locked mid-spawn, "Exceeded maximum
 * number of retries"), and a failure that is not passing costs seconds to meet again. The
 * restore fails with the last boot's fault.
 */
const BOOT_TRIES = 3;

/** Boots the server and waits ACTIVE; a failed or lost boot is deleted and made again (its volumes back to available first). */
export async function bootServer(d: RestoreDeps, body: Record<string, unknown>, volumeIds: string[], temps: Temporaries, clock: WaitClock = realWaitClock): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const r = await d.tenant.call<{ server: { id: string } }>('compute', 'POST', '/servers', { json: { server: body } });
    const id = r.data.server.id;
    temps.add(serverKey(id), () => deleteServer(d.tenant, d.tenantApi, id));
    const failure = await bootFailure(d, id, clock);
    if (failure === null) return id;
    if (attempt >= BOOT_TRIES) throw new Error(`${failure} (${BOOT_TRIES} boots tried)`);
    d.log.warn({ server: id, attempt }, `${failure}: deleting it and booting again`);
    await temps.removeNow(serverKey(id));
    for (const v of volumeIds) {
      await waitUntil(`Cinder volume ${v} freed by the deleted boot`, () => d.tenantApi.getVolume(v), (x) => x.status === 'available', { timeoutMs: STEP_TIMEOUT_MS, clock, failed: (x) => (x.status.startsWith('error') ? x.status : null) });
    }
  }
}

/** Waits until the server is ACTIVE (null), in ERROR, or has sat in scheduling for SCHEDULING_STUCK_MS (what went wrong). */
async function bootFailure(d: RestoreDeps, id: string, clock: WaitClock): Promise<string | null> {
  const since = clock.now();
  const unplaced = (v: NovaServer) => v['OS-EXT-STS:task_state'] === 'scheduling' || !v['OS-EXT-STS:task_state'];
  const lost = (v: NovaServer) => v.status === 'BUILD' && unplaced(v) && clock.now() - since > SCHEDULING_STUCK_MS;
  const v = (await waitUntil(serverKey(id), () => d.tenantApi.getServer(id), (x) => x.status === 'ACTIVE' || x.status === 'ERROR' || lost(x), { timeoutMs: STEP_TIMEOUT_MS, clock }))!;
  if (v.status === 'ACTIVE') return null;
  if (v.status === 'ERROR') return `Nova server ${id} failed: ERROR${serverFault(v)}`;
  return `Nova server ${id} was not scheduled within ${SCHEDULING_STUCK_MS / 1000} s`;
}

function serverFault(v: unknown): string {
  const f = (v as { fault?: { message?: unknown } }).fault;
  return typeof f?.message === 'string' ? `: ${f.message}` : '';
}
