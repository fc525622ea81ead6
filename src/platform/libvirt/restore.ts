import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Instance } from '../../domain/instance.js';
import { AppError, UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import { isUuid } from '../../lib/ids.js';
import type { Logger } from '../../lib/logger.js';
import type { DiskSink, NewInstanceSpec, PreparedInstance, RestoreTag } from '../platform.js';
import { LIFEBOAT_XMLNS, xmlAttr } from './domain-xml.js';
import { resolveNetwork, type NicSource } from './networks.js';
import { isRestoreFormat, ownLike, type RestoreFormat } from './restore-disks.js';
import { FileDiskSink } from '../disk-io/file-disk.js';
import { Qcow2DiskSink } from '../disk-io/qcow2-sink.js';
import { isNoDomain, type Virsh } from './virsh.js';

const DEVICE_RE = /^\/dev\/([a-z][a-z0-9]{0,31})$/;
const PROJECT_RE = /^[0-9a-f]{32}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$/;
const TAG_RE = /^[0-9a-zA-Z-]{1,64}$/;
/** `<restoreDir>/.partial.<restoreId>.<uuid>` marks a new domain's directory until it is defined. */
const PARTIAL_PREFIX = '.partial.';

export interface LibvirtRestoreDeps {
  virsh: Virsh;
  restoreDir: string;
  log: Logger;
  lookup: (uuid: string) => Promise<Instance | null>;
}

/** One interface with a new MAC (locally administered, QEMU's 52:54:00 prefix). */
function interfaceXml(src: NicSource): string {
  const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
  return `<interface type='${src.type}'><mac address='${mac}'/><source ${src.type}='${xmlAttr(src.name)}'/><model type='virtio'/></interface>`;
}

interface RestoredFile {
  target: string;
  file: string;
  format: RestoreFormat;
}

/** A plain domain for the restored disks: new UUID, new MACs, the snapshot's flavor, Lifeboat's project metadata. */
function domainXml(o: { uuid: string; name: string; type: string; projectId: string; spec: NewInstanceSpec; files: RestoredFile[]; nics: NicSource[] }): string {
  const disks = o.files
    .map((f) => `<disk type='file' device='disk'><driver name='qemu' type='${f.format}'/><source file='${xmlAttr(f.file)}'/><target dev='${xmlAttr(f.target)}' bus='virtio'/></disk>`)
    .join('');
  return `<domain type='${o.type}'>
<name>${xmlAttr(o.name)}</name><uuid>${o.uuid}</uuid>
<metadata><lifeboat:instance xmlns:lifeboat='${LIFEBOAT_XMLNS}' project='${o.projectId}'/></metadata>
<memory unit='MiB'>${Math.max(16, Math.round(o.spec.flavor.ram))}</memory><vcpu>${Math.max(1, Math.round(o.spec.flavor.vcpus))}</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices>${disks}${o.nics.map(interfaceXml).join('')}<video><model type='none'/></video><memballoon model='none'/></devices>
</domain>`;
}

async function domainExists(virsh: Virsh, nameOrUuid: string): Promise<boolean> {
  try {
    await virsh.run(['domuuid', nameOrUuid]);
    return true;
  } catch (e) {
    if (isNoDomain(e)) return false;
    throw e;
  }
}

/** 'kvm' when libvirt offers it for x86_64 guests, else 'qemu' (TCG). */
async function domainType(virsh: Virsh): Promise<string> {
  const caps = await virsh.run(['capabilities']);
  return /<domain type=['"]kvm['"]/.test(caps) ? 'kvm' : 'qemu';
}

function checkSpec(projectId: string, spec: NewInstanceSpec, tag: RestoreTag): string[] {
  if (!PROJECT_RE.test(projectId)) throw new ValidationError(`Invalid project id ${JSON.stringify(projectId)}`);
  if (!TAG_RE.test(tag.restoreId)) throw new ValidationError('Invalid restore id');
  if (!NAME_RE.test(spec.name)) throw new ValidationError(`Instance name ${JSON.stringify(spec.name)} cannot name a libvirt domain (letters, digits, _ . + - only)`);
  const targets = spec.disks.map((d) => {
    const m = DEVICE_RE.exec(d.device);
    if (!m) throw new ValidationError(`Invalid disk device ${JSON.stringify(d.device)}`);
    if (!Number.isSafeInteger(d.size) || d.size <= 0) throw new ValidationError(`Disk ${d.device}: invalid size ${d.size}`);
    return m[1]!;
  });
  if (new Set(targets).size !== targets.length) throw new ValidationError('Duplicate disk devices');
  return targets;
}

/** The restored disk's format: the requested volume type when it is one, else the snapshot's format (raw if neither fits). */
export function restoreFormat(d: NewInstanceSpec['disks'][number]): RestoreFormat {
  if (isRestoreFormat(d.volume_type)) return d.volume_type;
  return isRestoreFormat(d.format) ? d.format : 'raw';
}

/** Each NIC's source on this host; a network that does not exist (any more) fails the restore. */
async function nicSources(virsh: Virsh, spec: NewInstanceSpec): Promise<NicSource[]> {
  const out: NicSource[] = [];
  for (const nic of spec.nics) {
    const src = await resolveNetwork(virsh, nic.network.id);
    if (!src) throw new ValidationError(`Network ${JSON.stringify(nic.network.name || nic.network.id)} does not exist on this libvirt host; map it to an existing one with networks_mapping`);
    out.push(src);
  }
  return out;
}

/** Runs one step of publish; a failure says which step failed. */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new UnavailableError(`Restore failed while ${what}: ${errorMessage(e)}`, { cause: e });
  }
}

/** The restored files take the owner of the restore directory (QEMU of a session libvirt must open them). */
async function ownLikeRestoreDir(restoreDir: string, dir: string, files: RestoredFile[]): Promise<void> {
  const want = await stat(restoreDir);
  for (const p of [dir, ...files.map((f) => f.file)]) {
    const st = await stat(p);
    if (st.uid !== want.uid || st.gid !== want.gid) await ownLike(p, restoreDir);
  }
}

/**
 * A new domain for a restore: sparse raw or qcow2 disk files under `<restoreDir>/<uuid>/`,
 * defined in libvirt by publish() with the project's metadata (so it appears to the tenant
 * only then) and started when `spec.power_on`. The name is the requested one, or
 * `<name>-<uuid prefix>` when a domain has it already. If defining or starting fails, the
 * domain is undefined and its files removed, and the error names the step.
 */
export async function createLibvirtInstance(deps: LibvirtRestoreDeps, projectId: string, spec: NewInstanceSpec, tag: RestoreTag): Promise<PreparedInstance> {
  const targets = checkSpec(projectId, spec, tag);
  const uuid = randomUUID();
  const dir = path.join(deps.restoreDir, uuid);
  const marker = path.join(deps.restoreDir, `${PARTIAL_PREFIX}${tag.restoreId}.${uuid}`);
  const sinks = new Map<string, FileDiskSink | Qcow2DiskSink>();
  const files: RestoredFile[] = targets.map((t, i) => {
    const format = restoreFormat(spec.disks[i]!);
    return { target: t, format, file: path.join(dir, `${t}.${format}`) };
  });
  const removeAll = async () => {
    await Promise.all([...sinks.values()].map((s) => s.abort()));
    await rm(dir, { recursive: true, force: true });
    await unlink(marker).catch(() => undefined);
  };
  try {
    await mkdir(deps.restoreDir, { recursive: true });
    await writeFile(marker, '', { flag: 'wx' }); // first: a crash from here on leaves something cleanupRestore finds
    await mkdir(dir);
    for (const [i, d] of spec.disks.entries()) {
      const f = files[i]!;
      const sink = f.format === 'qcow2' ? await Qcow2DiskSink.create(f.file, d.size) : await FileDiskSink.create(f.file, d.size);
      sinks.set(d.device, sink);
    }
  } catch (e) {
    await removeAll();
    throw new UnavailableError(`Cannot create disks for the restored instance in the restore directory: ${errorMessage(e)}`, { cause: e });
  }
  const placeholder: Instance = { id: uuid, name: spec.name, project_id: projectId, status: 'BUILD', availability_zone: spec.availability_zone, flavor: spec.flavor, security_groups: [], nics: [], disks: files.map((f) => ({ device: `/dev/${f.target}`, format: f.format })), metadata: {} };
  let state: 'prepared' | 'published' | 'discarded' = 'prepared';
  const publish = async (): Promise<Instance> => {
    if (state !== 'prepared') throw new AppError('internal', `publish of a ${state} instance ${uuid}`);
    const pending = [...sinks.entries()].filter(([, s]) => s.status !== 'committed').map(([dev]) => dev);
    if (pending.length > 0) throw new AppError('internal', `Cannot publish instance ${uuid}: disks not committed: ${pending.join(', ')}`);
    const nics = await step('resolving its networks', () => nicSources(deps.virsh, spec));
    await step('giving its disks the owner of the restore directory', () => ownLikeRestoreDir(deps.restoreDir, dir, files));
    const name = (await domainExists(deps.virsh, spec.name)) ? `${spec.name}-${uuid.slice(0, 8)}` : spec.name;
    const xml = domainXml({ uuid, name, type: await domainType(deps.virsh), projectId, spec, files, nics });
    await step(`defining domain ${name}`, () => defineDomain(deps.virsh, xml));
    if (spec.power_on) {
      try {
        await step(`starting domain ${name}`, () => deps.virsh.run(['start', uuid]));
      } catch (e) {
        await deps.virsh.run(['undefine', uuid]).catch((err: unknown) => deps.log.warn({ instance: uuid, err: errorMessage(err) }, 'undefining a restored domain that did not start failed'));
        throw e;
      }
    }
    state = 'published';
    await unlink(marker).catch(() => undefined);
    deps.log.info({ instance: uuid, project: projectId, started: spec.power_on === true }, 'restored domain defined');
    return (await deps.lookup(uuid)) ?? { ...placeholder, name, status: spec.power_on ? 'ACTIVE' : 'SHUTOFF' };
  };
  return {
    instance: placeholder,
    sinks: sinks as Map<string, DiskSink>,
    publish,
    discard: async () => {
      if (state !== 'prepared') return;
      state = 'discarded';
      await removeAll();
    },
  };
}

async function defineDomain(virsh: Virsh, xml: string): Promise<void> {
  const xmlDir = await mkdtemp(path.join(tmpdir(), 'lifeboat-libvirt-'));
  try {
    await writeFile(path.join(xmlDir, 'domain.xml'), xml);
    await virsh.run(['define', path.join(xmlDir, 'domain.xml')]);
  } finally {
    await rm(xmlDir, { recursive: true, force: true });
  }
}

/** After a restore's worker died: removes the directories of new domains it never defined. */
export async function cleanupLibvirtRestore(deps: LibvirtRestoreDeps, tag: RestoreTag): Promise<void> {
  if (!TAG_RE.test(tag.restoreId)) throw new ValidationError('Invalid restore id');
  const prefix = `${PARTIAL_PREFIX}${tag.restoreId}.`;
  const names = await readdir(deps.restoreDir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const uuid = name.slice(prefix.length);
    if (!isUuid(uuid)) continue;
    // Defined = published (the marker removal was what the crash interrupted): keep its disks.
    if (!(await domainExists(deps.virsh, uuid))) await rm(path.join(deps.restoreDir, uuid), { recursive: true, force: true });
    await unlink(path.join(deps.restoreDir, name)).catch(() => undefined);
  }
}
