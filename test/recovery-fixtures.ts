import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { FsBackend } from '../src/backend/fs/fs.backend.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { FileDiskSource } from '../src/datamover/testing.js';
import { newHexId, newId } from '../src/lib/ids.js';
import { Repository } from '../src/repository/repository.js';

/**
 * Test helpers: a real repository on an fs backend and snapshots of disk image files taken
 * through the real backup pipeline. Not used by production code.
 */

export async function fsRepository(root: string, chunkSize = 64 * 1024): Promise<Repository> {
  return Repository.init(new FsBackend(root), { chunkSize, packSize: 4 << 20 }, {});
}

/** Backs up `disks` (diskKey → image path) as one committed snapshot; returns its id. */
export async function snapshotFiles(repo: Repository, projectId: string, disks: Record<string, string>, pool: ChunkPool): Promise<string> {
  const snapshotId = newId();
  const w = await repo.beginSnapshot({ projectId, snapshotId });
  for (const [diskKey, path] of Object.entries(disks)) {
    const source = await FileDiskSource.open(path);
    try {
      await backupDisk({ writer: w, diskKey, source, pool, base: null, full: true, meta: { dev: diskKey } });
    } finally {
      await source.close();
    }
  }
  await w.commit({});
  return snapshotId;
}

export function newProjectId(): string {
  return newHexId();
}

/** Deterministic incompressible bytes. */
export function pseudoRandom(size: number, seed: string): Buffer {
  const parts: Buffer[] = [];
  for (let have = 0, i = 0; have < size; have += 32, i++) parts.push(createHash('sha256').update(`${seed}/${i}`).digest());
  return Buffer.concat(parts).subarray(0, size);
}

/**
 * Runs a tool without blocking the event loop (the NBD server under test lives in this
 * process, so spawnSync would deadlock); resolves with its exit status and output.
 */
export function runTool(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-8000)));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** runTool that fails with the tool's stderr unless it exits 0; resolves with stdout. */
export async function mustRun(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await runTool(cmd, args, env);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
