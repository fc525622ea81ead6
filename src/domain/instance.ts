/**
 * A VM as the platform describes it. Shapes follow Nova/Neutron/Cinder closely enough that the
 * OpenStack platform can fill them from real APIs later.
 */
export interface Flavor {
  vcpus: number;
  ram: number; // MiB
  disk: number; // GiB
  ephemeral: number; // GiB
}

export interface Subnet {
  id: string;
  name: string;
  cidr: string;
  ip_version: number;
  gateway_ip: string | null;
}

export interface Network {
  id: string;
  name: string;
  subnet?: Subnet;
}

export interface Nic {
  mac_address: string;
  ip_address: string;
  network: Network;
}

export interface Disk {
  /** Guest device, e.g. /dev/vda. Unique within an instance: it names the disk in restores. */
  device: string;
  format: string; // raw
  /** Present for volume-backed disks. */
  volume_id?: string;
  volume_type?: string;
  /** Volume-backed disks on OpenStack: the Cinder volume's name, size (GiB) and bootable flag. */
  volume_name?: string;
  volume_size?: number;
  bootable?: boolean;
  /** Present for image-backed disks. */
  image_id?: string;
  image_name?: string;
}

export interface Instance {
  id: string;
  name: string;
  project_id: string;
  status: string;
  availability_zone: string;
  flavor: Flavor;
  security_groups: string[];
  nics: Nic[];
  disks: Disk[];
  metadata: Record<string, string>;
}
