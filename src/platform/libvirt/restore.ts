import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Instance } from '../../domain/instance.js';
import { AppError, UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import { isUuid } from '../../lib/ids.js';
import type { Logger } from '../../lib/logger.js';
import { FileDiskSink } from '../disk-io/file-disk.js';
import type { DiskSink, NewInstanceSpec, PreparedInstance, RestoreTag } from '../platform.js';
import { LIFEBOAT_XMLNS, xmlAttr } from './domain-xml.js';
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

/** A libvirt NIC as the platform reports it: network id `network:<name>` or `bridge:<name>`. */
function interfaceXml(nic: NewInstanceSpec['nics'][number]): string {
  const mac = `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
  const [kind, ...rest] = nic.network.id.split(':');
  const name = rest.length > 0 ? rest.join(':') : nic.network.name;
  const type = kind === 'bridge' ? 'bridge' : 'network';
  return `<interface type='${type}'><mac address='${mac}'/><source ${type}='${xmlAttr(name)}'/><model type='virtio'/></interface>`;
}

/** A plain domain for the restored disks: new UUID, new MACs, the snapshot's flavor, Lifeboat's project metadata. */
function domainXml(o: { uuid: string; name: string; type: string; projectId: string; spec: NewInstanceSpec; files: { target: string; file: string }[] }): string {
  const disks = o.files
    .map((f) => `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${xmlAttr(f.file)}'/><target dev='${xmlAttr(f.target)}' bus='virtio'/></disk>`)
    .join('');
  return `<domain type='${o.type}'>
<name>${xmlAttr(o.name)}</name><uuid>${o.uuid}</uuid>
<metadata><lifeboat:instance xmlns:lifeboat='${LIFEBOAT_XMLNS}' project='${o.projectId}'/></metadata>
<memory unit='MiB'>${Math.max(16, Math.round(o.spec.flavor.ram))}</memory><vcpu>${Math.max(1, Math.round(o.spec.flavor.vcpus))}</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices>${disks}${o.spec.nics.map(interfaceXml).join('')}<video><model type='none'/></video><memballoon model='none'/></devices>
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

/**
 * A new domain for a restore: raw sparse disk files under `<restoreDir>/<uuid>/`, defined (not
 * started) in libvirt by publish() with the project's metadata, so it appears to the tenant only
 * then. The name is the requested one, or `<name>-<uuid prefix>` when a domain has it already
 * (a one-click restore asks for the source's own name).
 */
export async function createLibvirtInstance(deps: LibvirtRestoreDeps, projectId: string, spec: NewInstanceSpec, tag: RestoreTag): Promise<PreparedInstance> {
  const targets = checkSpec(projectId, spec, tag);
  const uuid = randomUUID();
  const dir = path.join(deps.restoreDir, uuid);
  const marker = path.join(deps.restoreDir, `${PARTIAL_PREFIX}${tag.restoreId}.${uuid}`);
  const sinks = new Map<string, FileDiskSink>();
  const files = targets.map((t) => ({ target: t, file: path.join(dir, `${t}.raw`) }));
  const removeAll = async () => {
    await Promise.all([...sinks.values()].map((s) => s.abort()));
    await rm(dir, { recursive: true, force: true });
    await unlink(marker).catch(() => undefined);
  };
  try {
    await mkdir(deps.restoreDir, { recursive: true });
    await writeFile(marker, '', { flag: 'wx' }); // first: a crash from here on leaves something cleanupRestore finds
    await mkdir(dir);
    for (const [i, d] of spec.disks.entries()) sinks.set(d.device, await FileDiskSink.create(files[i]!.file, d.size));
  } catch (e) {
    await removeAll();
    throw new UnavailableError(`Cannot create disks for the restored instance in the restore directory: ${errorMessage(e)}`, { cause: e });
  }
  const placeholder: Instance = { id: uuid, name: spec.name, project_id: projectId, status: 'BUILD', availability_zone: spec.availability_zone, flavor: spec.flavor, security_groups: [], nics: [], disks: spec.disks.map((d) => ({ device: d.device, format: 'raw' })), metadata: {} };
  let state: 'prepared' | 'published' | 'discarded' = 'prepared';
  return {
    instance: placeholder,
    sinks: sinks as Map<string, DiskSink>,
    publish: async () => {
      if (state !== 'prepared') throw new AppError('internal', `publish of a ${state} instance ${uuid}`);
      const pending = [...sinks.entries()].filter(([, s]) => s.status !== 'committed').map(([dev]) => dev);
      if (pending.length > 0) throw new AppError('internal', `Cannot publish instance ${uuid}: disks not committed: ${pending.join(', ')}`);
      const name = (await domainExists(deps.virsh, spec.name)) ? `${spec.name}-${uuid.slice(0, 8)}` : spec.name;
      const xmlDir = await mkdtemp(path.join(tmpdir(), 'lifeboat-libvirt-'));
      try {
        await writeFile(path.join(xmlDir, 'domain.xml'), domainXml({ uuid, name, type: await domainType(deps.virsh), projectId, spec, files }));
        await deps.virsh.run(['define', path.join(xmlDir, 'domain.xml')]);
      } finally {
        await rm(xmlDir, { recursive: true, force: true });
      }
      state = 'published';
      await unlink(marker).catch(() => undefined);
      deps.log.info({ instance: uuid, project: projectId }, 'restored domain defined');
      return (await deps.lookup(uuid)) ?? { ...placeholder, name, status: 'SHUTOFF' };
    },
    discard: async () => {
      if (state !== 'prepared') return;
      state = 'discarded';
      await removeAll();
    },
  };
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
