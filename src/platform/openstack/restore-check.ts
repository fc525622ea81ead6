import type { RestorePlan } from '../../domain/restore.js';
import type { Snapshot } from '../../domain/snapshot.js';
import { ValidationError } from '../../lib/errors.js';
import type { OpenStackApi } from '../../openstack/api.js';

/**
 * What only the cloud can judge before a restore is accepted (400, nothing changed): every
 * network a new server would be plugged into exists and is the project's or shared, and a
 * mapped subnet belongs to its target network. A one-click restore whose original network was
 * deleted is refused naming it and how to map it (a selective restore with networks_mapping).
 * Each new server's availability zone (`zone` or `zone:host`) is one of Nova's; each new
 * volume's zone and type (the ones asked for, else the original volume's) are Cinder's, the
 * type one the project may use. A one-click restore names the original it cannot reuse and the
 * selective option that maps it.
 */
export async function checkOpenStackRestore(api: OpenStackApi, projectId: string, plan: RestorePlan, snapshot: Snapshot): Promise<void> {
  if (plan.kind === 'inplace') return;
  await checkZonesAndTypes(api, projectId, plan, snapshot);
  for (const p of plan.instances) {
    const si = snapshot.instances.find((i) => i.id === p.id);
    for (const nic of si?.nics ?? []) {
      const mapped = p.networkMap[nic.network.id];
      if (mapped) {
        if (!(await usableNetwork(api, projectId, mapped.id))) throw new ValidationError(`Invalid networks_mapping: target network ${mapped.id} does not exist in project ${projectId} and is not shared`);
        if (mapped.subnet) {
          const sub = await api.getSubnet(mapped.subnet.id);
          if (!sub || sub.network_id !== mapped.id) throw new ValidationError(`Invalid networks_mapping: subnet ${mapped.subnet.id} is not a subnet of target network ${mapped.id}`);
        }
        continue;
      }
      const label = `${nic.network.name || nic.network.id} (${nic.network.id}) of instance ${si!.name}`;
      const how = `restore selectively with networks_mapping {"networks": [{"snapshot_network": {"id": "${nic.network.id}"}, "target_network": {"id": "<network id>", "subnet": {"id": "<subnet id>"}}}]}`;
      if (!(await usableNetwork(api, projectId, nic.network.id))) throw new ValidationError(`Network ${label} no longer exists; ${how}`);
      if (nic.network.subnet && !(await api.getSubnet(nic.network.subnet.id))) throw new ValidationError(`Subnet ${nic.network.subnet.name || nic.network.subnet.id} (${nic.network.subnet.id}) of network ${label} no longer exists; ${how}`);
    }
  }
}

/** A new volume's zone or type: asked for in the plan, or inherited from the original volume. */
interface VolumeChoice {
  value: string;
  asked: boolean;
  /** The disk, for the message about an inherited value. */
  disk: string;
  instance: string;
}

/** Zones and types of the new volumes (Cinder volumes only; image-backed roots become images). */
function volumeChoices(plan: RestorePlan, snapshot: Snapshot): { zones: VolumeChoice[]; types: VolumeChoice[] } {
  const zones: VolumeChoice[] = [];
  const types: VolumeChoice[] = [];
  for (const p of plan.instances) {
    const si = snapshot.instances.find((i) => i.id === p.id);
    for (const v of si?.vdisks ?? []) {
      if (v.volume_id === undefined || !p.devices.includes(v.volume_mountpoint)) continue;
      const at = { disk: `${v.volume_name || v.volume_id} (${v.volume_id}, ${v.volume_mountpoint})`, instance: si!.name };
      const zone = p.volumeZones?.[v.volume_mountpoint];
      if (zone !== undefined) zones.push({ value: zone, asked: true, ...at });
      else if (v.availability_zone) zones.push({ value: v.availability_zone, asked: false, ...at });
      const type = p.volumeTypes?.[v.volume_mountpoint];
      if (type !== undefined) types.push({ value: type, asked: true, ...at });
      else if (v.volume_type) types.push({ value: v.volume_type, asked: false, ...at });
    }
  }
  return { zones, types };
}

async function checkZonesAndTypes(api: OpenStackApi, projectId: string, plan: RestorePlan, snapshot: Snapshot): Promise<void> {
  const zones = await api.computeZones();
  for (const p of plan.instances) {
    const zone = p.availability_zone.split(':')[0]!;
    if (zone === '' || zones.includes(zone)) continue;
    if (plan.kind === 'selective') throw new ValidationError(`Invalid availability_zone ${JSON.stringify(p.availability_zone)} for instance ${p.id}: Nova's availability zones are ${zones.join(', ')}`);
    throw new ValidationError(`Availability zone ${JSON.stringify(p.availability_zone)} of instance ${p.name} (${p.id}) no longer exists (Nova's are ${zones.join(', ')}); restore selectively with the instance's availability_zone`);
  }
  const { zones: volumeZones, types: volumeTypes } = volumeChoices(plan, snapshot);
  const cinderZones = volumeZones.length > 0 ? await api.volumeZones() : [];
  for (const z of volumeZones) {
    if (cinderZones.includes(z.value)) continue;
    if (z.asked) throw new ValidationError(`Invalid vdisks availability_zone ${JSON.stringify(z.value)}: Cinder's availability zones are ${cinderZones.join(', ')}`);
    throw new ValidationError(`Availability zone ${JSON.stringify(z.value)} of volume ${z.disk} of instance ${z.instance} no longer exists in Cinder (its zones are ${cinderZones.join(', ')}); restore selectively with the disk's vdisks availability_zone`);
  }
  if (volumeTypes.length === 0) return;
  const types = await api.volumeTypes();
  for (const c of volumeTypes) {
    const t = types.find((x) => x.name === c.value || x.id === c.value);
    if (t && (t.is_public || (await api.volumeTypeProjects(t.id)).includes(projectId))) continue;
    if (c.asked) throw new ValidationError(`Invalid new_volume_type ${JSON.stringify(c.value)}: not a volume type of project ${projectId}`);
    throw new ValidationError(`Volume type ${JSON.stringify(c.value)} of volume ${c.disk} of instance ${c.instance} is no longer a volume type of project ${projectId}; restore selectively with the disk's vdisks new_volume_type`);
  }
}

async function usableNetwork(api: OpenStackApi, projectId: string, id: string): Promise<boolean> {
  const net = await api.getNetwork(id);
  return !!net && (net.project_id === projectId || net.shared === true);
}
