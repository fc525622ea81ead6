import { mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError, NotFoundError, UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import type { Instance } from '../../domain/instance.js';
import type { Logger } from '../../lib/logger.js';
import { fsyncDir } from '../disk-io/atomic-file.js';
import type { DiskSink, PreparedInstance, RestoreTag } from '../platform.js';
import type { DomainDisk, DomainInfo } from './domain-xml.js';
import { CHECKPOINT_PREFIX } from './backup.js';
import { BitmapLedger } from './bitmaps.js';
import { isRestoreFormat, ownLike, qemuImg, StagedDiskSink, toQcow2 } from './restore-disks.js';
import type { Virsh } from './virsh.js';

/**
 * In-place restore of a domain's disks (README.md "In-place restores"). Each disk's snapshot
 * bytes are staged completely while the domain keeps running: a file disk as a sparse image
 * beside the original (`.<name>.<restoreId>.raw|qcow2`), a block device as a sparse raw file in
 * the restore directory (`.inplace.<restoreId>.<uuid>.<target>.raw`). Only publish() touches
 * the domain: stop it (`virsh destroy`: the disks are about to be replaced, so the guest's
 * unflushed state is moot and no guest agent is needed), swap every staged image in (rename,
 * keeping the original's owner and mode; `qemu-img convert -n` onto a block device), drop
 * Lifeboat's checkpoint metadata, start it again if it was running. A failed or abandoned
 * restore therefore leaves the domain exactly as it was.
 */

export interface InPlaceDeps {
  virsh: Virsh;
  restoreDir: string;
  /** The backup side's scratch dir (its per-domain bitmap ledger lives there, bitmaps.ts). */
  scratchDir: string;
  log: Logger;
  /** The domain and its state, scoped to the restore's project; null when missing or foreign. */
  describe: (uuid: string) => Promise<{ dom: DomainInfo; state: string } | null>;
  /** The same domain as an Instance (what the restore reports). */
  lookup: (uuid: string) => Promise<Instance | null>;
}

const TAG_RE = /^[0-9a-zA-Z-]{1,64}$/;
const BLOCK_PREFIX = '.inplace.';

/** One disk being restored in place: where its bytes are staged and how they replace the original. */
interface StagedDisk {
  disk: DomainDisk;
  /** The image file or block device (symlinks resolved). */
  target: string;
  sink: StagedDiskSink;
  /** The complete staged image once the sink committed. */
  staged: string;
}

/** Staged files of a file disk, beside the image so that the swap is a rename. */
const stagedBeside = (target: string, restoreId: string, suffix: string) => path.join(path.dirname(target), `.${path.basename(target)}.${restoreId}.${suffix}`);

async function stageDisk(deps: InPlaceDeps, dom: DomainInfo, disk: DomainDisk, size: number, restoreId: string): Promise<StagedDisk> {
  if (!disk.source) throw new ValidationError(`Disk ${disk.target} of instance ${dom.name} has no source image to restore into`);
  if (!isRestoreFormat(disk.format)) throw new ValidationError(`Disk ${disk.target} of instance ${dom.name} has format ${disk.format}: only raw and qcow2 disks are restored in place`);
  const target = await realpath(disk.source).catch((e: unknown) => {
    throw new UnavailableError(`Disk ${disk.target} of instance ${dom.name}: its image is not accessible (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  });
  const what = `Restoring disk ${disk.target} of instance ${dom.name}`;
  if ((await stat(target)).isBlockDevice()) {
    if (disk.format !== 'raw') throw new ValidationError(`Disk ${disk.target} of instance ${dom.name}: a ${disk.format} image on a block device is not restored in place`);
    const info = JSON.parse(await qemuImg(['info', '-U', '--output=json', '-f', 'raw', target], `Reading the size of disk ${disk.target} of instance ${dom.name}`)) as { 'virtual-size'?: number };
    const deviceSize = info['virtual-size'] ?? 0;
    if (deviceSize < size) throw new ValidationError(`Disk ${disk.target} of instance ${dom.name}: its block device (${deviceSize} bytes) is smaller than the disk in the snapshot (${size} bytes)`);
    await mkdir(deps.restoreDir, { recursive: true });
    const raw = path.join(deps.restoreDir, `${BLOCK_PREFIX}${restoreId}.${dom.uuid}.${disk.target}.raw`);
    const sink = await StagedDiskSink.create(raw, size, null, `${raw}.part`);
    return { disk, target, sink, staged: raw };
  }
  const raw = stagedBeside(target, restoreId, 'raw');
  const qcow2 = disk.format === 'qcow2' ? stagedBeside(target, restoreId, 'qcow2') : null;
  const sink = await StagedDiskSink.create(raw, size, qcow2 ? toQcow2(qcow2, what) : null, stagedBeside(target, restoreId, 'part'));
  return { disk, target, sink, staged: qcow2 ?? raw };
}

/** Replaces one disk with its staged image; the domain is stopped. */
async function swapIn(s: StagedDisk, dom: DomainInfo): Promise<void> {
  if ((await stat(s.target)).isBlockDevice()) {
    // -n: the device exists and is not zero-initialised, so holes of the image are written as zeros.
    await qemuImg(['convert', '-q', '-n', '-f', 'raw', '-O', 'raw', s.staged, s.target], `Writing disk ${s.disk.target} of instance ${dom.name} to its block device`);
    await rm(s.staged, { force: true });
    return;
  }
  await ownLike(s.staged, s.target, true);
  await rename(s.staged, s.target);
  await fsyncDir(path.dirname(s.target));
}

/** Lifeboat's checkpoints libvirt still knows of the domain (normally none between backups). */
async function dropCheckpointMetadata(virsh: Virsh, uuid: string): Promise<void> {
  const names = (await virsh.run(['checkpoint-list', uuid, '--name'])).split('\n').map((s) => s.trim());
  for (const name of names.filter((n) => n.startsWith(CHECKPOINT_PREFIX))) await virsh.run(['checkpoint-delete', uuid, name, '--metadata']);
}

/**
 * Every qcow2 disk rewritten: none of the bitmaps in the backup side's ledger exists any more,
 * so the ledger is emptied (otherwise the next backups would try to remove them). With a
 * qcow2 disk left as it was, its bitmaps stay and the ledger still names them for removal.
 */
async function forgetBitmaps(deps: InPlaceDeps, dom: DomainInfo, staged: StagedDisk[]): Promise<void> {
  if (!dom.disks.filter((d) => d.format === 'qcow2').every((d) => staged.some((s) => s.disk.target === d.target))) return;
  const ledger = new BitmapLedger(deps.scratchDir, dom.uuid);
  for (const name of (await ledger.read()).bitmaps) await ledger.remove(name);
}

/** Runs one step of publish; a failure says which step failed. */
async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new UnavailableError(`In-place restore failed while ${what}: ${errorMessage(e)}`, { cause: e });
  }
}

export async function openLibvirtInPlace(deps: InPlaceDeps, instanceId: string, disks: { device: string; size: number }[], tag: RestoreTag, opts: { powerOn?: boolean }): Promise<PreparedInstance> {
  if (!TAG_RE.test(tag.restoreId)) throw new ValidationError('Invalid restore id');
  const found = await deps.describe(instanceId.toLowerCase());
  const placeholder = found ? await deps.lookup(found.dom.uuid) : null;
  if (!found || !placeholder) throw NotFoundError.of('Instance', instanceId);
  const { dom } = found;
  const wanted = disks.map((d) => {
    const disk = dom.disks.find((x) => `/dev/${x.target}` === d.device);
    if (!disk) throw new ValidationError(`Instance ${dom.name} has no disk ${d.device}`);
    return { disk, size: d.size };
  });
  const staged: StagedDisk[] = [];
  const discardAll = () => Promise.all(staged.map((s) => s.sink.abort().then(() => rm(s.staged, { force: true }))));
  try {
    for (const w of wanted) staged.push(await stageDisk(deps, dom, w.disk, w.size, tag.restoreId));
  } catch (e) {
    await discardAll();
    throw e;
  }
  let state: 'prepared' | 'published' | 'discarded' = 'prepared';
  const warnings: string[] = [];
  const progress = { swapped: 0 };
  return {
    instance: { ...placeholder, status: 'BUILD' },
    sinks: new Map<string, DiskSink>(staged.map((s) => [`/dev/${s.disk.target}`, s.sink])),
    publish: async () => {
      if (state !== 'prepared') throw new AppError('internal', `publish of a ${state} in-place restore of ${dom.uuid}`);
      const pending = staged.filter((s) => s.sink.status !== 'committed').map((s) => s.disk.target);
      if (pending.length > 0) throw new AppError('internal', `Cannot finish the in-place restore of ${dom.uuid}: disks not committed: ${pending.join(', ')}`);
      state = 'published';
      try {
        await replaceDisks(deps, dom, staged, opts, progress);
      } finally {
        await discardAll().catch(() => undefined);
        if (progress.swapped > 0) warnings.push(`Instance ${dom.name} was restored in place: its disks were rewritten without change-tracking bitmaps, so the next snapshot of the workload is a full one (a new checkpoint chain)`);
      }
      deps.log.info({ instance: dom.uuid }, 'domain restored in place');
      return (await deps.lookup(dom.uuid)) ?? { ...placeholder, status: 'UNKNOWN' };
    },
    discard: async () => {
      if (state !== 'prepared') return;
      state = 'discarded';
      await discardAll();
    },
    notes: () => ({ warnings: [...warnings], changeTrackingReset: progress.swapped > 0 }),
  };
}

/**
 * Stop, swap, drop checkpoints, start. If a swap fails after the domain was stopped, a domain
 * that was running is started again (its disks may then be partly restored: the error says so).
 */
async function replaceDisks(deps: InPlaceDeps, dom: DomainInfo, staged: StagedDisk[], opts: { powerOn?: boolean }, progress: { swapped: number }): Promise<void> {
  const state = (await step('reading the domain state', () => deps.virsh.run(['domstate', dom.uuid]))).trim();
  const wasRunning = state === 'running' || state === 'paused' || state === 'in shutdown';
  if (wasRunning) await step(`stopping domain ${dom.name}`, () => deps.virsh.run(['destroy', dom.uuid]));
  const start = opts.powerOn ?? wasRunning;
  try {
    for (const s of staged) {
      await step(`replacing disk ${s.disk.target} of ${dom.name}`, () => swapIn(s, dom));
      progress.swapped++;
    }
    await step(`dropping the checkpoints of ${dom.name}`, () => dropCheckpointMetadata(deps.virsh, dom.uuid));
    await step(`forgetting the dirty bitmaps of ${dom.name}`, () => forgetBitmaps(deps, dom, staged));
  } catch (e) {
    if (wasRunning) await deps.virsh.run(['start', dom.uuid]).catch((err: unknown) => deps.log.warn({ domain: dom.uuid, err: errorMessage(err) }, 'restarting the domain after a failed in-place restore failed'));
    const partly = progress.swapped > 0 ? ` (${progress.swapped} of ${staged.length} disks were already replaced)` : ' (no disk was replaced)';
    throw new UnavailableError(`${errorMessage(e)}${partly}`, { cause: e });
  }
  if (start) await step(`starting domain ${dom.name} again`, () => deps.virsh.run(['start', dom.uuid]));
}

/**
 * After a restore's worker died: removes the staged files of its in-place restores of
 * `instanceIds` (beside their file disks, and their block-device staging in the restore
 * directory). Domains of other projects are not looked at; the disks are never touched.
 */
export async function cleanupLibvirtInPlace(deps: InPlaceDeps, tag: RestoreTag, instanceIds: string[]): Promise<void> {
  if (!TAG_RE.test(tag.restoreId)) throw new ValidationError('Invalid restore id');
  for (const id of instanceIds) {
    const found = await deps.describe(id.toLowerCase());
    if (!found) continue;
    await removeWithPrefix(deps.restoreDir, `${BLOCK_PREFIX}${tag.restoreId}.${found.dom.uuid}.`);
    for (const disk of found.dom.disks) {
      const target = disk.source ? await realpath(disk.source).catch(() => null) : null;
      if (target) await removeWithPrefix(path.dirname(target), `.${path.basename(target)}.${tag.restoreId}.`);
    }
  }
}

async function removeWithPrefix(dir: string, prefix: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await rm(path.join(dir, name), { force: true });
  }
}
