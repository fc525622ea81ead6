/**
 * The parts of Nova, Cinder, Neutron and Glance resources Lifeboat reads (pinned
 * microversions: compute 2.79, volume 3.60). Fields admins alone see are optional.
 */

export interface NovaServer {
  id: string;
  name: string;
  status: string;
  tenant_id: string;
  user_id: string;
  key_name: string | null;
  metadata: Record<string, string>;
  /** 2.47+: the flavor as the server was built with it (id only via original_name lookup). */
  flavor: { original_name: string; vcpus: number; ram: number; disk: number; ephemeral: number; swap: number; extra_specs?: Record<string, string> };
  /** '' for a boot-from-volume server. */
  image: { id: string } | '';
  security_groups?: { name: string }[];
  'OS-EXT-AZ:availability_zone'?: string;
  'OS-EXT-SRV-ATTR:host'?: string | null;
  'OS-EXT-SRV-ATTR:instance_name'?: string | null;
  'OS-EXT-SRV-ATTR:root_device_name'?: string | null;
  'OS-EXT-STS:task_state'?: string | null;
  /** Why the server is in ERROR (Nova shows it then). */
  fault?: { message?: string };
  'os-extended-volumes:volumes_attached'?: { id: string; delete_on_termination?: boolean }[];
  /** Network label → its addresses, in the server's NIC (VIF) order, each with its port's MAC. */
  addresses?: Record<string, { 'OS-EXT-IPS-MAC:mac_addr'?: string }[]>;
}

export interface NovaFlavor {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
  'OS-FLV-EXT-DATA:ephemeral'?: number;
  swap: number | '';
  extra_specs?: Record<string, string>;
  /** compute 2.55+ */
  description?: string | null;
}

export interface CinderVolumeType {
  id: string;
  name: string;
  is_public: boolean;
}

export interface CinderVolume {
  id: string;
  name: string | null;
  size: number;
  status: string;
  volume_type: string | null;
  bootable: string;
  availability_zone: string;
  attachments: { server_id: string; device: string; attachment_id: string }[];
  volume_image_metadata?: Record<string, string>;
  metadata?: Record<string, string>;
  /** Its volume type has an encryption spec (Cinder's volume detail). */
  encrypted?: boolean;
}

export interface NeutronPort {
  id: string;
  network_id: string;
  mac_address: string;
  fixed_ips: { subnet_id: string; ip_address: string }[];
  security_groups: string[];
  device_id: string;
  name: string;
}

export interface NeutronNetwork {
  id: string;
  name: string;
  project_id: string;
  subnets?: string[];
  shared?: boolean;
  'router:external'?: boolean;
  /** ACTIVE, DOWN, BUILD or ERROR. */
  status?: string;
}

export interface NeutronSubnet {
  id: string;
  name: string;
  network_id: string;
  cidr: string;
  ip_version: number;
  gateway_ip: string | null;
}

export interface NeutronSecurityGroup {
  id: string;
  name: string;
  description?: string;
  project_id: string;
  security_group_rules: { direction: string; ethertype: string; protocol: string | null; port_range_min: number | null; port_range_max: number | null; remote_ip_prefix: string | null; remote_group_id: string | null }[];
}

export interface GlanceImage {
  id: string;
  name: string | null;
  status: string;
  disk_format?: string;
  size?: number | null;
  [property: string]: unknown;
}

export interface CinderSnapshot {
  id: string;
  name: string | null;
  status: string;
  size: number;
  volume_id: string;
}
