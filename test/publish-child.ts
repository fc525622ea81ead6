import { createHash } from 'node:crypto';
import { FsBackend } from '../src/backend/fs/fs.backend.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { MemDiskSource } from '../src/datamover/testing.js';
import { Repository } from '../src/repository/repository.js';

/**
 * A child process for test/publish-crash.test.ts: writes one snapshot of a deterministic 1 MiB
 * disk into the fs repository at argv[2] (made if missing) under snapshot id argv[3], project
 * argv[4], and commits it. The test runs it under strace, which kills it at one syscall of the
 * publish; exit 0 means it got through.
 */
const [dir, snapshotId, projectId] = process.argv.slice(2) as [string, string, string];
const data = Buffer.concat(Array.from({ length: 1 << 15 }, (_, i) => createHash('sha256').update(`publish/${i}`).digest()));
const pool = new ChunkPool(1);
try {
  const repo = await Repository.init(new FsBackend(dir), { chunkSize: 64 * 1024, packSize: 256 * 1024 });
  const w = await repo.beginSnapshot({ projectId, snapshotId });
  await backupDisk({ writer: w, diskKey: 'vda', source: new MemDiskSource(data), pool, full: true, base: null });
  await w.commit(null);
} finally {
  await pool.close();
}
