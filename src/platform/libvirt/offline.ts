import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Instance } from '../../domain/instance.js';
import { UnavailableError, errorMessage } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { NbdClient } from '../../nbd/client.js';
import { nbdDiskSource } from '../../nbd/disk-source.js';
import { BASE_ALLOCATION } from '../../nbd/protocol.js';
import type { BackupDisk, BackupSession, Checkpoint } from '../platform.js';
import { counted, type BackupReadStats } from './stats.js';
import type { DomainDisk, DomainInfo } from './domain-xml.js';
import { scrubLibvirtMessage } from './virsh.js';

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

/** Starts qemu-nbd on one image and connects; fails with qemu-nbd's (scrubbed) message if it exits. */
async function exportImage(dom: DomainInfo, disk: DomainDisk, socket: string): Promise<OfflineExport> {
  if (!disk.source) throw new UnavailableError(`Disk ${disk.target} of instance ${dom.name} has no source image`);
  if (!FORMATS.has(disk.format)) throw new UnavailableError(`Disk ${disk.target} of instance ${dom.name} has format ${disk.format}: only qcow2 and raw are read`);
  const child = spawn('qemu-nbd', ['--read-only', '--persistent', '--shared=2', `--format=${disk.format}`, `--export-name=${disk.target}`, `--socket=${socket}`, disk.source], {
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
      const attempt = NbdClient.connect({ socketPath: socket, exportName: disk.target, metaContexts: [BASE_ALLOCATION] });
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

/**
 * A shut-off domain (libvirt cannot run a backup job for it): each disk image is exported
 * read-only by its own `qemu-nbd` and read in full (allocated extents only). No checkpoint is
 * taken, so the next backup of the running domain is a full again; a base checkpoint given
 * here is reported as not used.
 */
export async function beginOfflineBackup(o: { instance: Instance; dom: DomainInfo; base: Checkpoint | null; log: Logger; onStats: (s: BackupReadStats) => void }): Promise<BackupSession> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-offline-'));
  const exports: OfflineExport[] = [];
  const stats: BackupReadStats = { mode: 'full', bytesRead: 0 };
  const close = async () => {
    await Promise.all(exports.map((x) => x.client.close().catch(() => x.client.destroy())));
    await Promise.all(exports.map((x) => stopChild(x.child)));
    await rm(dir, { recursive: true, force: true });
  };
  const disks: BackupDisk[] = [];
  try {
    for (const [i, d] of o.dom.disks.entries()) {
      const ex = await exportImage(o.dom, d, path.join(dir, `${i}.sock`));
      exports.push(ex);
      const device = `/dev/${d.target}`;
      disks.push({ disk: o.instance.disks.find((x) => x.device === device) ?? { device, format: d.format }, source: counted(nbdDiskSource(ex.client), stats) });
    }
  } catch (e) {
    await close();
    throw e;
  }
  let ended = false;
  return {
    disks,
    checkpoint: null,
    warnings: o.base ? [`Instance ${o.dom.name} is shut off: its disks were read in full; changed-block tracking resumes with the next backup while it runs`] : [],
    end: async () => {
      if (ended) return;
      ended = true;
      await close().catch((e: unknown) => o.log.warn({ domain: o.dom.uuid, err: errorMessage(e) }, 'closing offline exports failed'));
      o.onStats(stats);
    },
  };
}
