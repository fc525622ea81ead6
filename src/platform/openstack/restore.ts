import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Instance } from '../../domain/instance.js';
import { ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { OpenStackApi } from '../../openstack/api.js';
import type { OpenStackSession } from '../../openstack/session.js';
import type { NovaFlavor } from '../../openstack/types.js';
import { waitUntil } from '../../openstack/wait.js';
import { FileDiskSink } from '../disk-io/file-disk.js';
import type { DiskSink, NewInstanceSpec, PreparedInstance, RestoreTag } from '../platform.js';
import { Temporaries } from './temporaries.js';
import { removeVolume } from './volume-export.js';

/**
 * A restore into OpenStack, API only (OpenStack-in-a-box README §7.3, way 1):
 *  1. the datamover writes each disk into a sparse local file (the sinks handed out here);
 *  2. publish(): each file is uploaded to Glance as a raw image and a Cinder volume is created
 *     from it (same size, the original volume type); the image is deleted once the volume is
 *     available;
 *  3. a port per NIC on the (possibly mapped) network with the original security groups;
 *  4. a server with a flavor of the original specs (the original's, else a recreated one),
 *     booted from the first disk's volume, the other volumes attached at boot; waits ACTIVE.
 * Everything is created in the tenant's project through a trust-scoped session (`tenant`);
 * flavor lookup/creation uses the service identity. On any failure (and on discard) every
 * created resource is removed, and the error names the step, the call and its request id.
 */
export interface RestoreDeps {
  /** The service identity (admin): flavors. */
  service: OpenStackApi;
  /** Acts in the tenant's project (a trust-scoped session). */
  tenant: OpenStackSession;
  tenantApi: OpenStackApi;
  scratchDir: string;
  log: Logger;
  describe: (serverId: string) => Promise<Instance | null>;
}

const STEP_TIMEOUT_MS = 30 * 60_000;
const GiB = 2 ** 30;

export async function prepareOpenStackInstance(d: RestoreDeps, projectId: string, spec: NewInstanceSpec, tag: RestoreTag): Promise<PreparedInstance> {
  if (spec.disks.length === 0) throw new ValidationError('An OpenStack restore needs at least one disk');
  await mkdir(d.scratchDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(path.join(d.scratchDir, `os-restore-${tag.restoreId.slice(0, 8)}-`));
  const sinks = new Map<string, DiskSink>();
  const files = new Map<string, { file: string; size: number; volumeType?: string }>();
  try {
    for (const disk of spec.disks) {
      const file = path.join(dir, `${disk.device.replace(/[^a-z0-9]/gi, '_')}.raw`);
      sinks.set(disk.device, await FileDiskSink.create(file, disk.size));
      files.set(disk.device, { file, size: disk.size, ...(disk.volume_type ? { volumeType: disk.volume_type } : {}) });
    }
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const temps = new Temporaries(d.log);
  const pending: Instance = { id: '', name: spec.name, project_id: projectId, status: 'BUILD', availability_zone: spec.availability_zone, flavor: spec.flavor, security_groups: spec.security_groups, nics: [], disks: [], metadata: spec.metadata };
  return {
    instance: pending,
    sinks,
    publish: async () => {
      try {
        const inst = await publish(d, projectId, spec, files, temps, tag);
        return inst;
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
  };
}

async function publish(d: RestoreDeps, projectId: string, spec: NewInstanceSpec, files: Map<string, { file: string; size: number; volumeType?: string }>, temps: Temporaries, tag: RestoreTag): Promise<Instance> {
  const t0 = Date.now();
  const steps: string[] = [];
  const step = (what: string, since: number) => steps.push(`${what} ${((Date.now() - since) / 1000).toFixed(1)} s`);
  const devices = [...files.keys()].sort();
  const volumes = new Map<string, string>();
  for (const device of devices) {
    const s = Date.now();
    volumes.set(device, await diskToVolume(d, spec.name, device, files.get(device)!, temps, tag));
    step(`volume ${device}`, s);
  }
  let s = Date.now();
  const flavorId = await flavorFor(d, spec.flavor);
  const ports: string[] = [];
  for (const nic of spec.nics) ports.push(await portFor(d, projectId, nic.network, spec.security_groups, temps));
  step('flavor + ports', s);
  s = Date.now();
  const bdm = devices.map((device, i) => ({ boot_index: i === 0 ? 0 : -1, uuid: volumes.get(device), source_type: 'volume', destination_type: 'volume', delete_on_termination: false }));
  const body: Record<string, unknown> = {
    name: spec.name,
    flavorRef: flavorId,
    networks: ports.length > 0 ? ports.map((port) => ({ port })) : 'none',
    block_device_mapping_v2: bdm,
    metadata: spec.metadata,
    ...(spec.availability_zone ? { availability_zone: spec.availability_zone } : {}),
  };
  const r = await d.tenant.call<{ server: { id: string } }>('compute', 'POST', '/servers', { json: { server: body } });
  const serverId = r.data.server.id;
  temps.add(`Nova server ${serverId}`, () => deleteServer(d, serverId));
  await waitUntil(`Nova server ${serverId}`, () => d.tenantApi.getServer(serverId), (v) => v.status === 'ACTIVE', { timeoutMs: STEP_TIMEOUT_MS, failed: (v) => (v.status === 'ERROR' ? 'ERROR' : null) });
  step('server ACTIVE', s);
  // Published: the server, its ports and volumes are the restored instance now, not temporaries.
  for (const what of [`Nova server ${serverId}`, ...ports.map((p) => `Neutron port ${p}`), ...[...volumes.values()].map((v) => `Cinder volume ${v}`)]) temps.keep(what);
  d.log.info({ server: serverId, steps, totalMs: Date.now() - t0 }, 'OpenStack restore published');
  const inst = await d.describe(serverId);
  if (!inst) throw new Error(`Nova server ${serverId} vanished after it became ACTIVE`);
  return inst;
}

/** Uploads the restored bytes to Glance and makes a volume of them; the image is removed after. */
async function diskToVolume(d: RestoreDeps, name: string, device: string, f: { file: string; size: number; volumeType?: string }, temps: Temporaries, tag: RestoreTag): Promise<string> {
  const imageName = `lifeboat-tmp-restore-${tag.restoreId.slice(0, 8)}-${randomUUID().slice(0, 8)}`;
  const img = await d.tenant.call<{ id: string }>('image', 'POST', '/images', { json: { name: imageName, disk_format: 'raw', container_format: 'bare', visibility: 'private' } });
  const imageId = img.data.id;
  const imageKey = `Glance image ${imageId}`;
  temps.add(imageKey, () => d.tenantApi.deleteImage(imageId));
  const body = Readable.toWeb(createReadStream(f.file)) as unknown as ReadableStream<Uint8Array>;
  await d.tenant.call('image', 'PUT', `/images/${imageId}/file`, { body, contentType: 'application/octet-stream', timeoutMs: STEP_TIMEOUT_MS, headers: { 'content-length': String(f.size) } });
  const vol = await d.tenantApi.createVolume({ size: Math.max(1, Math.ceil(f.size / GiB)), name: `${name}-${path.basename(device)}`, imageRef: imageId, ...(f.volumeType ? { volume_type: f.volumeType } : {}) });
  temps.add(`Cinder volume ${vol.id}`, () => removeVolume(d.tenantApi, vol.id));
  await waitUntil(`Cinder volume ${vol.id}`, () => d.tenantApi.getVolume(vol.id), (v) => v.status === 'available', { timeoutMs: STEP_TIMEOUT_MS, failed: (v) => (v.status.startsWith('error') ? v.status : null) });
  await d.tenantApi.deleteImage(imageId);
  temps.keep(imageKey);
  return vol.id;
}

/** The original flavor if one with the same specs exists, else a recreated one (service identity). */
async function flavorFor(d: RestoreDeps, f: NewInstanceSpec['flavor']): Promise<string> {
  const r = await d.service.session.call<{ flavors: NovaFlavor[] }>('compute', 'GET', '/flavors/detail?is_public=None');
  const same = r.data.flavors.find((x) => x.vcpus === f.vcpus && x.ram === f.ram && x.disk === f.disk && (x['OS-FLV-EXT-DATA:ephemeral'] ?? 0) === f.ephemeral);
  if (same) return same.id;
  const made = await d.service.session.call<{ flavor: { id: string } }>('compute', 'POST', '/flavors', { json: { flavor: { name: `lifeboat-${f.vcpus}-${f.ram}-${f.disk}-${f.ephemeral}-${randomUUID().slice(0, 8)}`, vcpus: f.vcpus, ram: f.ram, disk: f.disk, 'OS-FLV-EXT-DATA:ephemeral': f.ephemeral } } });
  return made.data.flavor.id;
}

async function portFor(d: RestoreDeps, projectId: string, net: NewInstanceSpec['nics'][number]['network'], groups: string[], temps: Temporaries): Promise<string> {
  const found = await d.tenantApi.getNetwork(net.id);
  if (!found) throw new ValidationError(`Network ${net.name || net.id} (${net.id}) no longer exists; map it to another network with networks_mapping`);
  const all = await d.tenantApi.projectSecurityGroups(projectId);
  const sgIds = groups.map((g) => all.find((x) => x.name === g)?.id).filter((x): x is string => !!x);
  const fixed = net.subnet ? { fixed_ips: [{ subnet_id: net.subnet.id }] } : {};
  const r = await d.tenant.call<{ port: { id: string } }>('network', 'POST', '/ports', { json: { port: { network_id: net.id, security_groups: sgIds, ...fixed } } });
  const id = r.data.port.id;
  temps.add(`Neutron port ${id}`, async () => void (await d.tenant.call('network', 'DELETE', `/ports/${id}`, { expect: [204, 404] })));
  return id;
}

async function deleteServer(d: RestoreDeps, id: string): Promise<void> {
  await d.tenant.call('compute', 'DELETE', `/servers/${id}`, { expect: [204, 404] });
  await waitUntil(`deletion of Nova server ${id}`, () => d.tenantApi.getServer(id), () => false, { timeoutMs: STEP_TIMEOUT_MS, goneIsDone: true });
}
