/**
 * Restore write path (issue 13 item 3): how to write a restored disk so it is durable at the
 * end, measured against each other on the same disk in one run. Each strategy writes the same
 * `MiB` of random data (4 MiB positional writes, the restore's largest write) to a fresh file
 * and ends durable (fsync). Prints wall seconds, GB/s and the process's CPU user/system.
 *
 *   node dist/bench/write-strategy.js [MiB=1024] [dir=/var/tmp/lifeboat-bench] [rounds=3]
 *
 * Strategies: `final-fsync` (page cache, one fsync at the end), `datasync-128M` (what
 * FileDiskSink does: a background fdatasync every 128 MiB), `datasync-32M`, `o-dsync` (every
 * write durable). Rounds are interleaved (strategy order rotates), so a burst of someone
 * else's I/O hits all of them alike; min and median are printed. `o-direct` (what FileDiskSink
 * does for runs of 256 KiB and more) writes from page-aligned memory (lib/aligned-memory.ts),
 * 4 writes in flight as in a restore; the others write one at a time.
 */
import { randomFillSync } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { run } from './lib.js';
import { alignedSharedMemory } from '../src/lib/aligned-memory.js';

const [mibArg = '1024', dir = '/var/tmp/lifeboat-bench', roundsArg = '3'] = process.argv.slice(2);
const total = Number(mibArg) * 2 ** 20;
const WRITE = 4 << 20;
// 4 MiB data in page-aligned shared memory (as the restore's slots), reused for every write.
const buf = Buffer.from(alignedSharedMemory(WRITE));
randomFillSync(buf);

type Strategy = { name: string; flags: number; flushEvery: number | null; inFlight?: number };
const STRATEGIES: Strategy[] = [
  { name: 'final-fsync', flags: 0, flushEvery: null },
  { name: 'datasync-128M', flags: 0, flushEvery: 128 << 20 },
  { name: 'datasync-32M', flags: 0, flushEvery: 32 << 20 },
  { name: 'o-dsync', flags: constants.O_DSYNC, flushEvery: null },
  { name: 'o-direct', flags: constants.O_DIRECT, flushEvery: null, inFlight: 4 },
];

async function writeWith(s: Strategy, file: string): Promise<void> {
  const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | s.flags, 0o600);
  try {
    await fh.truncate(total);
    let flushing: Promise<void> | null = null;
    let since = 0;
    let next = 0;
    const lane = async () => {
      for (let pos = next; pos < total; pos = next) {
        next += WRITE;
        const n = Math.min(WRITE, total - pos);
        let done = 0;
        while (done < n) done += (await fh.write(buf, done, n - done, pos + done)).bytesWritten;
        since += n;
        if (s.flushEvery !== null && since >= s.flushEvery && !flushing) {
          since = 0;
          flushing = fh.datasync().finally(() => (flushing = null));
        }
      }
    };
    await Promise.all(Array.from({ length: s.inFlight ?? 1 }, lane));
    await flushing;
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** One durable write of the whole file: wall seconds, CPU seconds, load at the start. */
async function measure(s: Strategy): Promise<{ sec: number; user: number; sys: number; load: number }> {
  const file = join(dir, `write-strategy-${process.pid}.tmp`);
  await run('sync', []);
  const load = loadavg()[0]!;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    await writeWith(s, file);
  } finally {
    await rm(file, { force: true });
  }
  const c = process.cpuUsage(c0);
  return { sec: (performance.now() - t0) / 1000, user: c.user / 1e6, sys: c.system / 1e6, load };
}

const results = new Map<string, Awaited<ReturnType<typeof measure>>[]>();
for (let r = 0; r < Number(roundsArg); r++) {
  for (let i = 0; i < STRATEGIES.length; i++) {
    const s = STRATEGIES[(i + r) % STRATEGIES.length]!;
    results.set(s.name, [...(results.get(s.name) ?? []), await measure(s)]);
  }
}
const rows = STRATEGIES.map((s) => {
  const m = [...results.get(s.name)!].sort((a, b) => a.sec - b.sec);
  const med = m[m.length >> 1]!;
  const gb = total / 1e9;
  return `${s.name.padEnd(14)} min ${m[0]!.sec.toFixed(2).padStart(6)} s  median ${med.sec.toFixed(2).padStart(6)} s (${(gb / med.sec).toFixed(2)} GB/s)  cpu ${med.user.toFixed(2)}+${med.sys.toFixed(2)} s  load ${m.map((x) => x.load.toFixed(1)).join('/')}`;
});
process.stdout.write(`restore write strategies, ${mibArg} MiB in 4 MiB writes, durable at the end, ${roundsArg} interleaved rounds:\n${rows.join('\n')}\n`);
