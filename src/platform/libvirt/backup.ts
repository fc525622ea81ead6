import { randomBytes } from 'node:crypto';
import { chown, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Instance } from '../../domain/instance.js';
import { UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { NbdClient } from '../../nbd/client.js';
import { nbdDiskSource } from '../../nbd/disk-source.js';
import { BASE_ALLOCATION, dirtyBitmapContext } from '../../nbd/protocol.js';
import type { BackupDisk, BackupOutcome, BackupSession, Checkpoint, DiskSource } from '../platform.js';
import { counted, newBackupTimings, timedSource, timedVirsh, type BackupReadStats, type BackupTimings } from './stats.js';
import { parseCheckpointXml, xmlAttr, type DomainDisk, type DomainInfo } from './domain-xml.js';
import { isNoDomain, LibvirtError, type Virsh } from './virsh.js';
import { BitmapLedger, removeBitmap, removeStaleBitmaps } from './bitmaps.js';
import { precreateScratch, removeScratch } from './scratch.js';
import { imageVirtualSize } from './disk-size.js';

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
export function checkBase(base: Checkpoint | null, dom: DomainInfo, sizes: Map<string, number> | null): Plan {
  if (!base) return { base: null, warnings: [] };
  const restart = (why: string): Plan => ({ base: null, warnings: [`Instance ${dom.name}: ${why}; the disks were read in full and a new checkpoint chain started`] });
  const state = parseState(base);
  const parsed = state ? parseCheckpointXml(state.xml) : null;
  if (!state || !parsed || parsed.name !== base.name || !base.name.startsWith(CHECKPOINT_PREFIX)) return restart('the recorded checkpoint is unusable');
  if (parsed.domainUuid !== null && parsed.domainUuid !== dom.uuid) return restart('the recorded checkpoint belongs to another domain');
  const qcow2 = dom.disks.filter(isBitmapCapable).map((d) => d.target);
  if (qcow2.length === 0) return restart('no disk can hold a dirty bitmap');
  if ([...parsed.bitmapDisks].sort().join() !== [...qcow2].sort().join()) return restart('the disks changed since the last checkpoint');
  // sizes null: not known yet (a speculative check; the caller checks again with them).
  if (sizes) for (const t of qcow2) if (state.sizes[t] !== sizes.get(t)) return restart(`disk ${t} was resized since the last checkpoint`);
  const warnings = dom.disks.filter((d) => !isBitmapCapable(d)).map((d) => `Instance ${dom.name}: disk ${d.target} (${d.format}) cannot track changes and was read in full`);
  return { base: { name: base.name, state }, warnings };
}

export function checkpointXml(name: string, disks: DomainDisk[]): string {
  const items = disks.map((d) => `<disk name='${xmlAttr(d.target)}' checkpoint='${isBitmapCapable(d) ? 'bitmap' : 'no'}'/>`).join('');
  return `<domaincheckpoint><name>${xmlAttr(name)}</name><disks>${items}</disks></domaincheckpoint>`;
}

/**
 * What each disk is exported as: the NBD export is named after the disk, and on an incremental
 * its dirty bitmap is `backup-<disk>`. The backup XML names both (the names libvirt picks when
 * none are given), so no `backup-dumpxml` is needed to learn them. Debian 12's libvirt 9.0
 * takes both attributes (domainbackup.rng) and its backup-dumpxml shows the names given.
 */
export function exportOf(d: DomainDisk, base: string | null): { exportName: string; exportBitmap: string | null } {
  return { exportName: d.target, exportBitmap: base && isBitmapCapable(d) ? `backup-${d.target}` : null };
}

function backupXml(socket: string, scratch: (d: DomainDisk) => string, disks: DomainDisk[], base: string | null): string {
  const items = disks
    .map((d) => {
      const { exportName, exportBitmap } = exportOf(d, base);
      const mode = exportBitmap ? `backupmode='incremental' incremental='${xmlAttr(base!)}' exportbitmap='${xmlAttr(exportBitmap)}'` : `backupmode='full'`;
      return `<disk name='${xmlAttr(d.target)}' backup='yes' type='file' exportname='${xmlAttr(exportName)}' ${mode}><driver type='qcow2'/><scratch file='${xmlAttr(scratch(d))}'/></disk>`;
    })
    .join('');
  return `<domainbackup mode='pull'><server transport='unix' socket='${xmlAttr(socket)}'/><disks>${items}</disks></domainbackup>`;
}

/**
 * The files backup-begin is handed: `backup.xml`, written for one base at a time (a write for
 * another base waits for the one before, so the file always holds whole XML for the last base
 * asked), and `checkpoint.xml` (the caller writes it).
 */
function beginFiles(xmlDir: string, xmlFor: (base: string | null) => string) {
  const backupPath = path.join(xmlDir, 'backup.xml');
  let last: { base: string | null; written: Promise<void> } | null = null;
  return {
    backupPath,
    checkpoint: path.join(xmlDir, 'checkpoint.xml'),
    /** Resolves once backup.xml holds the XML for `base`. */
    backup(base: string | null): Promise<void> {
      if (last?.base !== base) {
        const before = last?.written.catch(() => undefined) ?? Promise.resolve();
        last = { base, written: before.then(() => writeFile(backupPath, xmlFor(base))) };
      }
      return last.written;
    },
  };
}

const BROKEN_CHAIN_RE = /checkpoint inconsistent|missing or broken bitmap|not found|no checkpoint|bitmap/i;

/**
 * One pull-mode backup of a running domain (libvirt README §7): all disks in one job, a new
 * checkpoint taken atomically at backup-begin, each disk an NBD export read through our client.
 * Checkpoint metadata lives in libvirt only during the job: the base is redefined from
 * Lifeboat's copy before, and every Lifeboat checkpoint's metadata is removed in end(). Every
 * bitmap but the trusted base is removed before the job begins (bitmaps.ts).
 */
export async function beginLibvirtBackup(untimed: LibvirtBackupDeps, instance: Instance, dom: DomainInfo, baseCheckpoint: Checkpoint | null): Promise<BackupSession> {
  const timings = newBackupTimings();
  const began = performance.now();
  const deps = { ...untimed, virsh: timedVirsh(untimed.virsh, timings) };
  const { virsh, log } = deps;
  const uuid = dom.uuid;
  // One job per domain at a time: the domain's own directory holds only this job's files.
  const jobDir = path.join(deps.scratchDir, uuid);
  const socket = path.join(jobDir, 'nbd.sock');
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw new ValidationError('LIFEBOAT_LIBVIRT_SCRATCH_DIR is too long for a unix socket path (at most 60 characters)');
  const tag = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  // Named per job: a stale job's end (libvirt removes the scratch files it made) never takes ours.
  const scratch = (d: DomainDisk) => path.join(jobDir, `${d.target}.${tag}.scratch`);
  const cleanupFiles = async () => {
    await rm(xmlDir, { recursive: true, force: true });
    await rm(jobDir, { recursive: true, force: true });
  };
  const [xmlDir] = await Promise.all([domainXmlDir(deps.scratchDir, uuid), domainScratchDir(deps.scratchDir, uuid)]);
  const sizesP = diskSizes(virsh, uuid, dom.disks);
  const reuseScratch = precreateScratch(jobDir, dom.disks, sizesP, scratch, log);
  const ledger = new BitmapLedger(deps.scratchDir, uuid);
  const newCp = dom.disks.some(isBitmapCapable) ? `${CHECKPOINT_PREFIX}${tag}` : null;
  const earlyPlan = checkBase(baseCheckpoint, dom, null);
  const files = beginFiles(xmlDir, (base) => backupXml(socket, scratch, dom.disks, base));
  // Written while libvirt answers prepare's questions: the backup XML for the base the early
  // check expects, the new checkpoint's XML, and its ledger entry (before it exists: a crash
  // right after backup-begin leaves it known; this backup's dropStale keeps it).
  const ahead = Promise.all([files.backup(earlyPlan.base?.name ?? null), newCp ? writeFile(files.checkpoint, checkpointXml(newCp, dom.disks)) : null, newCp ? ledger.add(newCp) : null]);
  ahead.catch(() => undefined); // awaited below
  // From here on plan.base set ⇔ the base's metadata is in libvirt (removed on every failure).
  let plan: Plan;
  let sizes: Map<string, number>;
  try {
    ({ plan, sizes } = await prepare(virsh, uuid, dom, baseCheckpoint, earlyPlan, xmlDir, sizesP, log));
  } catch (e) {
    await Promise.all([reuseScratch, ahead.catch(() => undefined)]);
    if (newCp) await ledger.remove(newCp).catch(() => undefined); // never created
    await cleanupFiles();
    throw e;
  }
  // Bitmaps of a chain that is not continued: the untrusted base's, and whatever the ledger holds.
  const dropStale = () =>
    removeStaleBitmaps({ virsh, uuid, disks: dom.disks, ledger, keep: plan.base?.name ?? null, fresh: newCp, untrusted: !plan.base && baseCheckpoint?.name.startsWith(CHECKPOINT_PREFIX) ? baseCheckpoint.name : null, xmlDir, log });
  try {
    await ahead;
    await dropStale();
    const begin = async (base: string | null, reuse: boolean) => {
      await files.backup(base);
      await virsh.run(['backup-begin', uuid, files.backupPath, ...(reuse ? ['--reuse-external'] : []), ...(newCp ? [files.checkpoint] : [])]);
    };
    try {
      await begin(plan.base?.name ?? null, await reuseScratch);
    } catch (e) {
      if (!plan.base || !(e instanceof LibvirtError) || !BROKEN_CHAIN_RE.test(e.detail)) throw e;
      log.warn({ domain: uuid, err: e.detail }, 'libvirt refused the incremental; starting a new checkpoint chain');
      await deleteCheckpoint(virsh, uuid, plan.base.name, 'metadata', log);
      plan = { base: null, warnings: [brokenChainWarning(dom, e.detail, 'the last checkpoint could not be used')] };
      await Promise.all([dropStale(), removeScratch(dom.disks, scratch)]); // libvirt makes fresh ones
      await begin(null, false);
    }
  } catch (e) {
    if (plan.base) await deleteCheckpoint(virsh, uuid, plan.base.name, 'metadata', log);
    await reuseScratch; // settled (never rejects): no scratch write races the removal
    await cleanupFiles();
    throw e;
  }
  const session = await openSession(deps, { instance, dom, plan, newCp, socket, jobDir, sizes, cleanupFiles, xmlDir, ledger, timings });
  timings.beginMs = performance.now() - began;
  return session;
}

/**
 * The begin's first round trips, at once (the virsh pool has several shells): the disk sizes,
 * leftover Lifeboat checkpoints, a stale job and, when the base passes every check but the
 * sizes (not known yet), the base's redefinition. That speculative redefine stands when
 * nothing needed cleaning first: no stale job and no leftover but the base itself (which the
 * list may show because of our own redefine). Otherwise it is undone and the serial order
 * runs: leftovers dropped, then the base redefined. Returns the plan; plan.base set ⇔ its
 * metadata is in libvirt now. On a failure no metadata of ours is left.
 */
async function prepare(virsh: Virsh, uuid: string, dom: DomainInfo, baseCheckpoint: Checkpoint | null, earlyPlan: Plan, xmlDir: string, diskSizes: Promise<Map<string, number>>, log: Logger): Promise<{ plan: Plan; sizes: Map<string, number> }> {
  const early = earlyPlan.base;
  const spec = early ? redefineBase(virsh, uuid, xmlDir, earlyPlan, dom) : Promise.resolve(null);
  const [sizesR, leftoversR, staleR, specR] = await Promise.allSettled([diskSizes, lifeboatCheckpoints(virsh, uuid), abortStaleJob(virsh, uuid, log), spec]);
  const specPlan = specR.status === 'fulfilled' ? specR.value : null;
  const redefined = specPlan?.base ? early : null; // our metadata in libvirt now
  const undo = async () => {
    if (redefined) await deleteCheckpoint(virsh, uuid, redefined.name, 'metadata', log);
  };
  for (const r of [sizesR, leftoversR, staleR]) {
    if (r.status === 'rejected') {
      await undo();
      throw r.reason;
    }
  }
  const sizes = (sizesR as PromiseFulfilledResult<Map<string, number>>).value;
  const others = (leftoversR as PromiseFulfilledResult<string[]>).value.filter((n) => n !== redefined?.name);
  const staleJob = (staleR as PromiseFulfilledResult<boolean>).value;
  let plan = checkBase(baseCheckpoint, dom, sizes);
  // The redefine's outcome stands: the plan with sizes (same base and warnings), or its fallback.
  if (plan.base && specPlan && others.length === 0 && !staleJob) return { plan: specPlan.base ? plan : specPlan, sizes };
  await undo();
  await dropLeftoverCheckpoints(virsh, uuid, others, plan.base?.name ?? null, log);
  if (plan.base) plan = await redefineBase(virsh, uuid, xmlDir, plan, dom);
  return { plan, sizes };
}

interface Begun {
  instance: Instance;
  dom: DomainInfo;
  plan: Plan;
  newCp: string | null;
  socket: string;
  /** The socket's and scratch files' directory: removed once the job has ended. */
  jobDir: string;
  sizes: Map<string, number>;
  xmlDir: string;
  ledger: BitmapLedger;
  cleanupFiles: () => Promise<void>;
  timings: BackupTimings;
}

/** Connects to every export and builds the session; on failure ends the job (all or none). */
async function openSession(deps: LibvirtBackupDeps, b: Begun): Promise<BackupSession> {
  const { virsh, log } = deps;
  const uuid = b.dom.uuid;
  const clients: NbdClient[] = [];
  const stats: BackupReadStats = { mode: b.plan.base ? 'incremental' : 'full', bytesRead: 0 };
  const disks: BackupDisk[] = [];
  const readSpan = { first: null as number | null };
  let checkpoint: Checkpoint | null = null;
  // Ends the exports: once every disk is read (readsDone, while the snapshot is still being
  // committed) or at the latest in finish(). At once: ending the job ends the exports, and QEMU
  // closes our connections either way (a client's polite close then returns as soon as its
  // socket is closed). libvirt then forgets the new checkpoint, whatever the outcome: its
  // metadata goes either way (only its bitmap waits for the outcome, in finish).
  let released: Promise<void> | null = null;
  let newCpForgotten = false;
  const release = () =>
    (released ??= Promise.all([
      ...clients.map((c) => c.close().catch(() => c.destroy())),
      endBackupJob(virsh, uuid).then(
        async () => {
          // The socket and scratch files are QEMU's no more (cleanupFiles tries again in finish).
          const forgotten = b.newCp ? deleteCheckpoint(virsh, uuid, b.newCp, 'metadata', log) : false;
          await rm(b.jobDir, { recursive: true, force: true }).catch(() => undefined);
          newCpForgotten = await forgotten;
        },
        (e: unknown) => log.warn({ domain: uuid, err: errorMessage(e) }, 'ending the libvirt backup job failed'),
      ),
    ]).then(() => undefined));
  const finish = async (outcome: BackupOutcome) => {
    await release();
    const base = b.plan.base?.name ?? null;
    // The bitmap that is no base from now on goes (the chain stays one bitmap long): the old
    // base once the new checkpoint is committed, else the new one. A bitmap whose removal
    // failed stays in the ledger; the next backup removes it.
    if (outcome === 'committed') {
      if (b.newCp && !newCpForgotten) await deleteCheckpoint(virsh, uuid, b.newCp, 'metadata', log);
      if (b.newCp) await b.ledger.committed(b.newCp);
      if (base && (await deleteCheckpoint(virsh, uuid, base, 'all', log))) await b.ledger.remove(base);
    } else {
      if (base) await deleteCheckpoint(virsh, uuid, base, 'metadata', log);
      // Without its metadata libvirt no longer knows the new bitmap: removeBitmap names it again.
      const dropped = b.newCp && (newCpForgotten ? await removeBitmap(virsh, uuid, b.newCp, b.dom.disks, b.xmlDir, log) : await deleteCheckpoint(virsh, uuid, b.newCp, 'all', log));
      if (b.newCp && dropped) await b.ledger.remove(b.newCp);
    }
    // Committed: the new checkpoint is the only base from now on. Any other ledger bitmap (the
    // last committed one a full kept while it ran, one whose removal failed) goes now rather
    // than in the next backup's begin, where it would delay the snapshot.
    if (outcome === 'committed' && b.newCp) await removeStaleBitmaps({ virsh, uuid, disks: b.dom.disks, ledger: b.ledger, keep: b.newCp, untrusted: null, xmlDir: b.xmlDir, log }).catch((e: unknown) => log.warn({ domain: uuid, err: errorMessage(e) }, 'removing stale dirty bitmaps failed'));
    await b.cleanupFiles();
  };
  try {
    const connectDisk = async (disk: DomainDisk): Promise<BackupDisk> => {
      const ex = exportOf(disk, b.plan.base?.name ?? null);
      const context = ex.exportBitmap ? dirtyBitmapContext(ex.exportBitmap) : null;
      const client = await NbdClient.connect({ socketPath: b.socket, exportName: ex.exportName, metaContexts: context ? [BASE_ALLOCATION, context] : [BASE_ALLOCATION] });
      clients.push(client);
      const source = nbdDiskSource(client, { alignment: 1, ...(context ? { dirty: { checkpoint: b.plan.base!.name, context } } : {}) });
      return { disk: instanceDisk(b.instance, disk), source: timedSource(counted(namingTheDomain(source, virsh, b.dom), stats), b.timings, readSpan) };
    };
    // Every disk's NBD handshake and the checkpoint's XML at once; all settle before a failure
    // is thrown, so finish() closes every client that connected.
    const cpXml = b.newCp ? virsh.run(['checkpoint-dumpxml', uuid, b.newCp]) : null;
    cpXml?.catch(() => undefined);
    const connected = await Promise.allSettled(b.dom.disks.map(connectDisk));
    for (const r of connected) {
      if (r.status === 'rejected') throw r.reason;
      disks.push(r.value);
    }
    if (b.newCp && cpXml) checkpoint = { name: b.newCp, state: JSON.stringify({ v: 1, xml: await cpXml, sizes: Object.fromEntries(b.sizes) } satisfies CheckpointState) };
  } catch (e) {
    await finish('failed');
    throw e;
  }
  let ended = false;
  return {
    disks,
    checkpoint,
    warnings: b.plan.warnings,
    readsDone: () => void release(),
    end: async (outcome) => {
      if (ended) return;
      ended = true;
      const t0 = performance.now();
      await finish(outcome).catch((e: unknown) => log.warn({ domain: uuid, err: errorMessage(e) }, 'libvirt backup cleanup failed'));
      b.timings.endMs = performance.now() - t0;
      log.info({ domain: uuid, outcome, ...stats, timings: roundTimings(b.timings) }, 'libvirt backup timings');
      deps.onStats?.(uuid, stats);
    },
  };
}

/** Whole milliseconds, for the log. */
function roundTimings(t: BackupTimings): BackupTimings {
  const r = (x: number) => Math.round(x);
  const virsh = Object.fromEntries(Object.entries(t.virsh).map(([op, v]) => [op, { n: v.n, ms: r(v.ms) }]));
  return { virsh, beginMs: r(t.beginMs), endMs: r(t.endMs), blockStatusMs: r(t.blockStatusMs), reads: t.reads, readSpanMs: r(t.readSpanMs) };
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

/**
 * Recreates the base checkpoint's libvirt metadata from Lifeboat's copy; failure → full.
 * Metadata only (no --redefine-validate, which asks QEMU for every disk's bitmaps while
 * holding the domain's job, ~15 ms here): backup-begin asks QEMU anyway and refuses an
 * incremental from a missing or inconsistent bitmap (QEMU cannot merge one; after an unclean
 * QEMU exit every bitmap is inconsistent), and then the job starts again as a full.
 */
async function redefineBase(virsh: Virsh, uuid: string, xmlDir: string, plan: Plan, dom: DomainInfo): Promise<Plan> {
  const base = plan.base!;
  const file = path.join(xmlDir, 'base-checkpoint.xml');
  await writeFile(file, redefinable(base.state.xml));
  try {
    await virsh.run(['checkpoint-create', uuid, file, '--redefine']);
    return plan;
  } catch (e) {
    return { base: null, warnings: [brokenChainWarning(dom, e instanceof LibvirtError ? e.detail : errorMessage(e), 'the last checkpoint could not be restored in libvirt')] };
  }
}

/** The warning of a chain that libvirt refused to continue (`otherwise`: why, when the bitmap is not the reason). */
function brokenChainWarning(dom: DomainInfo, detail: string, otherwise: string): string {
  const why = /inconsistent|missing or broken/i.test(detail) ? 'the dirty bitmap of the last checkpoint is missing or broken (e.g. after an unclean QEMU exit)' : otherwise;
  return `Instance ${dom.name}: ${why} (${detail}); the disks were read in full and a new checkpoint chain started`;
}

/**
 * What is redefined of the saved XML: its head only. The saved XML names the checkpoint's
 * parent (the base of its own backup), which Lifeboat removed since; libvirt refuses a
 * missing parent, and the chain is one bitmap long anyway. The embedded domain XML is left
 * out: libvirt parses and checks a whole domain definition for it (most of the redefine's
 * time), and an incremental needs only the checkpoint's disks and bitmaps.
 */
function redefinable(xml: string): string {
  const cut = xml.search(/<domain[\s>]/);
  const end = xml.lastIndexOf('</domain>');
  const head = cut < 0 ? xml : xml.slice(0, cut);
  return head.replace(/<parent>\s*<name>[^<]*<\/name>\s*<\/parent>\s*/, '') + (cut < 0 ? '' : end > cut ? xml.slice(end + '</domain>'.length) : xml.slice(cut));
}

/** Longest unix socket path (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * `<scratch dir>/<uuid>.xml/`: the XML files Lifeboat hands virsh during one backup of the
 * domain (virsh reads them; QEMU never does). Beside the job directory rather than a temp dir
 * elsewhere, so that when a worker dies mid-backup the reconciler (cleanupDeadBackup) or the
 * domain's next backup removes them; a temp dir under /tmp stayed for good. Emptied here: one
 * backup per domain at a time.
 */
function xmlDirOf(scratchDir: string, uuid: string): string {
  return path.join(scratchDir, `${uuid}.xml`);
}

async function domainXmlDir(scratchDir: string, uuid: string): Promise<string> {
  const dir = xmlDirOf(scratchDir, uuid);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

/**
 * `<scratchDir>/<uuid>/`, owned like the scratch dir (QEMU's user must create the socket and
 * reads and writes the scratch files there) and emptied at the start of each backup, beside the
 * check for a stale job of the domain: a stale QEMU job keeps its open files even once they are
 * unlinked, its socket is gone before backup-begin makes ours (the stale job is ended first),
 * and scratch file names carry the job's tag, so libvirt's cleanup of a stale job's own scratch
 * files never removes this job's.
 */
async function domainScratchDir(scratchDir: string, uuid: string): Promise<void> {
  const dir = path.join(scratchDir, uuid);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o750 });
  const owner = await stat(scratchDir);
  await chown(dir, owner.uid, owner.gid);
}

/**
 * Metadata of Lifeboat checkpoints left in libvirt by a worker that died between begin and
 * end. The base keeps its bitmap (it is redefined next); any other is never a base again
 * (an uncommitted backup's, or older than the base): its bitmap is removed too.
 */
async function dropLeftoverCheckpoints(virsh: Virsh, uuid: string, leftovers: string[], base: string | null, log: Logger): Promise<void> {
  if (leftovers.length > 0) log.warn({ domain: uuid, checkpoints: leftovers }, 'removing checkpoints an earlier backup left in libvirt');
  // Newest first (names sort by creation time): a child goes before its parent.
  for (const cp of leftovers.sort().reverse()) await deleteCheckpoint(virsh, uuid, cp, cp === base ? 'metadata' : 'all', log);
}

/**
 * Virtual size of every disk (the checkpoint records them: a resize breaks the chain): read
 * from the image where it can be (disk-size.ts), else asked of libvirt.
 */
async function diskSizes(virsh: Virsh, uuid: string, disks: DomainDisk[]): Promise<Map<string, number>> {
  const capacity = async (d: DomainDisk): Promise<[string, number]> => {
    const fromImage = await imageVirtualSize(d);
    if (fromImage !== null) return [d.target, fromImage];
    const m = /^Capacity:\s+(\d+)/m.exec(await virsh.run(['domblkinfo', uuid, d.target]));
    if (!m) throw new LibvirtError('domblkinfo', `no capacity reported for disk ${d.target}`);
    return [d.target, Number(m[1])];
  };
  return new Map(await Promise.all(disks.map(capacity)));
}

/**
 * What a backup whose worker died left of a running domain (the reconciler calls this): the
 * open pull job, Lifeboat checkpoint metadata (metadata only: which bitmap is the base is the
 * next backup's decision, and every bitmap is in the ledger), the job directory with the NBD
 * socket and scratch files, and the backup's XML files.
 */
export async function cleanupDeadBackup(deps: LibvirtBackupDeps, uuid: string): Promise<void> {
  await abortStaleJob(deps.virsh, uuid, deps.log);
  for (const cp of (await lifeboatCheckpoints(deps.virsh, uuid)).sort().reverse()) await deleteCheckpoint(deps.virsh, uuid, cp, 'metadata', deps.log);
  await rm(path.join(deps.scratchDir, uuid), { recursive: true, force: true });
  await rm(xmlDirOf(deps.scratchDir, uuid), { recursive: true, force: true });
}

/** How long a backup job may take to end after `domjobabort`. */
const JOB_END_MS = 30_000;
/** Polls start 2 ms apart (the job usually ends within milliseconds: the end is on a snapshot's critical path) and back off to 50 ms. */
const JOB_END_POLL_MS = { first: 2, max: 50 };

/** Whether the domain has a backup job, including one libvirt is setting up or tearing down ('backup job data missing'). */
async function hasBackupJob(virsh: Virsh, uuid: string): Promise<boolean> {
  try {
    return /^Operation:\s+Backup/m.test(await virsh.run(['domjobinfo', uuid]));
  } catch (e) {
    return /backup job data missing/.test(errorMessage(e));
  }
}

/**
 * Ends the domain's backup job and returns only once libvirt reports it gone. `domjobabort`
 * returns when QEMU was asked to cancel the job's block jobs; the job ends when their completion
 * events arrive (seen in CI: domjobinfo still said "Operation: Backup" right after the abort),
 * and until then a new backup-begin is refused and the job's bitmaps are busy.
 */
async function endBackupJob(virsh: Virsh, uuid: string): Promise<void> {
  await virsh.run(['domjobabort', uuid]);
  const deadline = Date.now() + JOB_END_MS;
  for (let pause = JOB_END_POLL_MS.first; await hasBackupJob(virsh, uuid); pause = Math.min(JOB_END_POLL_MS.max, pause * 2)) {
    if (Date.now() > deadline) throw new LibvirtError('domjobabort', `the backup job of domain ${uuid} did not end within ${JOB_END_MS / 1000} s`);
    await delay(pause);
  }
}

/** A pull job left open by a dead worker would block backup-begin: end it. True when there was one. */
async function abortStaleJob(virsh: Virsh, uuid: string, log: Logger): Promise<boolean> {
  if (!(await hasBackupJob(virsh, uuid))) return false;
  log.warn({ domain: uuid }, 'ending a libvirt backup job left open by an earlier run');
  await endBackupJob(virsh, uuid);
  return true;
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
