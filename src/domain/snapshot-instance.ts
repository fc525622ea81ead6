import type { Flavor, Instance } from './instance.js';
import type { SnapshotInstance, SnapshotVdisk } from './snapshot.js';

/**
 * The snapshot-time description of a VM, in the GUIDE's wire shape (flavor values as strings,
 * singular `security_group`, nics with network+subnet, vdisks with volume_* or image keys).
 * `diskSizes` maps device → virtual size in bytes; `resourceIds` device → stable vdisk id.
 */
export function snapshotInstanceView(
  inst: Instance,
  workload: { id: string; name: string },
  diskSizes: Map<string, number>,
  resourceIds: Map<string, string>,
): SnapshotInstance {
  const ips = inst.nics.map((n) => n.ip_address).join(',');
  // power_state: the platform's status at snapshot time (a restore starts the copy of a running VM);
  // root_device_name: the disk it boots from (a restore boots the copy from the same one).
  const vmMeta = {
    workload_name: workload.name,
    workload_id: workload.id,
    trilio_ordered_interfaces: ips,
    config_drive: '',
    power_state: inst.status,
    ...(inst.key_name ? { key_name: inst.key_name } : {}),
    ...(inst.root_device ? { root_device_name: inst.root_device } : {}),
  };
  const vdisks: SnapshotVdisk[] = inst.disks.map((d) => {
    const size = diskSizes.get(d.device) ?? 0;
    const v: SnapshotVdisk = {
      label: null,
      resource_id: resourceIds.get(d.device) ?? '',
      restore_size: size,
      vm_id: inst.id,
      volume_mountpoint: d.device,
      availability_zone: inst.availability_zone,
      metadata: { readonly: 'False', attached_mode: 'rw' },
    };
    if (d.volume_id) {
      v.volume_id = d.volume_id;
      v.volume_name = d.volume_name || d.volume_id;
      v.volume_size = String(d.volume_size ?? Math.max(1, Math.ceil(size / 2 ** 30)));
      v.volume_type = d.volume_type ?? 'local';
      if (d.availability_zone) v.availability_zone = d.availability_zone;
    } else {
      v.image_id = d.image_id ?? '';
      v.image_name = d.image_name ?? '';
      v.hw_qemu_guest_agent = d.image_properties?.hw_qemu_guest_agent ?? 'no';
      if (d.image_properties) v.image_properties = { ...d.image_properties };
    }
    return v;
  });
  return {
    id: inst.id,
    name: inst.name,
    status: 'available',
    metadata: {
      availability_zone: inst.availability_zone,
      config_drive: '',
      data_transfer_time: '0',
      object_store_transfer_time: '0',
      root_partition_type: 'Linux',
      trilio_ordered_interfaces: ips,
      vm_metadata: JSON.stringify(vmMeta),
      workload_id: workload.id,
      workload_name: workload.name,
    },
    flavor: flavorView(inst.flavor),
    security_group: inst.security_groups.map((name) => {
      const g = inst.security_group_details?.find((x) => x.name === name);
      return { name, security_group_type: 'neutron', ...(g ? { id: g.id, rules: g.rules } : {}) };
    }),
    nics: inst.nics.map((n) => ({
      mac_address: n.mac_address,
      ip_address: n.ip_address,
      network: {
        id: n.network.id,
        name: n.network.name,
        cidr: null,
        network_type: 'neutron',
        ...(n.network.subnet ? { subnet: { ...n.network.subnet } } : {}),
      },
    })),
    vdisks,
  };
}

function flavorView(f: Flavor): SnapshotInstance['flavor'] {
  return {
    vcpus: String(f.vcpus),
    ram: String(f.ram),
    disk: String(f.disk),
    ephemeral: String(f.ephemeral),
    ...(f.name !== undefined ? { name: f.name } : {}),
    ...(f.swap !== undefined ? { swap: String(f.swap) } : {}),
    ...(f.extra_specs !== undefined ? { extra_specs: { ...f.extra_specs } } : {}),
  };
}
