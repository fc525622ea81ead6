import { XMLBuilder, XMLParser } from 'fast-xml-parser';

/**
 * Edits of a domain definition that Lifeboat makes before `virsh define`-ing it again. The
 * document is parsed and rebuilt in order (elements, attributes, text with its whitespace,
 * comments), so everything but the edit comes out as libvirt wrote it; entities are decoded
 * on the way in and encoded on the way out.
 */
const OPTIONS = {
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  commentPropName: '#comment',
} as const;

/** A node of the ordered tree: `{ <tag>: children, ':@': attributes }` or a text/comment node. */
type OrderedNode = Record<string, unknown>;

const tagOf = (n: OrderedNode) => Object.keys(n).find((k) => k !== ':@' && k !== '#text' && k !== '#comment') ?? null;
const childrenOf = (n: OrderedNode, tag: string) => (Array.isArray(n[tag]) ? (n[tag] as OrderedNode[]) : []);
const attrOf = (n: OrderedNode, name: string) => {
  const a = n[':@'] as Record<string, unknown> | undefined;
  return typeof a?.[`@${name}`] === 'string' ? (a[`@${name}`] as string) : null;
};
const elements = (nodes: OrderedNode[], tag: string) => nodes.filter((n) => tagOf(n) === tag);

/**
 * The domain XML with every `device='disk'` disk whose target is in `targets` declared
 * standalone (`<backingStore/>`: no backing chain, libvirt then neither probes nor attaches
 * one) when it named a backing image; null when none of them did (nothing to redefine).
 * Used after an in-place restore made those images flat: a kept `<backingStore>` would make
 * QEMU read the old backing image wherever the flat image has a hole.
 */
export function withoutBackingStores(xml: string, targets: readonly string[]): string | null {
  const doc = new XMLParser(OPTIONS).parse(xml) as OrderedNode[];
  let changed = false;
  for (const domain of elements(doc, 'domain')) {
    for (const devices of elements(childrenOf(domain, 'domain'), 'devices')) {
      for (const disk of elements(childrenOf(devices, 'devices'), 'disk')) {
        if ((attrOf(disk, 'device') ?? 'disk') !== 'disk') continue;
        const children = childrenOf(disk, 'disk');
        const target = elements(children, 'target')[0];
        if (!target || !targets.includes(attrOf(target, 'dev') ?? '')) continue;
        for (const [i, child] of children.entries()) {
          if (tagOf(child) !== 'backingStore' || !childrenOf(child, 'backingStore').some((c) => tagOf(c) !== null)) continue;
          children[i] = { backingStore: [] };
          changed = true;
        }
      }
    }
  }
  return changed ? (new XMLBuilder({ ...OPTIONS, suppressEmptyNode: true }).build(doc) as string) : null;
}
