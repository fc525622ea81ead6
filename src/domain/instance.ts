/**
 * A VM as the platform describes it. Shapes follow Nova/Neutron/Cinder closely enough that the
 * OpenStack platform can fill them from real APIs later.
 */
export interface Flavor {
  vcpus: number;
  ram: number; // MiB
  disk: number; // GiB
  ephemeral: number; // GiB
  /** OpenStack: the flavor's name when the server was built, swap (MiB) and extra specs. */
  name?: string;
  swap?: number;
  extra_specs?: Record<string, string>;
}

/** OpenStack: a Neutron security-group rule as a restore recreates it. */
export interface SecurityGroupRule {
  direction: string;
  ethertype: string;
  protocol: string | null;
  port_range_min: number | null;
  port_range_max: number | null;
  remote_ip_prefix: string | null;
}

/** OpenStack: a security group of the instance's ports, with its rules. */
export interface SecurityGroup {
  id: string;
  name: string;
  rules: SecurityGroupRule[];
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
  /** OpenStack: the image's own properties (hw_*, os_*...), given again to a restored root image. */
  image_properties?: Record<string, string>;
  /** OpenStack: the volume's availability zone. */
  availability_zone?: string;
  /** The cloud encrypts this disk's data (OpenStack: a volume of an encrypted volume type, LUKS). */
  encrypted?: boolean;
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
  /** OpenStack: the server's key pair (null: none). */
  key_name?: string | null;
  /** OpenStack: the device of the disk the server boots from (Nova's `root_device_name`). */
  root_device?: string;
  /** OpenStack: the security groups of its ports with their rules (`security_groups` are the names). */
  security_group_details?: SecurityGroup[];
}
