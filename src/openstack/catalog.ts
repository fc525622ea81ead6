import { ValidationError } from '../lib/errors.js';

/** One entry of a Keystone v3 token's `catalog`. */
export interface CatalogEntry {
  type: string;
  name?: string;
  endpoints: { interface: string; region?: string; region_id?: string; url: string }[];
}

export type EndpointInterface = 'public' | 'internal' | 'admin';

/**
 * The URL of service `type` for `iface` (and `region` when given), from a token's catalog,
 * without a trailing slash. Service types have aliases in the wild (Cinder v3 is `volumev3`
 * or `block-storage`); the first present wins. Throws naming what is missing, so a cloud
 * without (say) Cinder fails at the first call with a message an operator can act on.
 */
export function endpointFor(catalog: CatalogEntry[], types: readonly string[], iface: EndpointInterface, region: string | null): string {
  for (const type of types) {
    const entry = catalog.find((e) => e.type === type);
    if (!entry) continue;
    const ep = entry.endpoints.find((e) => e.interface === iface && (region === null || e.region_id === region || e.region === region));
    if (ep) return ep.url.replace(/\/+$/, '');
    const have = entry.endpoints.map((e) => `${e.interface}@${e.region_id ?? e.region ?? '?'}`).join(', ');
    throw new ValidationError(`The service catalog has no ${iface} endpoint of ${type}${region ? ` in region ${region}` : ''} (it has: ${have || 'none'}); check LIFEBOAT_OS_INTERFACE and LIFEBOAT_OS_REGION`);
  }
  throw new ValidationError(`The service catalog has no ${types.join(' or ')} service`);
}
