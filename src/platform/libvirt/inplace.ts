import { mkdir, readdir, realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError, NotFoundError, UnavailableError, ValidationError, errorMessage } from '../../lib/errors.js';
import type { Instance } from '../../domain/instance.js';
import type { Logger } from '../../lib/logger.js';
import type { DiskSink, PreparedInstance, RestoreTag } from '../platform.js';
import type { DomainDisk, DomainInfo } from './domain-xml.js';
import { domainActive, finishSwap, journalPath, recoverSwap, step, swapDisks, writeJournal, type SwapDisk, type SwapJournal } from './inplace-swap.js';
import { isRestoreFormat, qemuImg } from './restore-disks.js';
import { FileDiskSink } from '../disk-io/file-disk.js';
import { Qcow2DiskSink } from '../disk-io/qcow2-sink.js';
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
  sink: FileDiskSink | Qcow2DiskSink;
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
  if ((await stat(target)).isBlockDevice()) {
    if (disk.format !== 'raw') throw new ValidationError(`Disk ${disk.target} of instance ${dom.name}: a ${disk.format} image on a block device is not restored in place`);
    const info = JSON.parse(await qemuImg(['info', '-U', '--output=json', '-f', 'raw', target], `Reading the size of disk ${disk.target} of instance ${dom.name}`)) as { 'virtual-size'?: number };
    const deviceSize = info['virtual-size'] ?? 0;
    if (deviceSize < size) throw new ValidationError(`Disk ${disk.target} of instance ${dom.name}: its block device (${deviceSize} bytes) is smaller than the disk in the snapshot (${size} bytes)`);
    await mkdir(deps.restoreDir, { recursive: true });
    const raw = path.join(deps.restoreDir, `${BLOCK_PREFIX}${restoreId}.${dom.uuid}.${disk.target}.raw`);
    const sink = await FileDiskSink.create(raw, size, { tempPath: `${raw}.part` });
    return { disk, target, sink, staged: raw };
  }
  const staged = stagedBeside(target, restoreId, disk.format === 'qcow2' ? 'qcow2' : 'raw');
  const tempPath = stagedBeside(target, restoreId, 'part');
  const sink = disk.format === 'qcow2' ? await Qcow2DiskSink.create(staged, size, { tempPath }) : await FileDiskSink.create(staged, size, { tempPath });
  return { disk, target, sink, staged };
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
        await replaceDisks(deps, dom, staged, tag.restoreId, opts, progress);
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
 * Stop, swap, drop checkpoints, start, with a journal (inplace-swap.ts) written before the
 * domain is stopped, so a worker that dies on the way leaves a swap the reconciler finishes.
 * If a swap fails here, a domain that was running is started again (its disks may then be
 * partly restored: the error says so).
 */
async function replaceDisks(deps: InPlaceDeps, dom: DomainInfo, staged: StagedDisk[], restoreId: string, opts: { powerOn?: boolean }, progress: { swapped: number }): Promise<void> {
  const wasRunning = await step('reading the domain state', () => domainActive(deps.virsh, dom.uuid));
  const file = journalPath(deps.restoreDir, restoreId, dom.uuid);
  const disks: SwapDisk[] = await Promise.all(
    staged.map(async (s) => ({ target: s.disk.target, image: s.target, staged: s.staged, block: (await stat(s.target)).isBlockDevice(), qcow2: s.disk.format === 'qcow2' })),
  );
  const journal: SwapJournal = { v: 1, uuid: dom.uuid, wasRunning, start: opts.powerOn ?? wasRunning, phase: 'swapping', disks };
  await step('recording the swap', () => writeJournal(file, journal));
  try {
    await swapDisks(deps, dom, journal, file, progress, true);
  } catch (e) {
    if (wasRunning) await deps.virsh.run(['start', dom.uuid]).catch((err: unknown) => deps.log.warn({ domain: dom.uuid, err: errorMessage(err) }, 'restarting the domain after a failed in-place restore failed'));
    await rm(file, { force: true });
    const partly = progress.swapped > 0 ? ` (${progress.swapped} of ${staged.length} disks were already replaced)` : ' (no disk was replaced)';
    throw new UnavailableError(`${errorMessage(e)}${partly}`, { cause: e });
  }
  await finishSwap(deps, dom, journal, file);
}

/**
 * After a restore's worker died: a swap it left cut off (its journal) is finished first — the
 * domain ends with the snapshot's disks, started if the restore was to start it — then the
 * staged files of its in-place restores of `instanceIds` are removed (beside their file disks,
 * and their block-device staging in the restore directory). Domains of other projects are not
 * looked at; a disk is only ever replaced by a complete staged image. True when a swap was
 * finished (those disks lost their dirty bitmaps: the next snapshot must be a full).
 */
export async function cleanupLibvirtInPlace(deps: InPlaceDeps, tag: RestoreTag, instanceIds: string[]): Promise<boolean> {
  if (!TAG_RE.test(tag.restoreId)) throw new ValidationError('Invalid restore id');
  let swapped = false;
  for (const id of instanceIds.map((x) => x.toLowerCase())) {
    const found = await deps.describe(id);
    swapped = (await recoverSwap(deps, found?.dom ?? null, tag.restoreId, id)) || swapped;
    if (!found) continue;
    await removeWithPrefix(deps.restoreDir, `${BLOCK_PREFIX}${tag.restoreId}.${found.dom.uuid}.`);
    for (const disk of found.dom.disks) {
      const target = disk.source ? await realpath(disk.source).catch(() => null) : null;
      if (target) await removeWithPrefix(path.dirname(target), `.${path.basename(target)}.${tag.restoreId}.`);
    }
  }
  return swapped;
}

async function removeWithPrefix(dir: string, prefix: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await rm(path.join(dir, name), { force: true });
  }
}
