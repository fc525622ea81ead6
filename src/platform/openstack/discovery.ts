import type { Disk, Instance, Nic, SecurityGroup } from '../../domain/instance.js';
import type { OpenStackApi } from '../../openstack/api.js';
import type { GlanceImage, NeutronNetwork, NeutronPort, NeutronSubnet, NovaServer } from '../../openstack/types.js';

/**
 * Nova server → Lifeboat Instance, with everything a snapshot records and a restore needs:
 * flavor (as the server was built: 2.47+ embeds it, with name, swap and extra specs), key pair
 * name, security groups of its ports with their rules, NICs with network and subnet, and every
 * disk (an image's own properties; a volume's availability zone) — the image-backed root disk of an image-booted server (device from
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
  // The disks (image, volumes) do not depend on the ports: asked at the same time (every
  // snapshot describes its servers; each round trip is on its critical path).
  const disking = serverDisks(l, s);
  disking.catch(() => undefined); // awaited below; a ports failure must not leave it unhandled
  const ports = inNicOrder(await l.api.serverPorts(s.id), s);
  const [nics, groups, disks] = await Promise.all([serverNics(l, ports), securityGroups(l, ports), disking]);
  const f = s.flavor;
  return {
    id: s.id,
    name: s.name,
    project_id: s.tenant_id,
    status: s.status,
    availability_zone: s['OS-EXT-AZ:availability_zone'] ?? '',
    flavor: { vcpus: f.vcpus, ram: f.ram, disk: f.disk, ephemeral: f.ephemeral, name: f.original_name, swap: f.swap, extra_specs: { ...f.extra_specs } },
    security_groups: [...new Set((s.security_groups ?? []).map((g) => g.name))],
    security_group_details: groups,
    key_name: s.key_name ?? null,
    ...(s['OS-EXT-SRV-ATTR:root_device_name'] ? { root_device: s['OS-EXT-SRV-ATTR:root_device_name'] } : {}),
    nics,
    disks,
    metadata: { ...s.metadata },
  };
}

/**
 * The server's ports in its NIC order (eth0 first), which a restore keeps: Neutron lists a
 * device's ports in no defined order, while Nova's `addresses` follows the server's network
 * info (VIF order), each address with its port's MAC. Grouped per network, so only NICs on
 * one network interleaved with another's can lose their relative order; a port Nova does not
 * show yet goes last.
 */
export function inNicOrder<P extends { mac_address: string }>(ports: P[], s: Pick<NovaServer, 'addresses'>): P[] {
  const macs = Object.values(s.addresses ?? {}).flatMap((list) => list.map((a) => a['OS-EXT-IPS-MAC:mac_addr']));
  const rank = (p: P) => {
    const i = macs.indexOf(p.mac_address);
    return i < 0 ? macs.length : i;
  };
  return [...ports].sort((a, b) => rank(a) - rank(b));
}

async function serverNics(l: Lookups, ports: NeutronPort[]): Promise<Nic[]> {
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

/** The groups of the server's ports (ids, names, rules): what a restore gives its new ports. */
async function securityGroups(l: Lookups, ports: NeutronPort[]): Promise<SecurityGroup[]> {
  const ids = [...new Set(ports.flatMap((p) => p.security_groups ?? []))];
  const found = await Promise.all(ids.map((id) => l.api.getSecurityGroup(id)));
  return found
    .filter((g) => g !== null)
    .map((g) => ({
      id: g.id,
      name: g.name,
      rules: (g.security_group_rules ?? []).map((r) => ({ direction: r.direction, ethertype: r.ethertype, protocol: r.protocol, port_range_min: r.port_range_min, port_range_max: r.port_range_max, remote_ip_prefix: r.remote_ip_prefix })),
    }));
}

/** Glance's own fields of an image; every other string is one of the image's properties. */
const GLANCE_FIELDS = new Set(['id', 'name', 'status', 'visibility', 'protected', 'checksum', 'owner', 'size', 'virtual_size', 'min_ram', 'min_disk', 'created_at', 'updated_at', 'tags', 'file', 'self', 'schema', 'disk_format', 'container_format', 'os_hash_algo', 'os_hash_value', 'os_hidden', 'direct_url', 'locations', 'stores']);

function imageProperties(image: GlanceImage | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(image ?? {})) if (!GLANCE_FIELDS.has(k) && typeof v === 'string') out[k] = v;
  return out;
}

async function serverDisks(l: Lookups, s: NovaServer): Promise<Disk[]> {
  const disks: Disk[] = [];
  if (s.image && s.image.id) {
    const image = await l.api.getImage(s.image.id);
    disks.push({ device: s['OS-EXT-SRV-ATTR:root_device_name'] ?? '/dev/vda', format: 'raw', image_id: s.image.id, image_name: image?.name ?? '', image_properties: imageProperties(image) });
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
      availability_zone: v.availability_zone,
      ...(v.encrypted === true ? { encrypted: true } : {}),
      ...(v.volume_image_metadata?.image_id ? { image_id: v.volume_image_metadata.image_id, image_name: v.volume_image_metadata.image_name ?? '' } : {}),
    });
  }
  return disks.sort((a, b) => a.device.localeCompare(b.device));
}
