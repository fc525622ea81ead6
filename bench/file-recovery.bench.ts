/**
 * File-level recovery bench (issue 15 targets), on the engine directly (no HTTP):
 *
 *   node dist/bench/file-recovery.bench.js [--snapshots N (10)] [--file-mib M (64)] [--tcg] [--skip-search] [--skip-mount] [--appliance]
 *
 * Builds a GPT + ext4 disk (test/fs-images.ts), takes N snapshots of it into an fs repository
 * (one file changed between snapshots), then measures: a search over all N snapshots (ext4:
 * debugfs without the appliance; target ≤ 60 s under TCG), mount (ext4: fuse2fs) to first
 * directory listing (≤ 30 s), a later listing (≤ 1 s) and a download of an M MiB file through
 * the mount (≥ 20 MB/s). `--appliance`: search and mount through the appliance, as for LVM/XFS.
 * Prints the numbers with the load average: on a shared box they vary a lot.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { RepositorySet } from '../src/repository/repository-set.js';
import { silentLogger, type Logger } from '../src/lib/logger.js';
import { SnapshotMounts } from '../src/recovery/mounts.js';
import { searchSnapshots } from '../src/recovery/search.js';
import { buildExt4Disk } from '../test/fs-images.js';
import { fsRepository, pseudoRandom, snapshotFiles } from '../test/recovery-fixtures.js';

function args(): { snapshots: number; fileMiB: number; tcg: boolean; skipSearch: boolean; skipMount: boolean; appliance: boolean } {
  const a = { snapshots: 10, fileMiB: 64, tcg: false, skipSearch: false, skipMount: false, appliance: false };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--snapshots') a.snapshots = Number(argv[++i]);
    else if (argv[i] === '--file-mib') a.fileMiB = Number(argv[++i]);
    else if (argv[i] === '--tcg') a.tcg = true;
    else if (argv[i] === '--skip-search') a.skipSearch = true;
    else if (argv[i] === '--skip-mount') a.skipMount = true;
    else if (argv[i] === '--appliance') a.appliance = true;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return a;
}

const log = (s: string) => process.stdout.write(`${s}\n`);
const started = Date.now();
/** The engine's debug lines (where a search spends its time), stamped with seconds since start. */
const phases: Logger = {
  ...silentLogger,
  debug: (obj: object | string, msg?: string) => {
    if (msg?.startsWith('file search:')) log(`  [${((Date.now() - started) / 1000).toFixed(1)} s] ${msg} ${JSON.stringify(obj)}`);
  },
};
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const a = args();
  const work = mkdtempSync(join(tmpdir(), 'lifeboat-frbench-'));
  const pool = new ChunkPool(2);
  log(`file recovery bench: ${a.snapshots} snapshots, ${a.fileMiB} MiB file, ${a.tcg ? 'TCG forced' : 'KVM if usable'}, ${cpus().length} cores, load ${loadavg()[0]!.toFixed(1)}`);
  try {
    const repo = await fsRepository(join(work, 'repo'));
    const disk = join(work, 'vda.raw');
    const vm = '11111111-2222-4333-8444-555555555555';
    const big = pseudoRandom(a.fileMiB << 20, 'bench');
    const ids: string[] = [];
    for (let i = 0; i < a.snapshots; i++) {
      await buildExt4Disk(disk, a.fileMiB + 64, { 'etc/hosts': `snapshot ${i}\n`, 'opt/File_1': pseudoRandom(1000 + i, `f${i}`), 'opt/big.bin': big });
      ids.unshift(await snapshotFiles(repo, 'a'.repeat(32), { [`${vm}:/dev/vda`]: disk }, pool));
    }
    const home = join(work, 'home');
    const repos = RepositorySet.only(repo);
    const mounts = new SnapshotMounts({ home, repos, forceTcg: a.tcg, idleMs: 3_600_000, applianceOnly: a.appliance });

    let t = Date.now();
    if (!a.skipSearch) {
      const found = await searchSnapshots({ repos, home, forceTcg: a.tcg, tag: mounts.tag, snapshots: ids.map((id) => ({ id, target: null })), vmId: vm, pattern: '/opt/File_*', logger: phases, applianceOnly: a.appliance });
      const hits = found.filter((r) => r.result !== 'Snapshot VM deleted' && r.result.some((f) => f.matches.length === 1)).length;
      log(`search of ${ids.length} snapshots: ${secs(Date.now() - t)} (found in ${hits}/${ids.length}; target ≤ 60 s; load ${loadavg()[0]!.toFixed(1)})`);
    }

    if (a.skipMount) return;
    t = Date.now();
    const root = await mounts.mount(ids[0]!, null);
    // Async only: the NBD server behind the mount runs on this event loop.
    await readdir(join(root, 'vda1'));
    const mountMs = Date.now() - t;
    t = Date.now();
    await readdir(join(root, 'vda1', 'opt'));
    const listMs = Date.now() - t;
    t = Date.now();
    const bytes = await readFile(join(root, 'vda1', 'opt', 'big.bin'));
    const dlMs = Date.now() - t;
    if (!bytes.equals(big)) throw new Error('downloaded file differs');
    await mounts.closeAll();
    log(`mount to first listing: ${secs(mountMs)} (target ≤ 30 s); later listing: ${listMs} ms (≤ 1 s)`);
    log(`download ${a.fileMiB} MiB through the mount: ${secs(dlMs)} = ${((a.fileMiB * 1.048576) / (dlMs / 1000)).toFixed(1)} MB/s (target ≥ 20 MB/s); load ${loadavg()[0]!.toFixed(1)}`);
  } finally {
    await pool.close();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${String((e as Error).stack ?? e)}\n`);
  process.exit(1);
});
