import { randomBytes } from 'node:crypto';
import { chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Instance } from '../../domain/instance.js';
import { UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { NbdClient } from '../../nbd/client.js';
import { nbdDiskSource } from '../../nbd/disk-source.js';
import { BASE_ALLOCATION, dirtyBitmapContext } from '../../nbd/protocol.js';
import type { BackupDisk, BackupOutcome, BackupSession, Checkpoint, DiskSource } from '../platform.js';
import { counted, type BackupReadStats } from './stats.js';
import { parseBackupExports, parseCheckpointXml, xmlAttr, type DomainDisk, type DomainInfo } from './domain-xml.js';
import { isNoDomain, LibvirtError, type Virsh } from './virsh.js';
import { BitmapLedger, removeStaleBitmaps } from './bitmaps.js';

/** Checkpoints Lifeboat creates are named `lifeboat-…`; others (an operator's) are never touched. */
export const CHECKPOINT_PREFIX = 'lifeboat-';

/** What Lifeboat keeps of a checkpoint (Checkpoint.state): libvirt's XML to redefine it, and the disk sizes it saw. */
export interface CheckpointState {
  v: 1;
  xml: string;
  sizes: Record<string, number>;
}

export interface LibvirtBackupDeps {
  virsh: Virsh;
  /** Where QEMU creates the NBD socket and scratch files (must be writable by QEMU's user). */
  scratchDir: string;
  log: Logger;
  onStats?: (domainUuid: string, stats: BackupReadStats) => void;
}

/** The plan of one pull job: which disks go incremental and why not. */
export interface Plan {
  base: { name: string; state: CheckpointState } | null;
  warnings: string[];
}

export const isBitmapCapable = (d: DomainDisk) => d.format === 'qcow2';

function parseState(c: Checkpoint): CheckpointState | null {
  try {
    const s = JSON.parse(c.state ?? '') as Partial<CheckpointState>;
    if (s.v !== 1 || typeof s.xml !== 'string' || !s.sizes || typeof s.sizes !== 'object') return null;
    return s as CheckpointState;
  } catch {
    return null;
  }
}

/** Lifeboat's checkpoints that libvirt still has metadata for (left by a crash). */
async function lifeboatCheckpoints(virsh: Virsh, uuid: string): Promise<string[]> {
  const out = await virsh.run(['checkpoint-list', uuid, '--name']);
  return out
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(CHECKPOINT_PREFIX));
}

/**
 * Decides whether the base checkpoint can be trusted: its state parses, names the same
 * checkpoint, covers exactly the current qcow2 disks at the same sizes. Anything else → full
 * with a warning (never an incremental from a bitmap we cannot trust).
 */
export function checkBase(base: Checkpoint | null, dom: DomainInfo, sizes: Map<string, number>): Plan {
  if (!base) return { base: null, warnings: [] };
  const restart = (why: string): Plan => ({ base: null, warnings: [`Instance ${dom.name}: ${why}; the disks were read in full and a new checkpoint chain started`] });
  const state = parseState(base);
  const parsed = state ? parseCheckpointXml(state.xml) : null;
  if (!state || !parsed || parsed.name !== base.name || !base.name.startsWith(CHECKPOINT_PREFIX)) return restart('the recorded checkpoint is unusable');
  if (parsed.domainUuid !== null && parsed.domainUuid !== dom.uuid) return restart('the recorded checkpoint belongs to another domain');
  const qcow2 = dom.disks.filter(isBitmapCapable).map((d) => d.target);
  if (qcow2.length === 0) return restart('no disk can hold a dirty bitmap');
  if ([...parsed.bitmapDisks].sort().join() !== [...qcow2].sort().join()) return restart('the disks changed since the last checkpoint');
  for (const t of qcow2) if (state.sizes[t] !== sizes.get(t)) return restart(`disk ${t} was resized since the last checkpoint`);
  const warnings = dom.disks.filter((d) => !isBitmapCapable(d)).map((d) => `Instance ${dom.name}: disk ${d.target} (${d.format}) cannot track changes and was read in full`);
  return { base: { name: base.name, state }, warnings };
}

export function checkpointXml(name: string, disks: DomainDisk[]): string {
  const items = disks.map((d) => `<disk name='${xmlAttr(d.target)}' checkpoint='${isBitmapCapable(d) ? 'bitmap' : 'no'}'/>`).join('');
  return `<domaincheckpoint><name>${xmlAttr(name)}</name><disks>${items}</disks></domaincheckpoint>`;
}

function backupXml(socket: string, scratch: (d: DomainDisk) => string, disks: DomainDisk[], base: string | null): string {
  const items = disks
    .map((d) => {
      const mode = base && isBitmapCapable(d) ? `backupmode='incremental' incremental='${xmlAttr(base)}'` : `backupmode='full'`;
      return `<disk name='${xmlAttr(d.target)}' backup='yes' type='file' ${mode}><scratch file='${xmlAttr(scratch(d))}'/></disk>`;
    })
    .join('');
  return `<domainbackup mode='pull'><server transport='unix' socket='${xmlAttr(socket)}'/><disks>${items}</disks></domainbackup>`;
}

const BROKEN_CHAIN_RE = /checkpoint inconsistent|missing or broken bitmap|not found|no checkpoint|bitmap/i;

/**
 * One pull-mode backup of a running domain (libvirt README §7): all disks in one job, a new
 * checkpoint taken atomically at backup-begin, each disk an NBD export read through our client.
 * Checkpoint metadata lives in libvirt only during the job: the base is redefined from
 * Lifeboat's copy before, and every Lifeboat checkpoint's metadata is removed in end(). Every
 * bitmap but the trusted base is removed before the job begins (bitmaps.ts).
 */
export async function beginLibvirtBackup(deps: LibvirtBackupDeps, instance: Instance, dom: DomainInfo, baseCheckpoint: Checkpoint | null): Promise<BackupSession> {
  const { virsh, log } = deps;
  const uuid = dom.uuid;
  const sizes = await diskSizes(virsh, uuid, dom.disks);
  let plan = checkBase(baseCheckpoint, dom, sizes);
  await abortStaleJob(virsh, uuid, log);
  await dropLeftoverCheckpoints(virsh, uuid, plan.base?.name ?? null, log);
  // One job per domain at a time: the domain's own directory holds only this job's files.
  const jobDir = await domainScratchDir(deps.scratchDir, uuid);
  const xmlDir = await mkdtemp(path.join(tmpdir(), 'lifeboat-libvirt-'));
  const ledger = new BitmapLedger(deps.scratchDir, uuid);
  const tag = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const newCp = dom.disks.some(isBitmapCapable) ? `${CHECKPOINT_PREFIX}${tag}` : null;
  const socket = path.join(jobDir, 'nbd.sock');
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw new ValidationError('LIFEBOAT_LIBVIRT_SCRATCH_DIR is too long for a unix socket path (at most 60 characters)');
  const scratch = (d: DomainDisk) => path.join(jobDir, `${d.target}.scratch`);
  const cleanupFiles = async () => {
    await rm(xmlDir, { recursive: true, force: true });
    await rm(jobDir, { recursive: true, force: true });
  };
  // Bitmaps of a chain that is not continued: the untrusted base's, and whatever the ledger holds.
  const dropStale = () =>
    removeStaleBitmaps({ virsh, uuid, disks: dom.disks, ledger, keep: plan.base?.name ?? null, untrusted: !plan.base && baseCheckpoint?.name.startsWith(CHECKPOINT_PREFIX) ? baseCheckpoint.name : null, xmlDir, log });
  try {
    if (plan.base) plan = await redefineBase(virsh, uuid, xmlDir, plan, dom);
    await dropStale();
    const begin = async (base: string | null) => {
      await writeFile(path.join(xmlDir, 'backup.xml'), backupXml(socket, scratch, dom.disks, base));
      const args = ['backup-begin', uuid, path.join(xmlDir, 'backup.xml')];
      if (newCp) {
        await writeFile(path.join(xmlDir, 'checkpoint.xml'), checkpointXml(newCp, dom.disks));
        args.push(path.join(xmlDir, 'checkpoint.xml'));
        await ledger.add(newCp); // before it exists: a crash right after backup-begin leaves it known
      }
      await virsh.run(args);
    };
    try {
      await begin(plan.base?.name ?? null);
    } catch (e) {
      if (!plan.base || !(e instanceof LibvirtError) || !BROKEN_CHAIN_RE.test(e.detail)) throw e;
      log.warn({ domain: uuid, err: e.detail }, 'libvirt refused the incremental; starting a new checkpoint chain');
      await deleteCheckpoint(virsh, uuid, plan.base.name, 'metadata', log);
      plan = { base: null, warnings: [`Instance ${dom.name}: the last checkpoint could not be used (${e.detail}); the disks were read in full and a new checkpoint chain started`] };
      await dropStale();
      await begin(null);
    }
  } catch (e) {
    if (plan.base) await deleteCheckpoint(virsh, uuid, plan.base.name, 'metadata', log);
    await cleanupFiles();
    throw e;
  }
  return openSession(deps, { instance, dom, plan, newCp, socket, sizes, cleanupFiles, xmlDir, ledger });
}

interface Begun {
  instance: Instance;
  dom: DomainInfo;
  plan: Plan;
  newCp: string | null;
  socket: string;
  sizes: Map<string, number>;
  xmlDir: string;
  ledger: BitmapLedger;
  cleanupFiles: () => Promise<void>;
}

/** Connects to every export and builds the session; on failure ends the job (all or none). */
async function openSession(deps: LibvirtBackupDeps, b: Begun): Promise<BackupSession> {
  const { virsh, log } = deps;
  const uuid = b.dom.uuid;
  const clients: NbdClient[] = [];
  const stats: BackupReadStats = { mode: b.plan.base ? 'incremental' : 'full', bytesRead: 0 };
  const disks: BackupDisk[] = [];
  let checkpoint: Checkpoint | null = null;
  const finish = async (outcome: BackupOutcome) => {
    await Promise.all(clients.map((c) => c.close().catch(() => c.destroy())));
    await virsh.run(['domjobabort', uuid]).catch((e: unknown) => log.warn({ domain: uuid, err: errorMessage(e) }, 'ending the libvirt backup job failed'));
    // The bitmap that is no base from now on goes (the chain stays one bitmap long): the old
    // base once the new checkpoint is committed, else the new one. A bitmap whose removal
    // failed stays in the ledger; the next backup removes it.
    const [keep, drop] = outcome === 'committed' ? [b.newCp, b.plan.base?.name ?? null] : [b.plan.base?.name ?? null, b.newCp];
    if (keep) await deleteCheckpoint(virsh, uuid, keep, 'metadata', log);
    if (outcome === 'committed' && b.newCp) await b.ledger.committed(b.newCp);
    if (drop && (await deleteCheckpoint(virsh, uuid, drop, 'all', log))) await b.ledger.remove(drop);
    await b.cleanupFiles();
  };
  try {
    const exports = parseBackupExports(await virsh.run(['backup-dumpxml', uuid]));
    for (const disk of b.dom.disks) {
      const ex = exports.find((x) => x.disk === disk.target);
      if (!ex) throw new LibvirtError('backup-begin', `disk ${disk.target} is not exported`);
      const incremental = b.plan.base !== null && isBitmapCapable(disk) && ex.exportBitmap !== null;
      const context = incremental ? dirtyBitmapContext(ex.exportBitmap!) : null;
      const client = await NbdClient.connect({ socketPath: b.socket, exportName: ex.exportName, metaContexts: context ? [BASE_ALLOCATION, context] : [BASE_ALLOCATION] });
      clients.push(client);
      const source = nbdDiskSource(client, { alignment: 1, ...(context ? { dirty: { checkpoint: b.plan.base!.name, context } } : {}) });
      disks.push({ disk: instanceDisk(b.instance, disk), source: counted(namingTheDomain(source, virsh, b.dom), stats) });
    }
    if (b.newCp) {
      const xml = await virsh.run(['checkpoint-dumpxml', uuid, b.newCp]);
      checkpoint = { name: b.newCp, state: JSON.stringify({ v: 1, xml, sizes: Object.fromEntries(b.sizes) } satisfies CheckpointState) };
    }
  } catch (e) {
    await finish('failed');
    throw e;
  }
  let ended = false;
  return {
    disks,
    checkpoint,
    warnings: b.plan.warnings,
    end: async (outcome) => {
      if (ended) return;
      ended = true;
      await finish(outcome).catch((e: unknown) => log.warn({ domain: uuid, err: errorMessage(e) }, 'libvirt backup cleanup failed'));
      deps.onStats?.(uuid, stats);
    },
  };
}

/**
 * Why a domain can no longer be read, naming it; null while it still runs (or libvirt cannot
 * say). Called after a failure: libvirt learns of a QEMU that died (monitor EOF) a moment after
 * our NBD connection broke, so a domain still "running" is asked again for up to `settleMs`.
 */
export async function vanishedError(virsh: Virsh, dom: DomainInfo, settleMs = 3000): Promise<UnavailableError | null> {
  const deadline = Date.now() + settleMs;
  for (;;) {
    const state = await virsh.run(['domstate', dom.uuid]).then(
      (out) => out.trim(),
      (err: unknown) => (isNoDomain(err) ? null : 'unknown'),
    );
    if (state === null) return new UnavailableError(`Instance ${dom.name} (${dom.uuid}) disappeared during the backup`);
    if (state !== 'running' && state !== 'unknown') return new UnavailableError(`Instance ${dom.name} (${dom.uuid}) stopped during the backup (${state})`);
    if (Date.now() >= deadline) return null;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A read that fails because the domain went away (undefined, destroyed, crashed) fails with a
 * message naming the domain instead of the NBD error it causes; other failures pass unchanged.
 */
function namingTheDomain(source: DiskSource, virsh: Virsh, dom: DomainInfo): DiskSource {
  const explain = async (e: unknown): Promise<never> => {
    throw (await vanishedError(virsh, dom)) ?? e;
  };
  const read = source.read.bind(source);
  const changed = source.changedExtentsSince?.bind(source);
  const allocated = source.allocatedExtents?.bind(source);
  return Object.assign(source, {
    read: (buf: Buffer, offset: number, length: number, position: number) => read(buf, offset, length, position).catch(explain),
    ...(changed ? { changedExtentsSince: (base: string) => changed(base).catch(explain) } : {}),
    ...(allocated ? { allocatedExtents: () => allocated().catch(explain) } : {}),
  });
}

function instanceDisk(instance: Instance, d: DomainDisk): Instance['disks'][number] {
  return instance.disks.find((x) => x.device === `/dev/${d.target}`) ?? { device: `/dev/${d.target}`, format: d.format };
}

/** Recreates the base checkpoint's libvirt metadata from Lifeboat's copy; failure → full. */
async function redefineBase(virsh: Virsh, uuid: string, xmlDir: string, plan: Plan, dom: DomainInfo): Promise<Plan> {
  const base = plan.base!;
  const file = path.join(xmlDir, 'base-checkpoint.xml');
  await writeFile(file, withoutParent(base.state.xml));
  try {
    // --redefine-validate: libvirt checks that every disk still has the bitmap and that it is
    // consistent (after an unclean QEMU exit, every bitmap is 'inconsistent').
    await virsh.run(['checkpoint-create', uuid, file, '--redefine', '--redefine-validate']);
    return plan;
  } catch (e) {
    const detail = e instanceof LibvirtError ? e.detail : errorMessage(e);
    const why = /inconsistent|missing or broken/i.test(detail) ? 'the dirty bitmap of the last checkpoint is missing or broken (e.g. after an unclean QEMU exit)' : 'the last checkpoint could not be restored in libvirt';
    return { base: null, warnings: [`Instance ${dom.name}: ${why} (${detail}); the disks were read in full and a new checkpoint chain started`] };
  }
}

/**
 * The saved XML names the checkpoint's parent (the base of its own backup), which Lifeboat
 * removed since; --redefine-validate refuses a missing parent, and the chain is one bitmap
 * long anyway. Only the head of the document (before the embedded domain XML) is looked at.
 */
function withoutParent(xml: string): string {
  const cut = xml.search(/<domain[\s>]/);
  const head = cut < 0 ? xml : xml.slice(0, cut);
  return head.replace(/<parent>\s*<name>[^<]*<\/name>\s*<\/parent>\s*/, '') + (cut < 0 ? '' : xml.slice(cut));
}

/** Longest unix socket path (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * `<scratchDir>/<uuid>/`, owned like the scratch dir (QEMU's user must create the socket and
 * scratch files there) and emptied: called after any stale job of the domain was aborted, so
 * what is left there (a dead worker's socket or scratch files) belongs to no one.
 */
async function domainScratchDir(scratchDir: string, uuid: string): Promise<string> {
  const dir = path.join(scratchDir, uuid);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o750 });
  const owner = await stat(scratchDir);
  await chown(dir, owner.uid, owner.gid);
  return dir;
}

/**
 * Metadata of Lifeboat checkpoints left in libvirt by a worker that died between begin and
 * end. The base keeps its bitmap (it is redefined next); any other is never a base again
 * (an uncommitted backup's, or older than the base): its bitmap is removed too.
 */
async function dropLeftoverCheckpoints(virsh: Virsh, uuid: string, base: string | null, log: Logger): Promise<void> {
  const leftovers = await lifeboatCheckpoints(virsh, uuid);
  if (leftovers.length > 0) log.warn({ domain: uuid, checkpoints: leftovers }, 'removing checkpoints an earlier backup left in libvirt');
  // Newest first (names sort by creation time): a child goes before its parent.
  for (const cp of leftovers.sort().reverse()) await deleteCheckpoint(virsh, uuid, cp, cp === base ? 'metadata' : 'all', log);
}

/** Virtual size of every disk (the checkpoint records them: a resize breaks the chain). */
async function diskSizes(virsh: Virsh, uuid: string, disks: DomainDisk[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const d of disks) {
    const out = await virsh.run(['domblkinfo', uuid, d.target]);
    const m = /^Capacity:\s+(\d+)/m.exec(out);
    if (!m) throw new LibvirtError('domblkinfo', `no capacity reported for disk ${d.target}`);
    sizes.set(d.target, Number(m[1]));
  }
  return sizes;
}

/**
 * What a backup whose worker died left of a running domain (the reconciler calls this): the
 * open pull job, Lifeboat checkpoint metadata (metadata only: which bitmap is the base is the
 * next backup's decision, and every bitmap is in the ledger), the job directory with the NBD
 * socket and scratch files.
 */
export async function cleanupDeadBackup(deps: LibvirtBackupDeps, uuid: string): Promise<void> {
  await abortStaleJob(deps.virsh, uuid, deps.log);
  for (const cp of (await lifeboatCheckpoints(deps.virsh, uuid)).sort().reverse()) await deleteCheckpoint(deps.virsh, uuid, cp, 'metadata', deps.log);
  await rm(path.join(deps.scratchDir, uuid), { recursive: true, force: true });
}

/** A pull job left open by a dead worker would block backup-begin: end it. */
async function abortStaleJob(virsh: Virsh, uuid: string, log: Logger): Promise<void> {
  const info = await virsh.run(['domjobinfo', uuid]).catch(() => '');
  if (!/^Operation:\s+Backup/m.test(info)) return;
  log.warn({ domain: uuid }, 'ending a libvirt backup job left open by an earlier run');
  await virsh.run(['domjobabort', uuid]);
}

/** 'metadata': libvirt forgets it, the qcow2 bitmap stays; 'all': the bitmap goes too. Never throws; true when done. */
async function deleteCheckpoint(virsh: Virsh, uuid: string, name: string, what: 'metadata' | 'all', log: Logger): Promise<boolean> {
  try {
    await virsh.run(['checkpoint-delete', uuid, name, ...(what === 'metadata' ? ['--metadata'] : [])]);
    return true;
  } catch (e) {
    log.warn({ domain: uuid, checkpoint: name, err: errorMessage(e) }, 'deleting a libvirt checkpoint failed');
    if (what === 'all') await virsh.run(['checkpoint-delete', uuid, name, '--metadata']).catch(() => undefined);
    return false;
  }
}
