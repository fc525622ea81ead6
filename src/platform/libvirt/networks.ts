import { readdir, stat } from 'node:fs/promises';
import { XMLParser } from 'fast-xml-parser';
import { isUuid } from '../../lib/ids.js';
import type { PlatformNetwork } from '../platform.js';
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

const netXml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, parseAttributeValue: false });

/** The bridge a libvirt network's XML names (`<bridge name='virbr0'/>`), or null. */
export function networkBridge(xml: string): string | null {
  const doc = netXml.parse(xml) as { network?: { bridge?: { '@name'?: unknown } } };
  const name = doc.network?.bridge?.['@name'];
  return typeof name === 'string' ? name : null;
}

/** Linux bridges of this host (`/sys/class/net/<name>/bridge` exists). */
export async function hostBridges(sysClassNet = '/sys/class/net'): Promise<string[]> {
  const names = await readdir(sysClassNet).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names) if (NAME_RE.test(n) && (await stat(`${sysClassNet}/${n}/bridge`).then(() => true, () => false))) out.push(n);
  return out.sort();
}

/**
 * What a restore can plug a NIC into on this host: every libvirt network (defined; `active`
 * when started) as `network:<name>`, and every Linux bridge that is no libvirt network's own
 * as `bridge:<name>`. Host-wide, so `shared`; libvirt networks have no Neutron subnets.
 */
export async function listHostNetworks(virsh: Virsh): Promise<PlatformNetwork[]> {
  const names = (s: string) => s.split('\n').map((x) => x.trim()).filter((x) => NAME_RE.test(x));
  const [all, active] = await Promise.all([virsh.run(['net-list', '--all', '--name']), virsh.run(['net-list', '--name'])]);
  const up = new Set(names(active));
  const owned = new Set<string>();
  const out: PlatformNetwork[] = [];
  for (const name of names(all)) {
    let xml: string;
    try {
      xml = await virsh.run(['net-dumpxml', name]);
    } catch (e) {
      if (isNoNetwork(e)) continue; // undefined meanwhile
      throw e;
    }
    const bridge = networkBridge(xml);
    if (bridge) owned.add(bridge);
    out.push({ id: `network:${name}`, name, shared: true, active: up.has(name), subnets: [] });
  }
  for (const b of await hostBridges()) if (!owned.has(b)) out.push({ id: `bridge:${b}`, name: b, shared: true, active: true, subnets: [] });
  return out;
}
