import { stat } from 'node:fs/promises';
import { isUuid } from '../../lib/ids.js';
import { LibvirtError, type Virsh } from './virsh.js';

/**
 * Network ids of the libvirt platform: an interface on a libvirt network is `network:<name>`,
 * one on a host bridge `bridge:<name>` (what snapshots record, README.md "Instances"). A
 * restore's `networks_mapping` may name a target the same way, or by a libvirt network's UUID.
 */
export interface NicSource {
  type: 'network' | 'bridge';
  name: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

function isNoNetwork(e: unknown): boolean {
  return e instanceof LibvirtError && /network not found|no network with matching/i.test(e.detail);
}

/** The network or bridge `id` names on this host; null when it does not exist (or is no network id). */
export async function resolveNetwork(virsh: Virsh, id: string): Promise<NicSource | null> {
  try {
    if (isUuid(id as unknown)) return { type: 'network', name: (await virsh.run(['net-name', id])).trim() };
    const colon = id.indexOf(':');
    const kind = id.slice(0, colon);
    const name = id.slice(colon + 1);
    if (colon < 0 || !NAME_RE.test(name)) return null;
    if (kind === 'network') {
      await virsh.run(['net-uuid', name]);
      return { type: 'network', name };
    }
    // A host interface libvirt can attach a tap to (Linux bridge or Open vSwitch bridge).
    if (kind === 'bridge') return (await stat(`/sys/class/net/${name}`).then(() => true, () => false)) ? { type: 'bridge', name } : null;
    return null;
  } catch (e) {
    if (isNoNetwork(e)) return null;
    throw e;
  }
}
