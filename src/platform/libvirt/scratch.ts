import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { DomainDisk } from './domain-xml.js';
import { ownLike, qemuImg } from './restore-disks.js';

/**
 * The scratch images of a pull job, made by Lifeboat before `backup-begin --reuse-external`.
 * Left to libvirt, each is created inside backup-begin by a QEMU `blockdev-create` job while the
 * domain's job is held (measured here, TCG, 2 cores: backup-begin 52.7 ms median with libvirt
 * creating the scratch image, 40 ms reusing one made beforehand). An empty qcow2 of the disk's
 * size, owned like the job directory (QEMU's user writes the copy-before-write data into it).
 *
 * An empty qcow2 depends on nothing but its virtual size (qemu-img's defaults: 64 KiB clusters,
 * a few clusters of metadata: 192 KiB for 2 GiB, 256 KiB for 4 TiB, 1.2 MiB for 64 TiB), so the
 * bytes `qemu-img create` wrote are kept per size and written again for the next job: spawning
 * qemu-img from the service cost ~9 ms of its main thread each time (fork of a large process),
 * such a write does not.
 */
const EMPTY_QCOW2 = new Map<number, Buffer>();
/** Distinct disk sizes whose image is kept (a host has few; beyond, the oldest is dropped). */
const MAX_KEPT = 32;

/**
 * Returns false, with nothing left behind, when any could not be made: libvirt then creates
 * them as before (the caller leaves out `--reuse-external`).
 */
export async function precreateScratch(jobDir: string, disks: readonly DomainDisk[], sizes: Promise<Map<string, number>>, file: (d: DomainDisk) => string, log: Logger): Promise<boolean> {
  // Sizes that cannot be read fail the backup's prepare step, which says why.
  const bytes = await sizes.catch(() => null);
  if (!bytes) return false;
  if (disks.some((d) => !bytes.has(d.target))) return false; // never from diskSizes (every disk or a failure)
  const made = await Promise.allSettled(
    disks.map(async (d) => {
      await writeFile(file(d), await emptyQcow2(bytes.get(d.target)!, jobDir), { flag: 'wx' });
      await ownLike(file(d), jobDir);
    }),
  );
  // Settled, not all(): no write may still be under way when the files are removed.
  const failed = made.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return true;
  log.warn({ err: errorMessage(failed.reason) }, 'could not make the scratch images of a backup job; libvirt makes them');
  await removeScratch(disks, file);
  return false;
}

export async function removeScratch(disks: readonly DomainDisk[], file: (d: DomainDisk) => string): Promise<void> {
  await Promise.all(disks.map((d) => rm(file(d), { force: true })));
}

/** The bytes of an empty qcow2 of `size` bytes: made once per size by `qemu-img create` in `dir`. */
async function emptyQcow2(size: number, dir: string): Promise<Buffer> {
  const kept = EMPTY_QCOW2.get(size);
  if (kept) return kept;
  const tmp = path.join(dir, `empty-${randomBytes(4).toString('hex')}.qcow2`);
  try {
    await qemuImg(['create', '-q', '-f', 'qcow2', tmp, String(size)], 'Creating a scratch image');
    const made = await readFile(tmp);
    if (EMPTY_QCOW2.size >= MAX_KEPT) EMPTY_QCOW2.delete(EMPTY_QCOW2.keys().next().value!);
    EMPTY_QCOW2.set(size, made);
    return made;
  } finally {
    await rm(tmp, { force: true });
  }
}
