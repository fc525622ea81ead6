/**
 * One Lifeboat engine step in its own process, so the sweep (sweep.ts) measures it exactly like
 * a peer tool: wall time, user/system CPU and peak RSS of the whole process (main thread and
 * chunk workers). The disk is read and written the way the service does (platform file source
 * with allocated extents; platform file sink: sparse, fdatasync on commit).
 *
 *   node dist/bench/engine-step.js backup  <targetDir> <disk.img> <projectId> [baseSnapshotId]
 *   node dist/bench/engine-step.js restore <targetDir> <snapshotId> <out.img>
 *
 * Prints one JSON line: { snapshotId, ... summary }.
 */
import { randomUUID } from 'node:crypto';
import { FsBackend } from '../src/backend/fs/fs.backend.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { FileDiskSink, openFileDiskSource } from '../src/platform/disk-io/file-disk.js';
import { Repository } from '../src/repository/repository.js';

const DISK = 'vda';

async function backup(target: string, disk: string, projectId: string, base: string | undefined): Promise<unknown> {
  const repo = await Repository.init(new FsBackend(target));
  const pool = new ChunkPool();
  const source = await openFileDiskSource(disk);
  try {
    const snapshotId = randomUUID();
    // As the service's snapshot job does: the writer starts (lease) while the base snapshot's
    // disk index is read, and its chunk index loads while the first batches are read and hashed.
    const [w, baseIndex] = await Promise.all([repo.startSnapshot({ projectId, snapshotId }), base ? repo.findDiskIndex(base, DISK) : null]);
    if (base && !baseIndex) throw new Error(`no disk ${DISK} in base snapshot ${base}`);
    const s = await backupDisk({ writer: w, diskKey: DISK, source, pool, base: baseIndex });
    await w.commit({ bench: true });
    return { snapshotId, mode: s.mode, bytesRead: s.bytesRead, bytesStored: s.bytesStored, newChunks: s.newChunks, holes: s.holes };
  } finally {
    await source.close();
    await pool.close();
  }
}

async function restore(target: string, snapshotId: string, out: string): Promise<unknown> {
  const repo = await Repository.open(new FsBackend(target));
  const manifest = await repo.readManifest(snapshotId);
  const disk = manifest.disks.find((d) => d.diskKey === DISK);
  if (!disk) throw new Error(`no disk ${DISK} in snapshot ${snapshotId}`);
  const pool = new ChunkPool();
  try {
    const sink = await FileDiskSink.create(out, disk.size);
    const s = await restoreDisk({ repo, snapshotId, diskKey: DISK, sink, pool });
    return { snapshotId, bytesWritten: s.bytesWritten, bytesFetched: s.bytesFetched };
  } finally {
    await pool.close();
  }
}

const [op, ...args] = process.argv.slice(2);
const result = op === 'backup' ? await backup(args[0]!, args[1]!, args[2]!, args[3]) : op === 'restore' ? await restore(args[0]!, args[1]!, args[2]!) : null;
if (result === null) {
  process.stderr.write('usage: engine-step.js backup <target> <disk> <projectId> [base] | restore <target> <snapshotId> <out>\n');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
