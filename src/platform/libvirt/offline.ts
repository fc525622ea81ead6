import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Instance } from '../../domain/instance.js';
import { UnavailableError, errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { NbdClient } from '../../nbd/client.js';
import { nbdDiskSource } from '../../nbd/disk-source.js';
import { BASE_ALLOCATION, dirtyBitmapContext } from '../../nbd/protocol.js';
import type { BackupDisk, BackupSession, Checkpoint } from '../platform.js';
import { counted, type BackupReadStats } from './stats.js';
import { xmlAttr, type DomainDisk, type DomainInfo } from './domain-xml.js';
import { scrubLibvirtMessage } from './virsh.js';
import { CHECKPOINT_PREFIX, checkBase, isBitmapCapable, type CheckpointState, type Plan } from './backup.js';
import { BitmapLedger } from './bitmaps.js';

const READY_TIMEOUT_MS = 15_000;
const FORMATS = new Set(['qcow2', 'raw']);

/** One read-only `qemu-nbd` export of a disk image (the backing chain is followed by QEMU). */
interface OfflineExport {
  child: ChildProcess;
  client: NbdClient;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts qemu-nbd on one image and connects; fails with qemu-nbd's (scrubbed) message if it
 * exits. Not `--persistent`: qemu-nbd exits when our one connection closes, so a worker killed
 * mid-backup leaves no qemu-nbd holding the image lock. `bitmap` exports that dirty bitmap as
 * `qemu:dirty-bitmap:<bitmap>`.
 */
async function exportImage(dom: DomainInfo, disk: DomainDisk, socket: string, bitmap: string | null): Promise<OfflineExport> {
  if (!disk.source) throw new UnavailableError(`Disk ${disk.target} of instance ${dom.name} has no source image`);
  if (!FORMATS.has(disk.format)) throw new UnavailableError(`Disk ${disk.target} of instance ${dom.name} has format ${disk.format}: only qcow2 and raw are read`);
  const args = ['--read-only', '--shared=1', `--format=${disk.format}`, `--export-name=${disk.target}`, `--socket=${socket}`, ...(bitmap ? [`--bitmap=${bitmap}`] : []), disk.source];
  const child = spawn('qemu-nbd', args, {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()).slice(-4096));
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (e) => reject(new UnavailableError(`Cannot read disk ${disk.target} of instance ${dom.name}: qemu-nbd cannot start (${(e as NodeJS.ErrnoException).code ?? 'error'})`)));
    child.once('exit', () => reject(new UnavailableError(`Cannot read disk ${disk.target} of instance ${dom.name}: ${scrubLibvirtMessage(stderr)}`)));
  });
  failed.catch(() => undefined);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    for (;;) {
      const attempt = NbdClient.connect({ socketPath: socket, exportName: disk.target, metaContexts: bitmap ? [BASE_ALLOCATION, dirtyBitmapContext(bitmap)] : [BASE_ALLOCATION] });
      attempt.catch(() => undefined);
      const client = await Promise.race([attempt.catch(() => null), failed]);
      if (client) return { child, client };
      if (Date.now() > deadline) throw new UnavailableError(`Cannot read disk ${disk.target} of instance ${dom.name}: qemu-nbd did not answer`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (e) {
    await stopChild(child);
    throw e;
  }
}

/** `qemu-img` as a subprocess; rejects with its scrubbed stderr. */
function qemuImg(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('qemu-img', args, { timeout: 60_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new UnavailableError(`qemu-img ${args[0]} failed: ${scrubLibvirtMessage(stderr || err.message)}`));
      else resolve(stdout);
    });
  });
}

interface ImageInfo {
  size: number;
  /** Persistent bitmaps: name → flags (`auto` = enabled; `in-use` = QEMU did not close it cleanly). */
  bitmaps: Map<string, string[]>;
}

async function imageInfo(disk: DomainDisk): Promise<ImageInfo> {
  const j = JSON.parse(await qemuImg(['info', '-U', '--output=json', `--format=${disk.format}`, disk.source ?? ''])) as {
    'virtual-size': number;
    'format-specific'?: { data?: { bitmaps?: { name: string; flags: string[] }[] } };
  };
  return { size: j['virtual-size'], bitmaps: new Map((j['format-specific']?.data?.bitmaps ?? []).map((b) => [b.name, b.flags])) };
}

/**
 * The chain of a shut-off domain (libvirt README §7, "Shut-off VMs"): the recorded base is
 * trusted only if checkBase accepts it and every qcow2 image holds its bitmap, enabled and not
 * `in-use` (a QEMU that died without closing the image leaves it in-use: inconsistent).
 * Lifeboat bitmaps other than the kept one are removed from the images (qemu-img lists them
 * all, ledger or not).
 */
async function offlinePlan(o: { dom: DomainInfo; base: Checkpoint | null; ledger: BitmapLedger }): Promise<{ plan: Plan; sizes: Map<string, number> }> {
  const infos = new Map<DomainDisk, ImageInfo>();
  for (const d of o.dom.disks) infos.set(d, await imageInfo(d));
  const sizes = new Map([...infos].map(([d, i]) => [d.target, i.size]));
  let plan = checkBase(o.base, o.dom, sizes);
  if (plan.base) {
    const name = plan.base.name;
    const broken = o.dom.disks.filter(isBitmapCapable).find((d) => {
      const flags = infos.get(d)!.bitmaps.get(name);
      return !flags || !flags.includes('auto') || flags.includes('in-use');
    });
    if (broken) plan = { base: null, warnings: [`Instance ${o.dom.name}: the dirty bitmap of the last checkpoint is missing or broken on disk ${broken.target} (e.g. after an unclean QEMU exit); the disks were read in full and a new checkpoint chain started`] };
  }
  const ledger = await o.ledger.read();
  const keep = plan.base?.name ?? (o.base ? null : ledger.base);
  for (const [d, info] of infos) {
    for (const name of info.bitmaps.keys()) {
      if (!name.startsWith(CHECKPOINT_PREFIX) || name === keep) continue;
      await qemuImg(['bitmap', '--remove', '-f', d.format, d.source ?? '', name]);
      await o.ledger.remove(name);
    }
  }
  return { plan, sizes };
}

/** The checkpoint XML Lifeboat keeps for a bitmap made offline (`--redefine` needs creationTime). */
function offlineCheckpointXml(name: string, disks: DomainDisk[]): string {
  const items = disks.map((d) => (isBitmapCapable(d) ? `<disk name='${xmlAttr(d.target)}' checkpoint='bitmap' bitmap='${xmlAttr(name)}'/>` : `<disk name='${xmlAttr(d.target)}' checkpoint='no'/>`)).join('');
  return `<domaincheckpoint><name>${xmlAttr(name)}</name><creationTime>${Math.floor(Date.now() / 1000)}</creationTime><disks>${items}</disks></domaincheckpoint>`;
}

/** Adds (`add`) or removes bitmap `name` on every qcow2 image; removal never throws. */
async function imageBitmaps(disks: DomainDisk[], op: 'add' | 'remove', name: string, log: Logger): Promise<void> {
  for (const d of disks.filter(isBitmapCapable)) {
    const args = op === 'add' ? ['bitmap', '--add', '--enable', '-g', '65536', '-f', 'qcow2', d.source ?? '', name] : ['bitmap', '--remove', '-f', 'qcow2', d.source ?? '', name];
    if (op === 'add') await qemuImg(args);
    else await qemuImg(args).catch((e: unknown) => log.warn({ disk: d.target, bitmap: name, err: errorMessage(e) }, 'removing a bitmap offline failed'));
  }
}

/**
 * A shut-off domain (libvirt cannot run a backup job for it): each disk image is exported
 * read-only by its own `qemu-nbd`. With a trusted base, qcow2 images are exported with the
 * base's persistent bitmap (`--bitmap`), so only the blocks written since are read (the bitmap
 * kept recording while the domain ran); raw images are read in full. A new bitmap is added to
 * every qcow2 image before the export (`qemu-img bitmap --add --enable`): no write can happen
 * in between that it misses (qemu-nbd then holds the image lock; a write before that is
 * recorded in it and re-read next time, which is safe). Its XML is kept like a live
 * checkpoint's, so the next live backup redefines it and continues the chain.
 */
export async function beginOfflineBackup(o: { instance: Instance; dom: DomainInfo; base: Checkpoint | null; scratchDir: string; log: Logger; onStats: (s: BackupReadStats) => void }): Promise<BackupSession> {
  const ledger = new BitmapLedger(o.scratchDir, o.dom.uuid);
  const { plan, sizes } = await offlinePlan({ dom: o.dom, base: o.base, ledger });
  const newCp = o.dom.disks.some(isBitmapCapable) ? `${CHECKPOINT_PREFIX}${Date.now().toString(36)}-${randomBytes(4).toString('hex')}` : null;
  const dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-offline-'));
  const exports: OfflineExport[] = [];
  const stats: BackupReadStats = { mode: plan.base ? 'incremental' : 'full', bytesRead: 0 };
  const close = async () => {
    await Promise.all(exports.map((x) => x.client.close().catch(() => x.client.destroy())));
    await Promise.all(exports.map((x) => stopChild(x.child)));
    await rm(dir, { recursive: true, force: true });
  };
  const disks: BackupDisk[] = [];
  try {
    if (newCp) {
      await ledger.add(newCp);
      await imageBitmaps(o.dom.disks, 'add', newCp, o.log);
    }
    for (const [i, d] of o.dom.disks.entries()) {
      const bitmap = plan.base && isBitmapCapable(d) ? plan.base.name : null;
      const ex = await exportImage(o.dom, d, path.join(dir, `${i}.sock`), bitmap);
      exports.push(ex);
      const device = `/dev/${d.target}`;
      const source = nbdDiskSource(ex.client, bitmap ? { dirty: { checkpoint: bitmap, context: dirtyBitmapContext(bitmap) } } : {});
      disks.push({ disk: o.instance.disks.find((x) => x.device === device) ?? { device, format: d.format }, source: counted(source, stats) });
    }
  } catch (e) {
    await close();
    if (newCp) await imageBitmaps(o.dom.disks, 'remove', newCp, o.log);
    throw e;
  }
  const checkpoint: Checkpoint | null = newCp ? { name: newCp, state: JSON.stringify({ v: 1, xml: offlineCheckpointXml(newCp, o.dom.disks), sizes: Object.fromEntries(sizes) } satisfies CheckpointState) } : null;
  const rawWarnings = plan.base ? o.dom.disks.filter((d) => !isBitmapCapable(d)).map((d) => `Instance ${o.dom.name}: disk ${d.target} (${d.format}) cannot track changes and was read in full`) : [];
  let ended = false;
  return {
    disks,
    checkpoint,
    warnings: [...plan.warnings, ...rawWarnings],
    end: async (outcome) => {
      if (ended) return;
      ended = true;
      await close().catch((e: unknown) => o.log.warn({ domain: o.dom.uuid, err: errorMessage(e) }, 'closing offline exports failed'));
      // As for a live backup: the bitmap that is no base from now on goes, the ledger follows.
      const drop = outcome === 'committed' ? (plan.base?.name ?? null) : newCp;
      if (drop) {
        await imageBitmaps(o.dom.disks, 'remove', drop, o.log);
        await ledger.remove(drop);
      }
      if (outcome === 'committed' && newCp) await ledger.committed(newCp);
      o.onStats(stats);
    },
  };
}
