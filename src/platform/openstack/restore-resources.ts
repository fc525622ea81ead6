import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { SecurityGroup } from '../../domain/instance.js';
import { ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { OpenStackApi } from '../../openstack/api.js';
import { OpenStackError } from '../../openstack/errors.js';
import type { OpenStackSession } from '../../openstack/session.js';
import type { NovaFlavor, NovaServer } from '../../openstack/types.js';
import { realWaitClock, retryPause, waitUntil, type WaitClock } from '../../openstack/wait.js';
import type { NewInstanceSpec, RestoreTag } from '../platform.js';
import { uploadableImage } from './qemu-img.js';
import type { Temporaries } from './temporaries.js';
import { removeVolume } from './volume-export.js';

/**
 * The OpenStack resources a restore makes (restore.ts), each registered in `temps` the moment
 * it exists so a failure removes it. What a crash could leave is marked so the reconciler
 * finds it by restore id (restore-cleanup.ts): servers and volumes carry the metadata key
 * PENDING_KEY until published, flavors and security groups made here the description
 * pendingDescription(tag) until published (both are made atomically with it), ports made here
 * are named portName(tag), Glance images are tagged imageTag(tag).
 */
export interface RestoreDeps {
  /** The service identity (admin): flavors, lookups across projects, crash cleanup. */
  service: OpenStackApi;
  /** Acts in the tenant's project (a trust-scoped session). */
  tenant: OpenStackSession;
  tenantApi: OpenStackApi;
  scratchDir: string;
  log: Logger;
}

export const STEP_TIMEOUT_MS = 30 * 60_000;
const GiB = 2 ** 30;

/** Metadata key of a server or volume a restore made and has not published yet (value: restore id). */
export const PENDING_KEY = 'lifeboat_restore_pending';
export const portName = (tag: RestoreTag) => `lifeboat-restore-${tag.restoreId}`;
/** Description of a flavor or security group a restore made and has not published yet. */
export const pendingDescription = (tag: RestoreTag) => `${PENDING_KEY}=${tag.restoreId}`;
/** Its description once published (no crash cleanup touches it any more). */
export const publishedDescription = (tag: RestoreTag) => `recreated by Lifeboat restore ${tag.restoreId}`;

/** The flavors and security groups a restore made: they outlive it once published (then unmarked). */
export interface Made {
  flavors: string[];
  groups: string[];
}
export const imageTag = (tag: RestoreTag) => `lifeboat-restore-${tag.restoreId}`;

export interface RestoredFile {
  file: string;
  /** raw: a sparse raw file (uploaded as qcow2 when mostly holes: uploadableImage); qcow2: written as qcow2 already. */
  format: 'raw' | 'qcow2';
  size: number;
  volumeType?: string;
  /** The Cinder availability zone of the volume made of it (absent: Cinder's default). */
  availabilityZone?: string;
}

/** Glance's reserved property namespace: never set by a client. */
const RESERVED_PROPERTY = /^os_glance|^(id|name|status|owner|size|checksum|tags|visibility|protected|disk_format|container_format|file|self|schema|locations|direct_url|stores|os_hidden|os_hash_algo|os_hash_value|virtual_size|min_ram|min_disk|created_at|updated_at)$/;

/**
 * A Glance image of the restored bytes in the tenant's project (a temporary): raw, or qcow2 when
 * the disk is mostly holes (uploadableImage; the qcow2 copy is removed once uploaded).
 */
export async function uploadImage(d: RestoreDeps, f: RestoredFile, temps: Temporaries, tag: RestoreTag, properties: Record<string, string> = {}): Promise<string> {
  const props = Object.fromEntries(Object.entries(properties).filter(([k]) => !RESERVED_PROPERTY.test(k)));
  const name = `lifeboat-tmp-restore-${tag.restoreId.slice(0, 8)}-${randomUUID().slice(0, 8)}`;
  const upload = f.format === 'qcow2' ? { file: f.file, format: 'qcow2' as const, size: (await stat(f.file)).size } : await uploadableImage(f.file, f.size);
  try {
    const img = await d.tenant.call<{ id: string }>('image', 'POST', '/images', { json: { ...props, name, disk_format: upload.format, container_format: 'bare', visibility: 'private', tags: [imageTag(tag)] } });
    const imageId = img.data.id;
    temps.add(imageKey(imageId), () => d.tenantApi.deleteImage(imageId));
    const body = Readable.toWeb(createReadStream(upload.file)) as unknown as ReadableStream<Uint8Array>;
    await d.tenant.call('image', 'PUT', `/images/${imageId}/file`, { body, contentType: 'application/octet-stream', timeoutMs: STEP_TIMEOUT_MS, headers: { 'content-length': String(upload.size) } });
    return imageId;
  } finally {
    if (upload.file !== f.file) await rm(upload.file, { force: true });
  }
}

export const imageKey = (id: string) => `Glance image ${id}`;
export const volumeKey = (id: string) => `Cinder volume ${id}`;
export const serverKey = (id: string) => `Nova server ${id}`;
export const portKey = (id: string) => `Neutron port ${id}`;

/**
 * Tries at making a volume of a restored image. Cinder can fail a creation for reasons of its
 * own that another try does not meet (the loopback stack's SQLite "database is locked" in its
 * scheduler ends in `error` after its own reschedules): the failed volume is removed first.
 */
const VOLUME_ATTEMPTS = 3;

/** Uploads the restored bytes to Glance and makes a volume of them (same size, the original or mapped type, the mapped zone); the image is removed after. */
export async function diskToVolume(d: RestoreDeps, name: string, device: string, f: RestoredFile, temps: Temporaries, tag: RestoreTag): Promise<string> {
  const imageId = await uploadImage(d, f, temps, tag);
  for (let attempt = 1; ; attempt++) {
    const vol = await d.tenantApi.createVolume({
      size: Math.max(1, Math.ceil(f.size / GiB)),
      name: `${name}-${path.basename(device)}`,
      imageRef: imageId,
      metadata: { [PENDING_KEY]: tag.restoreId },
      ...(f.volumeType ? { volume_type: f.volumeType } : {}),
      ...(f.availabilityZone ? { availability_zone: f.availabilityZone } : {}),
    });
    temps.add(volumeKey(vol.id), () => removeVolume(d.tenantApi, vol.id));
    const v = (await waitUntil(volumeKey(vol.id), () => d.tenantApi.getVolume(vol.id), (x) => x.status === 'available' || x.status.startsWith('error'), { timeoutMs: STEP_TIMEOUT_MS }))!;
    if (v.status === 'available') {
      await d.tenantApi.deleteImage(imageId);
      temps.keep(imageKey(imageId));
      return vol.id;
    }
    if (attempt >= VOLUME_ATTEMPTS) throw new Error(`${volumeKey(vol.id)} failed: ${v.status} (attempt ${attempt} of ${VOLUME_ATTEMPTS})`);
    d.log.warn({ volume: vol.id, status: v.status, attempt }, 'Cinder failed to make a volume of the restored image: removed, made again');
    await removeVolume(d.tenantApi, vol.id);
    temps.keep(volumeKey(vol.id));
  }
}


const sameSpecs = (a: Record<string, string> = {}, b: Record<string, string> = {}) => Object.keys(a).length === Object.keys(b).length && Object.entries(a).every(([k, v]) => b[k] === v);

/**
 * A flavor of the original's specs (vcpus, RAM, disk, ephemeral, swap, extra specs): the one
 * of the original name if it still has them, else any that has them, else one recreated with
 * them under the original name (service identity: flavors are the cloud's).
 */
export async function flavorFor(d: RestoreDeps, f: NewInstanceSpec['flavor'], temps: Temporaries, tag: RestoreTag, made: Made): Promise<string> {
  const r = await d.service.session.call<{ flavors: NovaFlavor[] }>('compute', 'GET', '/flavors/detail?is_public=None');
  const fits = (x: NovaFlavor) =>
    x.vcpus === f.vcpus && x.ram === f.ram && x.disk === f.disk && (x['OS-FLV-EXT-DATA:ephemeral'] ?? 0) === f.ephemeral && (Number(x.swap) || 0) === (f.swap ?? 0) && sameSpecs(x.extra_specs, f.extra_specs);
  const same = r.data.flavors.filter(fits);
  const found = same.find((x) => x.name === f.name) ?? same[0];
  if (found) return found.id;
  const taken = r.data.flavors.some((x) => x.name === f.name);
  const name = f.name && !taken ? f.name : `lifeboat-${f.vcpus}-${f.ram}-${f.disk}-${randomUUID().slice(0, 8)}`;
  // The pending description comes with the flavor (compute 2.55+), so a crash cannot leave it unmarked.
  const body = { name, vcpus: f.vcpus, ram: f.ram, disk: f.disk, 'OS-FLV-EXT-DATA:ephemeral': f.ephemeral, description: pendingDescription(tag), ...(f.swap ? { swap: f.swap } : {}) };
  const r2 = await d.service.session.call<{ flavor: { id: string } }>('compute', 'POST', '/flavors', { json: { flavor: body } });
  const id = r2.data.flavor.id;
  temps.add(`Nova flavor ${id}`, async () => void (await d.service.session.call('compute', 'DELETE', `/flavors/${id}`, { expect: [202, 404] })));
  made.flavors.push(id);
  if (f.extra_specs && Object.keys(f.extra_specs).length > 0) await d.service.session.call('compute', 'POST', `/flavors/${id}/os-extra_specs`, { json: { extra_specs: f.extra_specs } });
  return id;
}

/**
 * The ids of the original's security groups in the project; a group that is gone is recreated
 * with its rules (Neutron adds the default egress rules itself: a duplicate is skipped).
 */
export async function securityGroupIds(d: RestoreDeps, projectId: string, names: string[], details: SecurityGroup[], temps: Temporaries, tag: RestoreTag, made: Made): Promise<string[]> {
  const existing = await d.tenantApi.projectSecurityGroups(projectId);
  const ids: string[] = [];
  for (const name of names) {
    const have = existing.find((g) => g.name === name);
    if (have) {
      ids.push(have.id);
      continue;
    }
    const original = details.find((g) => g.name === name);
    if (!original) throw new ValidationError(`Security group ${name} no longer exists in project ${projectId} and the snapshot has no rules to recreate it`);
    const id = await recreateGroup(d, original, temps, tag);
    made.groups.push(id);
    ids.push(id);
  }
  return ids;
}

async function recreateGroup(d: RestoreDeps, g: SecurityGroup, temps: Temporaries, tag: RestoreTag): Promise<string> {
  const r = await d.tenant.call<{ security_group: { id: string } }>('network', 'POST', '/security-groups', { json: { security_group: { name: g.name, description: pendingDescription(tag) } } });
  const id = r.data.security_group.id;
  temps.add(`Neutron security group ${id}`, async () => void (await d.tenant.call('network', 'DELETE', `/security-groups/${id}`, { expect: [204, 404] })));
  for (const rule of g.rules) {
    try {
      // Sent again after a 5xx (the loopback stack's Neutron fails one now and then on a locked
      // database): a rule made twice is refused with 409, which counts as made.
      await d.tenant.call('network', 'POST', '/security-group-rules', { json: { security_group_rule: { ...rule, security_group_id: id } }, idempotent: true });
    } catch (e) {
      if (!(e instanceof OpenStackError && e.status === 409)) throw e; // 409: the same rule exists (a default one)
    }
  }
  return id;
}

/** How a server is plugged into one network: a port Nova makes (deleted with the server), or one made here. */
export type ServerNetwork = { uuid: string } | { port: string };

/**
 * The server's plug into a (mapped) network. Nova makes the port (with the server's security
 * groups, and deletes it with the server) unless the NIC names a subnet of a network that has
 * several: then a port with a fixed IP on that subnet and the groups is made here (named for
 * crash cleanup; Nova keeps such a port when the server is deleted).
 */
export async function networkFor(d: RestoreDeps, net: NewInstanceSpec['nics'][number]['network'], groupIds: string[], temps: Temporaries, tag: RestoreTag): Promise<ServerNetwork> {
  const found = await d.tenantApi.getNetwork(net.id);
  if (!found) throw new ValidationError(`Network ${net.name || net.id} (${net.id}) no longer exists; map it to another network with networks_mapping`);
  if (!net.subnet || (found.subnets ?? []).length <= 1) return { uuid: net.id };
  const r = await d.tenant.call<{ port: { id: string } }>('network', 'POST', '/ports', { json: { port: { name: portName(tag), network_id: net.id, security_groups: groupIds, fixed_ips: [{ subnet_id: net.subnet.id }] } } });
  const id = r.data.port.id;
  temps.add(portKey(id), async () => void (await d.tenant.call('network', 'DELETE', `/ports/${id}`, { expect: [204, 404] })));
  return { port: id };
}

/** Whether the acting user (the trustor) has key pair `name` (key pairs belong to users, not projects). */
export async function hasKeyPair(d: RestoreDeps, name: string): Promise<boolean> {
  const r = await d.tenant.call('compute', 'GET', `/os-keypairs/${encodeURIComponent(name)}`, { expect: [200, 404] });
  return r.status === 200;
}

export async function deleteServer(session: OpenStackSession, api: OpenStackApi, id: string): Promise<void> {
  await session.call('compute', 'DELETE', `/servers/${id}`, { expect: [204, 404] });
  await waitUntil(`deletion of Nova server ${id}`, () => api.getServer(id), () => false, { timeoutMs: STEP_TIMEOUT_MS, goneIsDone: true });
}

/**
 * A POST whose effect is a state change that can be asked again safely (a server action, an
 * attach after checking it did not happen, a rewrite of a volume still `available`): a 5xx
 * (the loopback stack's SQLite "database is locked"; real clouds' transient 500s) is retried up
 * to 3 times, after `done()` says the first try did not take effect anyway.
 */
export async function postAgain<T>(post: () => Promise<T>, done: () => Promise<boolean> = async () => false): Promise<T | void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await post();
    } catch (e) {
      if (!(e instanceof OpenStackError) || e.status < 500 || attempt >= 3) throw e;
      await retryPause(attempt);
      if (await done()) return;
    }
  }
}

/** A server action (os-stop, os-start); 409 = the server is already there or on its way. */
export async function serverAction(d: Pick<RestoreDeps, 'tenant'>, id: string, action: string): Promise<void> {
  await postAgain(() => d.tenant.call('compute', 'POST', `/servers/${id}/action`, { json: { [action]: null }, expect: [202, 409] }));
}

/** Stops a server and waits until it is SHUTOFF (a restore asked not to start it; before an in-place rewrite). */
export function stopServer(d: RestoreDeps, id: string, clock?: WaitClock): Promise<void> {
  return powerServer(d, id, 'os-stop', 'SHUTOFF', clock);
}

/** Starts a server and waits until it is ACTIVE. */
export function startServer(d: RestoreDeps, id: string, clock?: WaitClock): Promise<void> {
  return powerServer(d, id, 'os-start', 'ACTIVE', clock);
}

/** Asks of one power action at most, counting the first (each later one after Nova reverted the last). */
const POWER_TRIES = 3;

/**
 * Asks a power action and waits until the server is `want`. Nova sets the action's task before
 * it answers 202, and reverts it when the compute host fails it (seen on the loopback stack:
 * "database is locked" mid power-on, the server left SHUTOFF with no task): a server with no
 * task that is not `want` is asked again, POWER_TRIES times at most. ERROR fails at once.
 */
async function powerServer(d: RestoreDeps, id: string, action: 'os-start' | 'os-stop', want: 'ACTIVE' | 'SHUTOFF', clock: WaitClock = realWaitClock): Promise<void> {
  const what = `Nova server ${id} to ${action === 'os-start' ? 'start' : 'stop'}`;
  for (let attempt = 1; ; attempt++) {
    await serverAction(d, id, action);
    const settled = (v: NovaServer) => v.status === want || !v['OS-EXT-STS:task_state'];
    const v = (await waitUntil(what, () => d.tenantApi.getServer(id), settled, { timeoutMs: STEP_TIMEOUT_MS, clock }))!;
    if (v.status === want) return;
    if (v.status === 'ERROR') throw new Error(`${what} failed: ERROR`);
    if (attempt >= POWER_TRIES) throw new Error(`${what}: Nova left it ${v.status} ${POWER_TRIES} times`);
    d.log.warn({ server: id, action, status: v.status, attempt }, 'Nova reverted a power action of a restored server: asking again');
  }
}

/**
 * Published: the server, volumes, flavors and security groups lose the pending mark, so no
 * crash cleanup ever touches them. The server's mark goes first: that is the commit point. A
 * crash after it leaves marked things the published server uses (its volumes attached, its
 * groups on its ports, its flavor): the crash cleanup unmarks those instead of removing them.
 */
export async function unmark(d: RestoreDeps, serverId: string, volumeIds: string[], made: Made, tag: RestoreTag): Promise<void> {
  await d.tenant.call('compute', 'DELETE', `/servers/${serverId}/metadata/${PENDING_KEY}`, { expect: [204, 404] });
  for (const v of volumeIds) await unmarkVolume(d.tenant, v);
  for (const id of made.groups) await unmarkGroup(d.tenant, id, tag);
  for (const id of made.flavors) await unmarkFlavor(d.service.session, id, tag);
}

export async function unmarkVolume(session: OpenStackSession, id: string): Promise<void> {
  await session.call('volumev3', 'DELETE', `/volumes/${id}/metadata/${PENDING_KEY}`, { expect: [200, 204, 404] });
}

export async function unmarkGroup(session: OpenStackSession, id: string, tag: RestoreTag): Promise<void> {
  await session.call('network', 'PUT', `/security-groups/${id}`, { json: { security_group: { description: publishedDescription(tag) } }, expect: [200, 404] });
}

/** Flavor descriptions are changed with the service identity (flavors are the cloud's; compute 2.55+). */
export async function unmarkFlavor(session: OpenStackSession, id: string, tag: RestoreTag): Promise<void> {
  await session.call('compute', 'PUT', `/flavors/${id}`, { json: { flavor: { description: publishedDescription(tag) } }, expect: [200, 404] });
}
