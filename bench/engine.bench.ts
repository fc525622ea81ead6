/**
 * Engine-level benchmark (no HTTP): full backup, incremental without CBT (re-read + hash),
 * incremental by changeToken, repo growth for a 1 % change, objects per GiB, restore, peak RSS.
 * Needs the disks from /work/shared/bench/make-disk.sh and mutate-disk.sh:
 *   node dist/bench/engine.bench.js [disk0.img] [disk1.img] [runs=3] [zstdLevel=1] [chunkKiB=64]
 * Prints min/median/max over the runs. Repos live under bench-data/ (git-ignored).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { FsBackend } from '../src/backend/fs/fs.backend.js';
import { backupDisk } from '../src/datamover/backup.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { FileDiskSink, FileDiskSource } from '../src/datamover/testing.js';
import { newHexId } from '../src/lib/ids.js';
import { Repository } from '../src/repository/repository.js';
import { FileDiskSink as PlatformFileDiskSink } from '../src/platform/disk-io/file-disk.js';

const [disk0 = 'bench-data/disk0.img', disk1 = 'bench-data/disk1.img', runsArg = '3', levelArg = '1', chunkArg = '64'] = process.argv.slice(2);
const runs = Number(runsArg);
const results = new Map<string, number[]>();
const add = (k: string, v: number) => results.set(k, [...(results.get(k) ?? []), v]);
let peakRss = 0;
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
const phasePeak = new Map<string, number>();
/** Times f and records the peak RSS seen while it ran (whole process: main + worker threads). */
const time = async <T>(f: () => Promise<T>, phase = 'other'): Promise<[T, number]> => {
  peakRss = process.memoryUsage().rss;
  const t = performance.now();
  const r = await f();
  const dt = (performance.now() - t) / 1000;
  phasePeak.set(phase, Math.max(phasePeak.get(phase) ?? 0, peakRss));
  return [r, dt];
};

const pool = new ChunkPool(2);
for (let run = 0; run < runs; run++) {
  const dir = `bench-data/repo-bench`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const backend = new FsBackend(dir);
  const repo = await Repository.init(backend, { chunkSize: Number(chunkArg) * 1024, zstdLevel: Number(levelArg) });
  const projectId = newHexId();
  const backup = async (path: string, base: string | null, useToken: boolean) => {
    const snapshotId = randomUUID();
    const w = await repo.beginSnapshot({ projectId, snapshotId });
    const source = await FileDiskSource.open(path, { changeToken: useToken });
    const baseIndex = base ? await repo.findDiskIndex(base, 'vda') : null;
    const s = await backupDisk({ writer: w, diskKey: 'vda', source, pool, base: baseIndex });
    await w.commit({ bench: true });
    await source.close();
    return { snapshotId, s, stats: w.stats };
  };
  const repoBytes = async () => {
    let n = 0;
    for await (const k of backend.list('')) n += (await backend.stat(k)) ?? 0;
    return n;
  };
  const [full, tFull] = await time(() => backup(disk0, null, true), 'full backup');
  add('full backup (s)', tFull);
  const size0 = await repoBytes();
  add('repo after full (MB)', size0 / 1e6);
  add('objects per GiB stored (full)', full.stats.objectsWritten / (full.stats.bytesWritten / 2 ** 30));
  const [tok, tTok] = await time(() => backup(disk0, full.snapshotId, true));
  add('incr. unchanged, changeToken (s)', tTok);
  if (tok.s.mode !== 'change-token') throw new Error('changeToken path not taken');
  const [inc, tInc] = await time(() => backup(disk1, full.snapshotId, false), 'incremental');
  add('incr. 1% no CBT, re-read+hash (s)', tInc);
  add('repo growth 1% change (MB)', ((await repoBytes()) - size0) / 1e6);
  add('objects written (1% incr.)', inc.stats.objectsWritten);
  const sinkPath = 'bench-data/restored.img';
  const [, tRes] = await time(async () => {
    const sink = await FileDiskSink.create(sinkPath, full.s.size);
    return restoreDisk({ repo, snapshotId: full.snapshotId, diskKey: 'vda', sink, pool });
  }, 'restore');
  add('restore incl. final fsync (s)', tRes);
  // The same restore into the platform's sink (skips zero 4 KiB blocks; commit = fsync + rename).
  const [, tResP] = await time(async () => {
    const sink = await PlatformFileDiskSink.create(sinkPath, full.s.size);
    return restoreDisk({ repo, snapshotId: full.snapshotId, diskKey: 'vda', sink, pool });
  }, 'restore');
  add('restore, platform FileDiskSink (s)', tResP);
  rmSync(sinkPath, { force: true });
  const [, tVer] = await time(() => repo.verify(), 'verify');
  add('verify (s)', tVer);
  rmSync(sinkPath, { force: true });
}
clearInterval(rssTimer);
for (const [k, v] of phasePeak) add(`peak RSS during ${k} (MiB)`, v / 2 ** 20);
await pool.close();

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
console.log(`engine bench: ${disk0} → ${disk1}, runs=${runs}, zstd level ${levelArg}, chunk ${chunkArg} KiB`);
console.log('| measure | min | median | max |\n|---|---|---|---|');
for (const [k, vs] of results) {
  const s = [...vs].sort((a, b) => a - b);
  console.log(`| ${k} | ${fmt(s[0]!)} | ${fmt(s[Math.floor(s.length / 2)]!)} | ${fmt(s[s.length - 1]!)} |`);
}
