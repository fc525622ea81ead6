import type { RequestContext } from '../domain/context.js';
import type { Instance } from '../domain/instance.js';
import type { Platform, PlatformNetwork } from '../platform/platform.js';

/** One instance as a picker needs it: no disk paths or other platform internals. */
export interface InstanceSummary {
  id: string;
  name: string;
  status: string;
  availability_zone: string;
  flavor: Instance['flavor'];
  networks: { id: string; name: string; ip_address: string }[];
  disks: { device: string; volume_type: string | null }[];
  /** Why the platform cannot protect it now, or null. */
  unprotectable_reason: string | null;
}

/** A network a restore can map a snapshot's network to (Platform.listNetworks). */
export type NetworkSummary = PlatformNetwork;

/**
 * The caller's project as the platform sees it: its instances (for the workload VM picker) and
 * the networks a restore may plug its VMs into (restore network mapping targets). Always scoped to ctx.projectId, so
 * no caller lists another tenant's VMs (the platform contract: another project's instance is
 * like a missing one).
 */
export class PlatformInventoryService {
  constructor(private readonly platform: Platform) {}

  async instances(ctx: RequestContext): Promise<InstanceSummary[]> {
    const list = await this.platform.listInstances(ctx.projectId);
    return list.map((i) => summarize(i, this.platform.unprotectableReason?.(i) ?? null)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The platform's networks the project may plug a restored VM into (its own and shared ones), with their subnets. */
  async networks(ctx: RequestContext): Promise<NetworkSummary[]> {
    const list = await this.platform.listNetworks(ctx.projectId);
    return list.map((n) => ({ ...n, subnets: [...n.subnets].sort((a, b) => a.cidr.localeCompare(b.cidr)) })).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  }
}

function summarize(i: Instance, reason: string | null): InstanceSummary {
  return {
    id: i.id,
    name: i.name,
    status: i.status,
    availability_zone: i.availability_zone,
    flavor: i.flavor,
    networks: i.nics.map((n) => ({ id: n.network.id, name: n.network.name, ip_address: n.ip_address })),
    disks: i.disks.map((d) => ({ device: d.device, volume_type: d.volume_type ?? null })),
    unprotectable_reason: reason,
  };
}
