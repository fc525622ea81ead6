import { ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import type { RestoreKind } from '../domain/restore.js';
import { parseBool } from '../domain/jobschedule.js';
import type { CreateRestoreCommand, NetworkMappingRequest, RestoreInstanceRequest, RestoreRequest } from '../services/restore.service.js';
import { optionalText, requireObject, textOrDefault } from './fields.js';
import { unwrap } from './query.js';

const KINDS: readonly RestoreKind[] = ['oneclick', 'selective', 'inplace'];
const BAD_KIND = 'Invalid restore options: restore_type must be oneclick, selective or inplace';

function restoreKind(options: Record<string, unknown>): RestoreKind {
  const rt = options.restore_type;
  if (rt !== undefined && rt !== null && rt !== '') {
    if (typeof rt !== 'string' || !KINDS.includes(rt as RestoreKind)) throw new ValidationError(BAD_KIND);
    return rt as RestoreKind;
  }
  if (options.oneclickrestore !== undefined && parseBool(options.oneclickrestore, 'oneclickrestore')) return 'oneclick';
  throw new ValidationError(BAD_KIND);
}

/** A libvirt host's network ids as the libvirt platform reports them (platform/libvirt README). */
const PLATFORM_NETWORK_RE = /^(network|bridge):[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

/** `networks_mapping.networks`: snapshot network id → target network (and subnet). */
function networkMappings(v: unknown): NetworkMappingRequest[] {
  const nm = v === undefined || v === null ? {} : requireObject(v, 'networks_mapping');
  const nets = nm.networks ?? [];
  if (!Array.isArray(nets)) throw new ValidationError('Invalid restore options: networks_mapping.networks must be a list');
  return nets.map((m): NetworkMappingRequest => {
    const o = requireObject(m, 'networks_mapping item');
    const from = requireObject(o.snapshot_network, 'snapshot_network');
    const to = requireObject(o.target_network, 'target_network');
    if (typeof from.id !== 'string') throw new ValidationError(`Invalid restore options: network ${JSON.stringify(from.id)} is not in the snapshot`);
    if (!isUuid(to.id) && !(typeof to.id === 'string' && PLATFORM_NETWORK_RE.test(to.id))) {
      throw new ValidationError(`Invalid restore options: target network id ${JSON.stringify(to.id)} is not a UUID (or a libvirt network:<name> / bridge:<name>)`);
    }
    const sub = to.subnet === undefined ? undefined : requireObject(to.subnet, 'target_network.subnet');
    if (sub && !isUuid(sub.id)) throw new ValidationError(`Invalid restore options: target subnet id ${JSON.stringify(sub.id)} is not a UUID`);
    const name = typeof to.name === 'string' ? to.name : to.id;
    return { snapshotNetworkId: from.id, target: { id: to.id, name, ...(sub ? { subnet: { id: String(sub.id) } } : {}) } };
  });
}

/** A `vdisks` item `{"id": ..., "new_volume_type"?: ..., "availability_zone"?: ...}`: a volume id, resource id or mount point of the instance. */
function diskRequest(v: unknown, instanceId: string): { id: string; volumeType?: string; zone?: string } {
  const o = requireObject(v, 'vdisks item');
  if (typeof o.id !== 'string') throw new ValidationError(`Invalid restore options: disk ${JSON.stringify(o.id)} is not a disk of instance ${instanceId} in the snapshot`);
  const volumeType = optionalText(o.new_volume_type, 'new_volume_type');
  const zone = optionalText(o.availability_zone, 'vdisks availability_zone');
  return { id: o.id, ...(volumeType ? { volumeType } : {}), ...(zone ? { zone } : {}) };
}

/** Lifeboat's `power_on` (not in the vendor's API; unknown keys are ignored there): absent or null = the default. */
function powerOn(v: unknown): { powerOn?: boolean } {
  return v === undefined || v === null ? {} : { powerOn: parseBool(v, 'power_on') };
}

/** One item of `openstack.instances`: which instance, whether included, which disks, new name and zone. */
function instanceRequest(item: unknown, seen: Set<string>): RestoreInstanceRequest {
  const o = requireObject(item, 'openstack.instances item');
  if (typeof o.id !== 'string' || o.id.trim() === '') throw new ValidationError('Invalid restore options: every openstack.instances item needs an "id"');
  const id = o.id.toLowerCase();
  if (seen.has(id)) throw new ValidationError(`Invalid restore options: instance ${id} is listed twice`);
  seen.add(id);
  const vd = o.vdisks ?? [];
  if (!Array.isArray(vd)) throw new ValidationError(`Invalid restore options: vdisks of instance ${id} must be a list`);
  const name = optionalText(o.name, 'instance name');
  const availabilityZone = optionalText(o.availability_zone, 'availability_zone');
  const disks = vd.map((v) => diskRequest(v, id));
  const volumeTypes = Object.fromEntries(disks.filter((d) => d.volumeType !== undefined).map((d) => [d.id, d.volumeType!]));
  const volumeZones = Object.fromEntries(disks.filter((d) => d.zone !== undefined).map((d) => [d.id, d.zone!]));
  return {
    id,
    include: o.include === undefined ? true : parseBool(o.include, 'include'),
    diskIds: disks.map((d) => d.id),
    ...(name !== undefined && name.trim() !== '' ? { name } : {}),
    ...(availabilityZone ? { availabilityZone } : {}),
    ...(Object.keys(volumeTypes).length > 0 ? { volumeTypes } : {}),
    ...(Object.keys(volumeZones).length > 0 ? { volumeZones } : {}),
    ...powerOn(o.power_on),
  };
}

/**
 * The posted `options` (one-click, selective or in-place, exactly as tempest sends them;
 * unknown keys ignored) → a request checked for shape; the service checks it against the
 * snapshot (every named instance and disk must be in it).
 */
export function parseRestoreOptions(options: Record<string, unknown>): RestoreRequest {
  if (options.type !== 'openstack') throw new ValidationError('Invalid restore options: type must be "openstack"');
  const os = options.openstack === undefined ? {} : requireObject(options.openstack, 'restore options.openstack');
  const kind = restoreKind(options);
  const power = powerOn(options.power_on);
  if (kind === 'oneclick') return { kind, instances: [], networks: [], ...power };
  if (!Array.isArray(os.instances)) throw new ValidationError(`Invalid restore options: openstack.instances must list the instances for a ${kind} restore`);
  const networks = networkMappings(os.networks_mapping);
  const seen = new Set<string>();
  return { kind, instances: os.instances.map((i) => instanceRequest(i, seen)), networks, ...power };
}

/** `{"restore": {...}}` of POST .../restores → the create command (workloadmgr-api §4.3.1). */
export function parseCreateRestore(body: unknown): CreateRestoreCommand {
  const b = unwrap(body, 'restore');
  const options = b.options === undefined ? { type: 'openstack' } : requireObject(b.options, 'restore options');
  const request = parseRestoreOptions(options);
  return {
    name: textOrDefault(b.name, 'name', textOrDefault(options.name, 'options.name', 'restore')),
    description: textOrDefault(b.description, 'description', textOrDefault(options.description, 'options.description', 'no-description')),
    options,
    request,
  };
}
