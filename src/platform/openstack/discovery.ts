import type { Disk, Instance, Nic } from '../../domain/instance.js';
import type { OpenStackApi } from '../../openstack/api.js';
import type { NeutronNetwork, NeutronSubnet, NovaServer } from '../../openstack/types.js';

/**
 * Nova server → Lifeboat Instance, with everything a snapshot records and a restore needs:
 * flavor (as the server was built: 2.47+ embeds it), security groups, NICs with network and
 * subnet, and every disk — the image-backed root disk of an image-booted server (device from
 * `root_device_name`) and each attached Cinder volume (device from its attachment).
 */

/** Statuses of a server Lifeboat can protect (back up now or on schedule). */
const PROTECTABLE = new Set(['ACTIVE', 'SHUTOFF', 'PAUSED', 'SUSPENDED']);

/** Why a server cannot be protected, or null when it can. */
export function unprotectableReason(inst: Instance): string | null {
  return PROTECTABLE.has(inst.status) ? null : `instance ${inst.name} (${inst.id}) is ${inst.status}; only ACTIVE, SHUTOFF, PAUSED or SUSPENDED servers can be protected`;
}

/** Caches one discovery's lookups of shared networks/subnets. */
class Lookups {
  private readonly networks = new Map<string, Promise<NeutronNetwork | null>>();
  private readonly subnets = new Map<string, Promise<NeutronSubnet | null>>();
  constructor(readonly api: OpenStackApi) {}
  network(id: string): Promise<NeutronNetwork | null> {
    let p = this.networks.get(id);
    if (!p) this.networks.set(id, (p = this.api.getNetwork(id)));
    return p;
  }
  subnet(id: string): Promise<NeutronSubnet | null> {
    let p = this.subnets.get(id);
    if (!p) this.subnets.set(id, (p = this.api.getSubnet(id)));
    return p;
  }
}

export async function describeServers(api: OpenStackApi, servers: NovaServer[]): Promise<Instance[]> {
  const lookups = new Lookups(api);
  return Promise.all(servers.map((s) => describeServer(lookups, s)));
}

async function describeServer(l: Lookups, s: NovaServer): Promise<Instance> {
  const [nics, disks] = await Promise.all([serverNics(l, s.id), serverDisks(l, s)]);
  return {
    id: s.id,
    name: s.name,
    project_id: s.tenant_id,
    status: s.status,
    availability_zone: s['OS-EXT-AZ:availability_zone'] ?? '',
    flavor: { vcpus: s.flavor.vcpus, ram: s.flavor.ram, disk: s.flavor.disk, ephemeral: s.flavor.ephemeral },
    security_groups: [...new Set((s.security_groups ?? []).map((g) => g.name))],
    nics,
    disks,
    metadata: { ...s.metadata },
  };
}

async function serverNics(l: Lookups, serverId: string): Promise<Nic[]> {
  const ports = await l.api.serverPorts(serverId);
  const nics: Nic[] = [];
  for (const port of ports) {
    const net = await l.network(port.network_id);
    const ip = port.fixed_ips[0];
    const sub = ip ? await l.subnet(ip.subnet_id) : null;
    nics.push({
      mac_address: port.mac_address,
      ip_address: ip?.ip_address ?? '',
      network: {
        id: port.network_id,
        name: net?.name ?? '',
        ...(sub ? { subnet: { id: sub.id, name: sub.name, cidr: sub.cidr, ip_version: sub.ip_version, gateway_ip: sub.gateway_ip } } : {}),
      },
    });
  }
  return nics;
}

async function serverDisks(l: Lookups, s: NovaServer): Promise<Disk[]> {
  const disks: Disk[] = [];
  if (s.image && s.image.id) {
    const image = await l.api.getImage(s.image.id);
    disks.push({ device: s['OS-EXT-SRV-ATTR:root_device_name'] ?? '/dev/vda', format: 'raw', image_id: s.image.id, image_name: image?.name ?? '' });
  }
  const attached = s['os-extended-volumes:volumes_attached'] ?? [];
  const volumes = await Promise.all(attached.map((a) => l.api.getVolume(a.id)));
  for (const v of volumes) {
    if (!v) continue;
    const att = v.attachments.find((a) => a.server_id === s.id);
    disks.push({
      device: att?.device ?? '',
      format: 'raw',
      volume_id: v.id,
      volume_type: v.volume_type ?? '',
      volume_name: v.name ?? '',
      volume_size: v.size,
      bootable: v.bootable === 'true',
      ...(v.volume_image_metadata?.image_id ? { image_id: v.volume_image_metadata.image_id, image_name: v.volume_image_metadata.image_name ?? '' } : {}),
    });
  }
  return disks.sort((a, b) => a.device.localeCompare(b.device));
}
