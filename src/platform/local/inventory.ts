import { open, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Disk, Flavor, Instance, Nic, Subnet } from '../../domain/instance.js';
import { UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import { isHexId, isUuid } from '../../lib/ids.js';
import { silentLogger, type Logger } from '../../lib/logger.js';
import { fileKey, hasCode, writeFileAtomic } from '../disk-io/atomic-file.js';

/**
 * The local platform's inventory: a JSON file `{"instances": [...], "networks"?: [...]}` describing
 * VMs whose disks are raw image files, and networks a restore may map to (format in README.md). The inventory is operator configuration; API users
 * never supply paths.
 */

/** A disk as the inventory records it: the domain Disk plus the absolute path of its image. */
export interface InventoryDisk extends Disk {
  path: string;
}

/** An instance as the inventory records it. `path` never leaves the platform (see toPublic). */
export interface InventoryInstance extends Omit<Instance, 'disks'> {
  disks: InventoryDisk[];
}

/**
 * A network declared at the top level of the inventory (`networks`): a restore can map a
 * snapshot's network to it. `project_id` null: shared (every project sees it).
 */
export interface InventoryNetwork {
  id: string;
  name: string;
  project_id: string | null;
  subnets: Subnet[];
}

/** A validated inventory document. */
export interface InventoryDoc {
  instances: InventoryInstance[];
  networks: InventoryNetwork[];
}

/** Guest device names we accept; the basename (e.g. `vda`) names restored files, so keep it tame. */
const DEVICE_RE = /^\/dev\/[a-z][a-z0-9]{0,31}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const STATUS_RE = /^[A-Z][A-Z_]*$/;
const MAX_REPORTED_PROBLEMS = 20;

const INSTANCE_KEYS = ['id', 'name', 'project_id', 'status', 'availability_zone', 'flavor', 'security_groups', 'nics', 'disks', 'metadata'];
const FLAVOR_KEYS = ['vcpus', 'ram', 'disk', 'ephemeral'];
const NIC_KEYS = ['mac_address', 'ip_address', 'network'];
const NETWORK_KEYS = ['id', 'name', 'subnet'];
const DECLARED_NETWORK_KEYS = ['id', 'name', 'project_id', 'subnets'];
const SUBNET_KEYS = ['id', 'name', 'cidr', 'ip_version', 'gateway_ip'];
const DISK_KEYS = ['device', 'path', 'format', 'volume_id', 'volume_type', 'image_id', 'image_name', 'encrypted'];

/** Collects every problem with its JSON path, so one error message lists all of them. */
class Problems {
  readonly list: string[] = [];
  add(where: string, msg: string): void {
    this.list.push(`${where}: ${msg}`);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function record(v: unknown, where: string, p: Problems, keys: string[]): Record<string, unknown> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    p.add(where, `must be an object (got ${describe(v)})`);
    return undefined;
  }
  const o = v as Record<string, unknown>;
  // Unknown keys are rejected: in a hand-edited file they are almost always typos ("volumeid").
  for (const k of Object.keys(o)) if (!keys.includes(k)) p.add(`${where}.${k}`, `unknown field (allowed: ${keys.join(', ')})`);
  return o;
}

function str(o: Record<string, unknown>, k: string, where: string, p: Problems, dflt?: string): string {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || v.trim() === '') {
    p.add(`${where}.${k}`, v === undefined ? 'is required' : `must be a non-empty string (got ${describe(v)})`);
    return '';
  }
  return v;
}

function optStr(o: Record<string, unknown>, k: string, where: string, p: Problems): string | undefined {
  return o[k] === undefined ? undefined : str(o, k, where, p);
}

function optBool(o: Record<string, unknown>, k: string, where: string, p: Problems): boolean | undefined {
  const v = o[k];
  if (v === undefined || typeof v === 'boolean') return v;
  p.add(`${where}.${k}`, `must be true or false (got ${describe(v)})`);
  return undefined;
}

function uuid(o: Record<string, unknown>, k: string, where: string, p: Problems, required: boolean): string | undefined {
  const v = o[k];
  if (v === undefined && !required) return undefined;
  // Lowercase only: ids are compared as strings, and the API always prints them lowercase.
  if (!isUuid(v) || v !== v.toLowerCase()) {
    p.add(`${where}.${k}`, v === undefined ? 'is required' : `must be a lowercase UUID (got ${describe(v)})`);
    return undefined;
  }
  return v;
}

function int(o: Record<string, unknown>, k: string, where: string, p: Problems, min: number): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    p.add(`${where}.${k}`, v === undefined ? 'is required' : `must be an integer >= ${min} (got ${describe(v)})`);
    return 0;
  }
  return v;
}

function array(o: Record<string, unknown>, k: string, where: string, p: Problems, required: boolean): unknown[] {
  const v = o[k];
  if (v === undefined && !required) return [];
  if (!Array.isArray(v)) {
    p.add(`${where}.${k}`, v === undefined ? 'is required' : `must be an array (got ${describe(v)})`);
    return [];
  }
  return v;
}

function ip(v: unknown, where: string, p: Problems): string {
  if (typeof v !== 'string' || isIP(v) === 0) {
    p.add(where, `must be an IPv4 or IPv6 address (got ${describe(v)})`);
    return '';
  }
  return v;
}

function validateFlavor(v: unknown, where: string, p: Problems): Flavor {
  const o = record(v, where, p, FLAVOR_KEYS);
  if (!o) return { vcpus: 0, ram: 0, disk: 0, ephemeral: 0 };
  return { vcpus: int(o, 'vcpus', where, p, 1), ram: int(o, 'ram', where, p, 0), disk: int(o, 'disk', where, p, 0), ephemeral: int(o, 'ephemeral', where, p, 0) };
}

function validateSubnet(v: unknown, where: string, p: Problems): Subnet | undefined {
  const o = record(v, where, p, SUBNET_KEYS);
  if (!o) return undefined;
  const id = uuid(o, 'id', where, p, true) ?? '';
  const name = str(o, 'name', where, p);
  const cidr = str(o, 'cidr', where, p);
  const ipVersion = o.ip_version;
  if (ipVersion !== 4 && ipVersion !== 6) p.add(`${where}.ip_version`, `must be 4 or 6 (got ${describe(ipVersion)})`);
  if (cidr) {
    const [addr, prefix, extra] = cidr.split('/');
    const fam = isIP(addr ?? '');
    const bits = Number(prefix);
    if (fam === 0 || extra !== undefined || prefix === undefined || !/^\d+$/.test(prefix) || bits > (fam === 6 ? 128 : 32)) {
      p.add(`${where}.cidr`, `must be an address/prefix such as 10.0.0.0/24 (got ${describe(cidr)})`);
    } else if (fam !== ipVersion) {
      p.add(`${where}.cidr`, `is IPv${fam} but ip_version is ${describe(ipVersion)}`);
    }
  }
  const gw = o.gateway_ip === undefined || o.gateway_ip === null ? null : ip(o.gateway_ip, `${where}.gateway_ip`, p);
  return { id, name, cidr, ip_version: ipVersion === 6 ? 6 : 4, gateway_ip: gw };
}

function validateNic(v: unknown, where: string, p: Problems): Nic | undefined {
  const o = record(v, where, p, NIC_KEYS);
  if (!o) return undefined;
  const mac = str(o, 'mac_address', where, p);
  if (mac && !MAC_RE.test(mac)) p.add(`${where}.mac_address`, `must look like fa:16:3e:00:00:01 (got ${describe(mac)})`);
  const ipAddress = ip(o.ip_address, `${where}.ip_address`, p);
  const nw = record(o.network, `${where}.network`, p, NETWORK_KEYS);
  if (!nw) return undefined;
  const network: Nic['network'] = { id: uuid(nw, 'id', `${where}.network`, p, true) ?? '', name: str(nw, 'name', `${where}.network`, p) };
  if (nw.subnet !== undefined) {
    const subnet = validateSubnet(nw.subnet, `${where}.network.subnet`, p);
    if (subnet) network.subnet = subnet;
  }
  return { mac_address: mac.toLowerCase(), ip_address: ipAddress, network };
}

function validateDisk(v: unknown, where: string, p: Problems): InventoryDisk | undefined {
  const o = record(v, where, p, DISK_KEYS);
  if (!o) return undefined;
  const device = str(o, 'device', where, p);
  if (device && !DEVICE_RE.test(device)) p.add(`${where}.device`, `must be a device name such as /dev/vda (got ${describe(device)})`);
  const file = str(o, 'path', where, p);
  if (file && !path.isAbsolute(file)) p.add(`${where}.path`, `must be an absolute path (got ${describe(file)})`);
  else if (file && path.normalize(file) !== file) p.add(`${where}.path`, `must be a normalized path without '..', '.' or '//' (got ${describe(file)})`);
  const format = str(o, 'format', where, p, 'raw');
  if (format !== 'raw') p.add(`${where}.format`, `only "raw" disk images are supported by the local platform (got ${describe(format)})`);
  const disk: InventoryDisk = { device, path: file, format };
  const volumeId = uuid(o, 'volume_id', where, p, false);
  const volumeType = optStr(o, 'volume_type', where, p);
  const imageId = uuid(o, 'image_id', where, p, false);
  const imageName = optStr(o, 'image_name', where, p);
  if (volumeId !== undefined) disk.volume_id = volumeId;
  if (volumeType !== undefined) disk.volume_type = volumeType;
  if (imageId !== undefined) disk.image_id = imageId;
  if (imageName !== undefined) disk.image_name = imageName;
  if (optBool(o, 'encrypted', where, p) === true) disk.encrypted = true;
  return disk;
}

/**
 * Validates one instance entry. `status` defaults to ACTIVE, `availability_zone` to nova,
 * `security_groups`/`nics` to [] and `metadata` to {}; everything else is required.
 */
function validateInstanceInto(v: unknown, where: string, p: Problems): InventoryInstance | undefined {
  const o = record(v, where, p, INSTANCE_KEYS);
  if (!o) return undefined;
  const id = uuid(o, 'id', where, p, true) ?? '';
  const name = str(o, 'name', where, p);
  const projectId = o.project_id;
  if (!isHexId(projectId)) p.add(`${where}.project_id`, projectId === undefined ? 'is required' : `must be 32 lowercase hex characters (got ${describe(projectId)})`);
  const status = str(o, 'status', where, p, 'ACTIVE');
  if (status && !STATUS_RE.test(status)) p.add(`${where}.status`, `must be an upper-case Nova status such as ACTIVE or SHUTOFF (got ${describe(status)})`);
  const az = str(o, 'availability_zone', where, p, 'nova');
  const flavor = validateFlavor(o.flavor, `${where}.flavor`, p);
  const securityGroups = array(o, 'security_groups', where, p, false).map((sg, i) => {
    if (typeof sg !== 'string' || sg === '') p.add(`${where}.security_groups[${i}]`, `must be a non-empty string (got ${describe(sg)})`);
    return String(sg);
  });
  const nics = array(o, 'nics', where, p, false)
    .map((n, i) => validateNic(n, `${where}.nics[${i}]`, p))
    .filter((n): n is Nic => n !== undefined);
  const disks = array(o, 'disks', where, p, true)
    .map((d, i) => validateDisk(d, `${where}.disks[${i}]`, p))
    .filter((d): d is InventoryDisk => d !== undefined);
  const devices = new Set<string>();
  disks.forEach((d, i) => {
    if (d.device && devices.has(d.device)) p.add(`${where}.disks[${i}].device`, `duplicate device ${d.device} within the instance`);
    devices.add(d.device);
  });
  const metadata: Record<string, string> = {};
  if (o.metadata !== undefined) {
    const md = o.metadata;
    if (typeof md !== 'object' || md === null || Array.isArray(md)) p.add(`${where}.metadata`, `must be an object of strings (got ${describe(md)})`);
    else
      for (const [k, val] of Object.entries(md)) {
        if (typeof val !== 'string') p.add(`${where}.metadata.${k}`, `must be a string (got ${describe(val)})`);
        else metadata[k] = val;
      }
  }
  return { id, name, project_id: String(projectId), status, availability_zone: az, flavor, security_groups: securityGroups, nics, disks, metadata };
}

function fail(source: string, p: Problems): never {
  const shown = p.list.slice(0, MAX_REPORTED_PROBLEMS);
  const more = p.list.length > shown.length ? `; and ${p.list.length - shown.length} more` : '';
  throw new ValidationError(`Invalid inventory ${source}: ${shown.join('; ')}${more}`);
}

/** The top-level `networks` list: ids unique, subnets valid, `project_id` absent (shared) or a project id. */
function validateNetworks(list: unknown[], p: Problems): InventoryNetwork[] {
  const seen = new Map<string, number>();
  return list.flatMap((v, i) => {
    const where = `networks[${i}]`;
    const o = record(v, where, p, DECLARED_NETWORK_KEYS);
    if (!o) return [];
    const id = uuid(o, 'id', where, p, true) ?? '';
    const prev = seen.get(id);
    if (id && prev !== undefined) p.add(`${where}.id`, `duplicate network id ${id} (also networks[${prev}])`);
    else if (id) seen.set(id, i);
    const projectId = o.project_id ?? null;
    if (projectId !== null && !isHexId(projectId)) p.add(`${where}.project_id`, `must be 32 lowercase hex characters, or absent for a shared network (got ${describe(projectId)})`);
    const subnets = array(o, 'subnets', where, p, false)
      .map((sn, j) => validateSubnet(sn, `${where}.subnets[${j}]`, p))
      .filter((sn): sn is Subnet => sn !== undefined);
    return [{ id, name: str(o, 'name', where, p), project_id: projectId === null ? null : String(projectId), subnets }];
  });
}

/**
 * Validates a parsed inventory document. Throws ValidationError naming every problem by its
 * path (`instances[1].disks[0].path: must be an absolute path`), including duplicate instance
 * ids, duplicate devices within an instance and one image file used by two disks.
 */
export function validateInventoryDoc(value: unknown, source = 'inventory'): InventoryDoc {
  const p = new Problems();
  const top = record(value, '(top level)', p, ['instances', 'networks']);
  const list = top ? array(top, 'instances', '(top level)', p, true) : [];
  const networks = top ? validateNetworks(array(top, 'networks', '(top level)', p, false), p) : [];
  const out: InventoryInstance[] = [];
  const ids = new Map<string, number>();
  const paths = new Map<string, string>();
  list.forEach((v, i) => {
    const where = `instances[${i}]`;
    const inst = validateInstanceInto(v, where, p);
    if (!inst) return;
    const prev = ids.get(inst.id);
    if (inst.id && prev !== undefined) p.add(`${where}.id`, `duplicate instance id ${inst.id} (also instances[${prev}])`);
    else if (inst.id) ids.set(inst.id, i);
    inst.disks.forEach((d, j) => {
      const other = paths.get(d.path);
      // Two disks on one image would let an in-place restore of one VM overwrite another.
      if (d.path && other !== undefined) p.add(`${where}.disks[${j}].path`, `image ${d.path} is already used by ${other}`);
      else if (d.path) paths.set(d.path, `${where}.disks[${j}]`);
    });
    out.push(inst);
  });
  if (p.list.length > 0) fail(source, p);
  return { instances: out, networks };
}

/** The instances of a parsed inventory document (validateInventoryDoc, networks dropped). */
export function validateInventory(value: unknown, source = 'inventory'): InventoryInstance[] {
  return validateInventoryDoc(value, source).instances;
}

/** Validates one instance entry on its own (used before a restore creates any file). */
export function validateInstance(value: unknown, source = 'instance'): InventoryInstance {
  const p = new Problems();
  const inst = validateInstanceInto(value, source, p);
  if (p.list.length > 0 || !inst) fail(source, p);
  return inst;
}

export function parseInventory(text: string, source: string): InventoryInstance[] {
  return parseInventoryDoc(text, source).instances;
}

export function parseInventoryDoc(text: string, source: string): InventoryDoc {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ValidationError(`Invalid inventory ${source}: not valid JSON (${errorMessage(e)})`);
  }
  return validateInventoryDoc(value, source);
}

/** The instance as the rest of Lifeboat sees it: a deep copy without image paths. */
export function toPublic(inst: InventoryInstance): Instance {
  const copy = structuredClone(inst) as InventoryInstance;
  return { ...copy, disks: copy.disks.map(({ path: _path, ...disk }) => disk) };
}

const MISSING = 'missing';

/**
 * The inventory file with change detection and serialized, merging writes.
 *
 * Reads: every `instances()` call stats the file (cheap) and re-reads it when dev/ino/size/mtime
 * changed, so edits in place and replace-by-rename are both seen. Invalid new content is logged
 * once (per change) and the last good inventory stays in use. A missing file is an empty
 * inventory. Returned entries are shared: callers must not mutate them (LocalPlatform copies).
 *
 * Writes: serialized within the process; each write re-reads the file from disk first and applies
 * its change to what is there (so hand edits made meanwhile are kept, including unknown JSON
 * formatting choices of entries it does not touch), then replaces the file atomically. Writes
 * from two *processes* are not serialized (last rename wins); the local platform is meant for
 * the single-process embedded setup.
 */
export class InventoryFile {
  readonly path: string;
  private readonly log: Logger;
  private cache: InventoryInstance[] = [];
  private networkCache: InventoryNetwork[] = [];
  /** fileKey of the content last loaded (good or bad), or MISSING; null before the first look. */
  private key: string | null = null;
  private refreshing: Promise<void> | null = null;
  private writeTail: Promise<unknown> = Promise.resolve();

  constructor(opts: { path: string; logger?: Logger }) {
    this.path = path.resolve(opts.path);
    this.log = (opts.logger ?? silentLogger).child({ inventory: this.path });
  }

  /**
   * First load for startup: like instances(), but throws ValidationError when the file exists
   * and is invalid (and there is no last good inventory to fall back on), so a bad inventory
   * stops `serve` with a clear message instead of silently showing no VMs.
   */
  async load(): Promise<readonly InventoryInstance[]> {
    await this.refresh(true);
    return this.cache;
  }

  async instances(): Promise<readonly InventoryInstance[]> {
    await this.current();
    return this.cache;
  }

  /** The declared networks (top-level `networks`), reloaded like instances(). */
  async networks(): Promise<readonly InventoryNetwork[]> {
    await this.current();
    return this.networkCache;
  }

  private async current(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.refresh(false).finally(() => {
        this.refreshing = null;
      });
    }
    await this.refreshing;
  }

  private async refresh(strict: boolean): Promise<void> {
    let st;
    try {
      st = await stat(this.path, { bigint: true });
    } catch (e) {
      if (hasCode(e, 'ENOENT')) return this.setMissing();
      if (strict) throw new UnavailableError(`Cannot read inventory ${this.path}: ${errorMessage(e)}`, { cause: e });
      this.log.error({ err: errorMessage(e) }, 'cannot stat the inventory file; keeping the last good inventory');
      return;
    }
    if (fileKey(st) === this.key) return;
    // Read through one handle so the key and the content belong to the same file even when
    // the path is being replaced concurrently.
    let text: string;
    let key: string;
    try {
      const fh = await open(this.path, 'r');
      try {
        key = fileKey(await fh.stat({ bigint: true }));
        text = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    } catch (e) {
      if (hasCode(e, 'ENOENT')) return this.setMissing();
      if (strict) throw new UnavailableError(`Cannot read inventory ${this.path}: ${errorMessage(e)}`, { cause: e });
      this.log.error({ err: errorMessage(e) }, 'cannot read the inventory file; keeping the last good inventory');
      return;
    }
    const first = this.key === null;
    this.key = key; // also for bad content: report it once, retry only after the next change
    try {
      const doc = parseInventoryDoc(text, this.path);
      this.cache = doc.instances;
      this.networkCache = doc.networks;
      this.log.info({ instances: this.cache.length }, first ? 'inventory loaded' : 'inventory reloaded');
    } catch (e) {
      if (strict && first) throw e;
      this.log.error({ err: errorMessage(e) }, 'inventory file is invalid; keeping the last good inventory');
    }
  }

  private setMissing(): void {
    if (this.key !== MISSING && this.key !== null) this.log.warn({}, 'inventory file disappeared; the inventory is now empty');
    this.key = MISSING;
    this.cache = [];
    this.networkCache = [];
  }

  /**
   * Adds an instance (validated) to the file. Fails without writing when the file on disk is
   * currently invalid (we never overwrite an operator's half-finished edit) or the id exists.
   */
  async addInstance(entry: InventoryInstance): Promise<void> {
    await this.update((raw) => {
      raw.push(structuredClone(entry));
    });
  }

  /**
   * Applies `change` to the raw `instances` array as it is on disk right now, validates the
   * result and replaces the file atomically. Serialized with other updates of this object.
   */
  async update(change: (rawInstances: unknown[]) => void): Promise<void> {
    const run = this.writeTail.then(() => this.updateNow(change));
    this.writeTail = run.catch(() => {});
    await run;
  }

  private async updateNow(change: (rawInstances: unknown[]) => void): Promise<void> {
    let doc: { instances: unknown[] };
    try {
      const text = await readFile(this.path, 'utf8');
      parseInventory(text, this.path); // refuse to merge into an invalid file
      doc = JSON.parse(text) as { instances: unknown[] };
    } catch (e) {
      if (hasCode(e, 'ENOENT')) doc = { instances: [] };
      else throw new UnavailableError(`Cannot update the inventory: ${errorMessage(e)}. Fix the file and retry.`, { cause: e });
    }
    change(doc.instances);
    const valid = validateInventoryDoc(doc, this.path);
    const st = await writeFileAtomic(this.path, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 }); // names tenants' VMs and disks: owner only
    this.cache = valid.instances;
    this.networkCache = valid.networks;
    this.key = fileKey(st);
  }
}
