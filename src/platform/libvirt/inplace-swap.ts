import { mkdtemp, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { errorMessage, UnavailableError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { fsyncDir, writeFileAtomic } from '../disk-io/atomic-file.js';
import { convertStaged } from '../disk-io/direct-io.js';
import { CHECKPOINT_PREFIX } from './backup.js';
import { BitmapLedger } from './bitmaps.js';
import type { DomainInfo } from './domain-xml.js';
import { withoutBackingStores } from './domain-xml-edit.js';
import { ownLike, qemuImg } from './restore-disks.js';
import type { Virsh } from './virsh.js';

/**
 * The swap step of an in-place restore (README.md "In place"), made recoverable: before the
 * domain is stopped, a journal `<restoreDir>/.inplace.<restoreId>.<uuid>.swap.json` records
 * what is swapped where and whether the domain runs afterwards. A staged image that still
 * exists is not swapped in yet (a file is renamed over the disk, a block device's staging is
 * removed once written), so the swap can be finished by anyone who reads the journal: the
 * worker itself, or the reconciler after the worker died (`recoverSwap`). Rolling back is not
 * possible once one disk was replaced (the old image is gone), so a cut-off swap is finished.
 */

export interface SwapDeps {
  virsh: Virsh;
  restoreDir: string;
  /** The backup side's scratch dir (its per-domain bitmap ledger, bitmaps.ts). */
  scratchDir: string;
  log: Logger;
}

export interface SwapDisk {
  /** Target dev, e.g. `vda`. */
  target: string;
  /** The disk's image file or block device (symlinks resolved). */
  image: string;
  /** The complete staged image. */
  staged: string;
  block: boolean;
  qcow2: boolean;
}

export interface SwapJournal {
  v: 1;
  uuid: string;
  /** Running before the restore stopped it (a failed swap starts it again). */
  wasRunning: boolean;
  /** Start it once the disks are in. */
  start: boolean;
  /** 'swapping' until every disk is in and the checkpoints and backing stores are dealt with. */
  phase: 'swapping' | 'swapped';
  disks: SwapDisk[];
}

export const journalPath = (restoreDir: string, restoreId: string, uuid: string) => path.join(restoreDir, `.inplace.${restoreId}.${uuid}.swap.json`);

const ACTIVE = new Set(['running', 'paused', 'in shutdown', 'pmsuspended']);

export async function domainActive(virsh: Virsh, uuid: string): Promise<boolean> {
  return ACTIVE.has((await virsh.run(['domstate', uuid])).trim());
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Replaces one disk with its staged image (the domain is stopped); a no-op when that was done. */
async function swapIn(d: SwapDisk, dom: DomainInfo): Promise<boolean> {
  if (!(await exists(d.staged))) return false;
  if (d.block) {
    // -n: the device exists and is not zero-initialised, so holes of the image are written as zeros.
    const what = `Writing disk ${d.target} of instance ${dom.name} to its block device`;
    await convertStaged((args) => qemuImg(args, what), ['-q', '-n', '-f', 'raw', '-O', 'raw', d.staged, d.image]);
    await rm(d.staged, { force: true });
    return true;
  }
  await ownLike(d.staged, d.image, true);
  await rename(d.staged, d.image);
  await fsyncDir(path.dirname(d.image));
  return true;
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
async function forgetBitmaps(deps: SwapDeps, dom: DomainInfo, swapped: SwapDisk[]): Promise<void> {
  if (!dom.disks.filter((d) => d.format === 'qcow2').every((d) => swapped.some((s) => s.target === d.target))) return;
  const ledger = new BitmapLedger(deps.scratchDir, dom.uuid);
  for (const name of (await ledger.read()).bitmaps) await ledger.remove(name);
}

/**
 * The rewritten qcow2 images are flat: a `<backingStore>` the definition names for them would
 * make QEMU read the old backing image wherever the new image has a hole. Such disks are
 * declared standalone and the (persistent) domain is defined again.
 */
async function dropBackingStores(virsh: Virsh, dom: DomainInfo, swapped: SwapDisk[]): Promise<void> {
  const targets = swapped.filter((d) => d.qcow2).map((d) => d.target);
  if (targets.length === 0 || !/^Persistent:\s+yes/m.test(await virsh.run(['dominfo', dom.uuid]))) return;
  const edited = withoutBackingStores(await virsh.run(['dumpxml', dom.uuid, '--inactive', '--security-info']), targets);
  if (!edited) return;
  const dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-libvirt-'));
  try {
    await writeFile(path.join(dir, 'domain.xml'), edited, { mode: 0o600 });
    await virsh.run(['define', path.join(dir, 'domain.xml')]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs one step; a failure says which step failed. */
export async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new UnavailableError(`In-place restore failed while ${what}: ${errorMessage(e)}`, { cause: e });
  }
}

/**
 * Test hook (LIFEBOAT_TEST_INPLACE_HOLD=<dir>): after the first disk is swapped in, the worker
 * creates `<dir>/held` and waits until it is removed, so a test can kill it at that point.
 */
async function testHold(): Promise<void> {
  const dir = process.env.LIFEBOAT_TEST_INPLACE_HOLD;
  if (!dir) return;
  const marker = path.join(dir, 'held');
  await writeFile(marker, String(process.pid));
  while (await exists(marker)) await new Promise((r) => setTimeout(r, 50));
}

/**
 * Stops the domain if it runs, swaps in every staged image not swapped yet, drops Lifeboat's
 * checkpoint metadata, the dirty-bitmap ledger and stale backing stores; the journal then says
 * 'swapped'. `progress.swapped` counts the disks that are in.
 */
export async function swapDisks(deps: SwapDeps, dom: DomainInfo, j: SwapJournal, file: string, progress: { swapped: number }, hold = false): Promise<void> {
  if (await domainActive(deps.virsh, dom.uuid)) await step(`stopping domain ${dom.name}`, () => deps.virsh.run(['destroy', dom.uuid]));
  for (const d of j.disks) {
    const now = await step(`replacing disk ${d.target} of ${dom.name}`, () => swapIn(d, dom));
    progress.swapped++;
    if (now && hold && progress.swapped === 1) await testHold();
  }
  await step(`dropping the checkpoints of ${dom.name}`, () => dropCheckpointMetadata(deps.virsh, dom.uuid));
  await step(`forgetting the dirty bitmaps of ${dom.name}`, () => forgetBitmaps(deps, dom, j.disks));
  await step(`removing stale backing stores from the definition of ${dom.name}`, () => dropBackingStores(deps.virsh, dom, j.disks));
  await writeJournal(file, { ...j, phase: 'swapped' });
}

/** The last step: start the domain if asked (and not running already), then forget the journal. */
export async function finishSwap(deps: SwapDeps, dom: DomainInfo, j: SwapJournal, file: string): Promise<void> {
  if (j.start && !(await domainActive(deps.virsh, dom.uuid))) await step(`starting domain ${dom.name} again`, () => deps.virsh.run(['start', dom.uuid]));
  await rm(file, { force: true });
}

export async function writeJournal(file: string, j: SwapJournal): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(j), { mode: 0o600 });
}

async function readJournal(file: string): Promise<SwapJournal | null> {
  try {
    const j = JSON.parse(await readFile(file, 'utf8')) as Partial<SwapJournal>;
    return j.v === 1 && typeof j.uuid === 'string' && Array.isArray(j.disks) ? (j as SwapJournal) : null;
  } catch {
    return null;
  }
}

/**
 * The reconciler's part (a restore whose worker died): a swap its journal shows cut off is
 * finished — only disks that still are disks of the domain are touched — and the domain is
 * started if the restore was to start it. Returns whether a swap was found (its disks then
 * lost their dirty bitmaps: the next snapshot must be a full). A domain gone meanwhile: the
 * journal is dropped.
 */
export async function recoverSwap(deps: SwapDeps, dom: DomainInfo | null, restoreId: string, uuid: string): Promise<boolean> {
  const file = journalPath(deps.restoreDir, restoreId, uuid);
  const j = await readJournal(file);
  if (!j || j.uuid !== uuid || !dom) {
    await rm(file, { force: true });
    return false;
  }
  const images = new Set(await Promise.all(dom.disks.map((d) => (d.source ? realpath(d.source).catch(() => d.source) : null))));
  const ours = { ...j, disks: j.disks.filter((d) => images.has(d.image)) };
  deps.log.warn({ domain: uuid, restoreId, phase: j.phase }, 'finishing an in-place restore whose worker died during the swap');
  if (j.phase === 'swapping') await swapDisks(deps, dom, ours, file, { swapped: 0 });
  await finishSwap(deps, dom, ours, file);
  return true;
}
