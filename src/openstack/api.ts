import { OpenStackError } from './errors.js';
import type { OpenStackSession } from './session.js';
import type { CinderSnapshot, CinderVolume, CinderVolumeType, GlanceImage, NeutronNetwork, NeutronPort, NeutronSecurityGroup, NeutronSubnet, NovaFlavor, NovaServer } from './types.js';
import { retryPause } from './wait.js';

/**
 * Typed reads of the resources discovery needs. `null` = 404 (missing, or invisible to the
 * session's identity); every other failure throws OpenStackError.
 */
export class OpenStackApi {
  constructor(readonly session: OpenStackSession) {}

  /** The servers of one project (the service identity is admin: all_tenants + project_id). */
  async listServers(projectId: string): Promise<NovaServer[]> {
    const q = new URLSearchParams({ all_tenants: '1', project_id: projectId });
    const r = await this.session.call<{ servers: NovaServer[] }>('compute', 'GET', `/servers/detail?${q}`);
    return r.data.servers;
  }

  async getServer(id: string): Promise<NovaServer | null> {
    return orNull(this.session.call<{ server: NovaServer }>('compute', 'GET', `/servers/${encodeURIComponent(id)}`).then((r) => r.data.server));
  }

  async findFlavorByName(name: string): Promise<NovaFlavor | null> {
    const r = await this.session.call<{ flavors: NovaFlavor[] }>('compute', 'GET', '/flavors/detail?is_public=None');
    return r.data.flavors.find((f) => f.name === name) ?? null;
  }

  async getVolume(id: string): Promise<CinderVolume | null> {
    return orNull(this.session.call<{ volume: CinderVolume }>('volumev3', 'GET', `/volumes/${encodeURIComponent(id)}`).then((r) => r.data.volume));
  }

  async serverPorts(serverId: string): Promise<NeutronPort[]> {
    const r = await this.session.call<{ ports: NeutronPort[] }>('network', 'GET', `/ports?device_id=${encodeURIComponent(serverId)}`);
    return r.data.ports;
  }

  async getNetwork(id: string): Promise<NeutronNetwork | null> {
    return orNull(this.session.call<{ network: NeutronNetwork }>('network', 'GET', `/networks/${encodeURIComponent(id)}`).then((r) => r.data.network));
  }

  async getSubnet(id: string): Promise<NeutronSubnet | null> {
    return orNull(this.session.call<{ subnet: NeutronSubnet }>('network', 'GET', `/subnets/${encodeURIComponent(id)}`).then((r) => r.data.subnet));
  }

  async getSecurityGroup(id: string): Promise<NeutronSecurityGroup | null> {
    return orNull(this.session.call<{ security_group: NeutronSecurityGroup }>('network', 'GET', `/security-groups/${encodeURIComponent(id)}`).then((r) => r.data.security_group));
  }

  async projectSecurityGroups(projectId: string): Promise<NeutronSecurityGroup[]> {
    const r = await this.session.call<{ security_groups: NeutronSecurityGroup[] }>('network', 'GET', `/security-groups?project_id=${encodeURIComponent(projectId)}`);
    return r.data.security_groups;
  }

  /** Networks matching a Neutron filter (e.g. `project_id`, `shared`); the admin identity sees all, so the filter is the scope. */
  async listNetworks(filter: Record<string, string>): Promise<NeutronNetwork[]> {
    const r = await this.session.call<{ networks: NeutronNetwork[] }>('network', 'GET', `/networks?${new URLSearchParams(filter)}`);
    return r.data.networks;
  }

  /** The subnets of these networks (Neutron's repeated `network_id` filter, in batches that keep the URL short). */
  async listSubnets(networkIds: readonly string[]): Promise<NeutronSubnet[]> {
    const out: NeutronSubnet[] = [];
    for (let i = 0; i < networkIds.length; i += 40) {
      const q = new URLSearchParams(networkIds.slice(i, i + 40).map((id): [string, string] => ['network_id', id]));
      out.push(...(await this.session.call<{ subnets: NeutronSubnet[] }>('network', 'GET', `/subnets?${q}`)).data.subnets);
    }
    return out;
  }

  /** Names of Nova's availability zones that are available. */
  async computeZones(): Promise<string[]> {
    const r = await this.session.call<{ availabilityZoneInfo: { zoneName: string; zoneState: { available: boolean } }[] }>('compute', 'GET', '/os-availability-zone');
    return r.data.availabilityZoneInfo.filter((z) => z.zoneState.available).map((z) => z.zoneName);
  }

  /** Names of Cinder's availability zones that are available. */
  async volumeZones(): Promise<string[]> {
    const r = await this.session.call<{ availabilityZoneInfo: { zoneName: string; zoneState: { available: boolean } }[] }>('volumev3', 'GET', '/os-availability-zone');
    return r.data.availabilityZoneInfo.filter((z) => z.zoneState.available).map((z) => z.zoneName);
  }

  /** Every Cinder volume type, public and private (the service identity sees all). */
  async volumeTypes(): Promise<CinderVolumeType[]> {
    return (await this.session.call<{ volume_types: CinderVolumeType[] }>('volumev3', 'GET', '/types?is_public=None')).data.volume_types;
  }

  /** The projects a private volume type is shared with. */
  async volumeTypeProjects(typeId: string): Promise<string[]> {
    const r = await this.session.call<{ volume_type_access: { project_id: string }[] }>('volumev3', 'GET', `/types/${encodeURIComponent(typeId)}/os-volume-type-access`);
    return r.data.volume_type_access.map((a) => a.project_id);
  }

  async getImage(id: string): Promise<GlanceImage | null> {
    return orNull(this.session.call<GlanceImage>('image', 'GET', `/images/${encodeURIComponent(id)}`).then((r) => r.data));
  }

  // --- Cinder and Glance calls of the API-only data path (README §7.4) ---

  /** `name` must be unique: a 5xx is retried after checking the snapshot was not made anyway. */
  async createSnapshot(volumeId: string, name: string): Promise<CinderSnapshot> {
    return createNamed(
      async () => (await this.session.call<{ snapshot: CinderSnapshot }>('volumev3', 'POST', '/snapshots', { json: { snapshot: { volume_id: volumeId, force: true, name } } })).data.snapshot,
      async () => (await this.session.call<{ snapshots: CinderSnapshot[] }>('volumev3', 'GET', `/snapshots?name=${encodeURIComponent(name)}`)).data.snapshots[0] ?? null,
    );
  }

  async getSnapshot(id: string): Promise<CinderSnapshot | null> {
    return orNull(this.session.call<{ snapshot: CinderSnapshot }>('volumev3', 'GET', `/snapshots/${encodeURIComponent(id)}`).then((r) => r.data.snapshot));
  }

  /** Admin: sets a snapshot's status in Cinder's database (no change to the snapshot itself). */
  async resetSnapshotStatus(id: string, status: string): Promise<void> {
    await this.session.call('volumev3', 'POST', `/snapshots/${encodeURIComponent(id)}/action`, { json: { 'os-reset_status': { status } }, expect: [202], idempotent: true });
  }

  async deleteSnapshot(id: string): Promise<void> {
    await orNull(this.session.call('volumev3', 'DELETE', `/snapshots/${encodeURIComponent(id)}`));
  }

  /** `body.name` must be unique: a 5xx is retried after checking the volume was not made anyway. */
  async createVolume(body: { size: number; name: string; snapshot_id?: string; imageRef?: string; volume_type?: string; availability_zone?: string; metadata?: Record<string, string> }): Promise<CinderVolume> {
    return createNamed(
      async () => (await this.session.call<{ volume: CinderVolume }>('volumev3', 'POST', '/volumes', { json: { volume: body } })).data.volume,
      async () => (await this.session.call<{ volumes: CinderVolume[] }>('volumev3', 'GET', `/volumes/detail?name=${encodeURIComponent(body.name)}`)).data.volumes[0] ?? null,
    );
  }

  /** Admin: sets a volume's status in Cinder's database (no change to the volume itself). */
  async resetVolumeStatus(id: string, status: string): Promise<void> {
    await this.session.call('volumev3', 'POST', `/volumes/${encodeURIComponent(id)}/action`, { json: { 'os-reset_status': { status } }, expect: [202], idempotent: true });
  }

  async deleteVolume(id: string): Promise<void> {
    await orNull(this.session.call('volumev3', 'DELETE', `/volumes/${encodeURIComponent(id)}`));
  }

  /** os-volume_upload_image of an available volume in `diskFormat` (never `force`: clouds refuse it by default). */
  async uploadVolumeToImage(volumeId: string, imageName: string, diskFormat: 'raw' | 'qcow2' = 'raw'): Promise<string> {
    const r = await this.session.call<{ 'os-volume_upload_image': { image_id: string } }>('volumev3', 'POST', `/volumes/${encodeURIComponent(volumeId)}/action`, {
      json: { 'os-volume_upload_image': { image_name: imageName, disk_format: diskFormat, container_format: 'bare', force: false } },
    });
    return r.data['os-volume_upload_image'].image_id;
  }

  async deleteImage(id: string): Promise<void> {
    await orNull(this.session.call('image', 'DELETE', `/images/${encodeURIComponent(id)}`));
  }

  /**
   * Nova `createImage` of a server's root disk (image-booted servers; attached volumes are not
   * part of it): a Glance image named `name` in the service identity's view, returned by id.
   * A 5xx is retried after looking the name up, so an image made despite the error is adopted.
   */
  async createServerImage(serverId: string, name: string, metadata: Record<string, string>): Promise<string> {
    return createNamed(
      async () => (await this.session.call<{ image_id: string }>('compute', 'POST', `/servers/${encodeURIComponent(serverId)}/action`, { json: { createImage: { name, metadata } } })).data.image_id,
      async () => (await this.session.call<{ images: { id: string }[] }>('image', 'GET', `/images?name=${encodeURIComponent(name)}`)).data.images[0]?.id ?? null,
    );
  }

  /** The hypervisor type (`QEMU`, `fake`, ...) of a compute host; null when Nova knows no hypervisor there. */
  async hypervisorTypeOf(host: string): Promise<string | null> {
    const r = await this.session.call<{ hypervisors: { hypervisor_type?: string; service?: { host?: string } }[] }>('compute', 'GET', '/os-hypervisors/detail');
    return r.data.hypervisors.find((h) => h.service?.host === host)?.hypervisor_type ?? null;
  }

  /** The image's bytes as a stream (the caller consumes or cancels the body). */
  async downloadImage(id: string, timeoutMs: number): Promise<Response> {
    const r = await this.session.call<Response>('image', 'GET', `/images/${encodeURIComponent(id)}/file`, { raw: true, timeoutMs, headers: { accept: 'application/octet-stream' } });
    return r.data;
  }
}

/**
 * A POST that creates a uniquely named resource, safe to repeat: on a 5xx (the loopback
 * stack's SQLite says "database is locked" under load; real clouds have their own transient
 * 500s) the name is looked up first, so a resource made despite the error is adopted, never
 * made twice. Up to 3 attempts.
 */
async function createNamed<T>(create: () => Promise<T>, findByName: () => Promise<T | null>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await create();
    } catch (e) {
      if (!(e instanceof OpenStackError) || e.status < 500 || attempt >= 3) throw e;
      const made = await findByName();
      if (made) return made;
      await retryPause(attempt);
    }
  }
}

/** A 404 as null; anything else rethrown. */
export async function orNull<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof OpenStackError && e.status === 404) return null;
    throw e;
  }
}
