import { XMLParser } from 'fast-xml-parser';
import { ValidationError } from '../../lib/errors.js';

/**
 * The parts of a libvirt domain XML Lifeboat uses. Parsed with fast-xml-parser (pinned): the
 * documents come from libvirt, but they embed guest-chosen strings (names, metadata of other
 * tools), so a real parser with entity handling is safer than pattern matching.
 */

/** The XML namespace of Lifeboat's domain metadata (`virsh metadata --uri`). */
export const LIFEBOAT_XMLNS = 'urn:lifeboat:libvirt:1';
/** The prefix libvirt writes our metadata element with (`--key`). */
export const LIFEBOAT_XMLNS_KEY = 'lifeboat';

export interface DomainDisk {
  /** Target device name, e.g. `vda` (the NBD export name of a pull backup). */
  target: string;
  /** Driver format: `qcow2`, `raw`, ... */
  format: string;
  /** `file` or `block`. */
  type: string;
  /** Source file or block device (never shown to users). */
  source: string | null;
  /** `<serial>`, when the disk has one (OpenStack: the Cinder volume id of a volume disk). */
  serial?: string | null;
}

export interface DomainNic {
  mac: string;
  /** Network name (type='network') or bridge name (type='bridge'); '' otherwise. */
  network: string;
  type: string;
}

export interface DomainInfo {
  uuid: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  disks: DomainDisk[];
  nics: DomainNic[];
  /** Project from Lifeboat's metadata; null = unassigned (invisible to tenants). */
  projectId: string | null;
}

type Node = Record<string, unknown>;

const ARRAY_ELEMENTS = new Set(['domain.devices.disk', 'domain.devices.interface']);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  isArray: (_name, jpath) => ARRAY_ELEMENTS.has(String(jpath)),
});

function node(v: unknown): Node | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Node) : null;
}

function text(v: unknown): string | null {
  if (typeof v === 'string') return v;
  const n = node(v);
  return n && typeof n['#text'] === 'string' ? n['#text'] : null;
}

function attr(v: unknown, name: string): string | null {
  const n = node(v);
  const a = n?.[`@${name}`];
  return typeof a === 'string' ? a : null;
}

const MEMORY_UNITS: Record<string, number> = { b: 1, bytes: 1, k: 1024, kib: 1024, kb: 1000, m: 1024 ** 2, mib: 1024 ** 2, mb: 1e6, g: 1024 ** 3, gib: 1024 ** 3, gb: 1e9 };

function memoryMiB(v: unknown): number {
  const amount = Number(text(v) ?? 0);
  const unit = MEMORY_UNITS[(attr(v, 'unit') ?? 'KiB').toLowerCase()] ?? 1024;
  return Math.round((amount * unit) / 1024 ** 2);
}

function parseDisks(devices: Node | null): DomainDisk[] {
  const list = Array.isArray(devices?.disk) ? (devices.disk as unknown[]) : [];
  const out: DomainDisk[] = [];
  for (const d of list) {
    if ((attr(d, 'device') ?? 'disk') !== 'disk') continue; // cdrom, floppy, lun: not backed up
    const target = attr(node(d)?.target, 'dev');
    if (!target) continue;
    const src = node(d)?.source;
    out.push({
      target,
      format: attr(node(d)?.driver, 'type') ?? 'raw',
      type: attr(d, 'type') ?? 'file',
      source: attr(src, 'file') ?? attr(src, 'dev') ?? null,
      serial: text(node(d)?.serial)?.trim() || null,
    });
  }
  return out;
}

function parseNics(devices: Node | null): DomainNic[] {
  const list = Array.isArray(devices?.interface) ? (devices.interface as unknown[]) : [];
  return list.map((i) => {
    const src = node(i)?.source;
    return { mac: attr(node(i)?.mac, 'address') ?? '', network: attr(src, 'network') ?? attr(src, 'bridge') ?? '', type: attr(i, 'type') ?? '' };
  });
}

/** Lifeboat's element under <metadata>: the child whose xmlns:<prefix> is LIFEBOAT_XMLNS. */
function lifeboatMetadata(metadata: unknown): Node | null {
  const m = node(metadata);
  if (!m) return null;
  for (const [key, value] of Object.entries(m)) {
    if (key.startsWith('@') || key === '#text') continue;
    const prefix = key.includes(':') ? key.slice(0, key.indexOf(':')) : null;
    const entries = Array.isArray(value) ? value : [value];
    for (const e of entries) {
      const ns = prefix ? attr(e, `xmlns:${prefix}`) : attr(e, 'xmlns');
      if (ns === LIFEBOAT_XMLNS) return node(e) ?? {};
    }
  }
  return null;
}

const PROJECT_RE = /^[0-9a-f]{32}$/;

/** Parses `virsh dumpxml` output; throws ValidationError when it is not a domain. */
export function parseDomainXml(xml: string): DomainInfo {
  const doc = node(parser.parse(xml));
  const dom = node(doc?.domain);
  const uuid = text(dom?.uuid)?.toLowerCase();
  const name = text(dom?.name);
  if (!dom || !uuid || !name) throw new ValidationError('libvirt returned a domain description without name or uuid');
  const devices = node(dom.devices);
  const project = attr(lifeboatMetadata(dom.metadata), 'project');
  return {
    uuid,
    name,
    vcpus: Number(text(dom.vcpu) ?? 1) || 1,
    memoryMiB: memoryMiB(dom.memory),
    disks: parseDisks(devices),
    nics: parseNics(devices),
    projectId: project && PROJECT_RE.test(project) ? project : null,
  };
}

/** The metadata element `libvirt-assign` stores (libvirt adds the namespace declaration). */
export function assignmentXml(projectId: string): string {
  if (!PROJECT_RE.test(projectId)) throw new ValidationError(`Invalid project id ${JSON.stringify(projectId)} (32 hex digits expected)`);
  return `<instance project="${projectId}"/>`;
}

/** Checkpoint name and the disks it holds a bitmap for, from `checkpoint-dumpxml`. */
export function parseCheckpointXml(xml: string): { name: string; bitmapDisks: string[]; domainUuid: string | null } | null {
  try {
    const cp = node(node(parser.parse(xml))?.domaincheckpoint);
    const name = text(cp?.name);
    if (!name) return null;
    const disks = node(cp?.disks)?.disk;
    const list = Array.isArray(disks) ? disks : disks ? [disks] : [];
    const domainUuid = text(node(cp?.domain)?.uuid)?.toLowerCase() ?? null;
    return { name, bitmapDisks: list.filter((d) => attr(d, 'checkpoint') === 'bitmap').map((d) => attr(d, 'name') ?? '').filter(Boolean), domainUuid };
  } catch {
    return null;
  }
}

/** Escapes a value for an XML attribute in documents Lifeboat writes. */
export function xmlAttr(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}
