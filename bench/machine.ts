/**
 * The machine's own limits, measured in the same run as the sweep (issue 13 item 1): the
 * disk's sequential read and fdatasync write bandwidth (dd, 1 MiB blocks, O_DIRECT read of a
 * file written for it; wall time; the faster of two writes), how far the disk overlaps a read with a write (the two dd
 * runs at once: what a restore, which reads its repository while it writes the disk, can get)
 * and single-core SHA-256, keyed BLAKE3, HMAC-SHA256 and zstd-1
 * throughput per CPU-second on 64 KiB chunks (the engine's chunk size) of the bench's own text
 * and random content; and what starting Node costs here (nodeStart).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkCodec, compressBound } from '../src/repository/chunk-codec.js';
import { run } from './lib.js';
import { contentSample } from './mixes.js';

export interface MachineLimits {
  /** Bytes/s. */
  seqRead: number;
  fdatasyncWrite: number;
  /**
   * The read's and the write's times alone over their time run at once (both 1 GiB): 2 when the
   * disk does both at full speed together, 1 when it does one after the other (a virtual disk
   * served by one host thread), below 1 when mixing costs more than that. Absent in reports
   * written before it was measured.
   */
  readWriteOverlap?: number;
  /** Bytes/s on one core, 64 KiB chunks. */
  sha256: number;
  hmacSha256: number;
  blake3Keyed: number | null;
  zstd1Text: number;
  zstd1Random: number;
  /** The codec on random chunks with its compressibility estimate (stored raw, zstd skipped). */
  estimateRandom: number;
  /** Wall ms to run an empty Node script, without NODE_EXTRA_CA_CERTS and (when set here) with it. */
  nodeStartMs?: { bare: number; withExtraCaCerts: number | null };
  /** Free page reporting to the hypervisor, when the guest does it (see freePageReporting). */
  pageReporting?: { blockKiB: number; reportedKiB: number | null } | null;
  load: number[];
}

const VIRTIO_ID_BALLOON = 0x5;
const VIRTIO_BALLOON_F_REPORTING = 5;

/**
 * Whether this guest hands freed memory back to its host (virtio-balloon's free page
 * reporting): then a page one process frees costs the next process that touches it a host
 * fault, and a tool's time depends on what ran before it. null when it does not (or not a VM).
 * The block size is the reporting order's; `reported_kib` exists on some kernels only.
 */
export function freePageReporting(): { blockKiB: number; reportedKiB: number | null } | null {
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8').trim();
    } catch {
      return null;
    }
  };
  const devices = '/sys/bus/virtio/devices';
  let ids: string[] = [];
  try {
    ids = readdirSync(devices);
  } catch {
    return null;
  }
  const reporting = ids.some((d) => Number(read(join(devices, d, 'device'))) === VIRTIO_ID_BALLOON && read(join(devices, d, 'features'))?.[VIRTIO_BALLOON_F_REPORTING] === '1');
  const order = Number(read('/sys/module/page_reporting/parameters/page_reporting_order'));
  if (!reporting || !Number.isInteger(order)) return null;
  const reported = read('/sys/module/page_reporting/parameters/reported_kib');
  return { blockKiB: 4 << order, reportedKiB: reported === null ? null : Number(reported) };
}

const CHUNK = 64 * 1024;

/**
 * Bytes per CPU-second of f (this thread does nothing else meanwhile) over `chunks` repeated
 * until ~`total` bytes were processed. CPU time, not wall time: on a loaded machine a thread
 * waits for a core, and wall time would measure the load instead of the code.
 */
function rate(chunks: Buffer[], total: number, f: (c: Buffer) => unknown): number {
  for (const c of chunks) f(c); // warm-up
  const c0 = process.cpuUsage();
  let done = 0;
  for (let i = 0; done < total; i++) {
    const c = chunks[i % chunks.length]!;
    f(c);
    done += c.length;
  }
  const c = process.cpuUsage(c0);
  return done / ((c.user + c.system) / 1e6);
}

async function blake3Keyed(): Promise<((c: Buffer) => unknown) | null> {
  try {
    const { Blake3Hasher } = await import('@napi-rs/blake-hash');
    const h = Blake3Hasher.newKeyed(randomBytes(32));
    return (c) => {
      h.reset();
      h.update(c);
      return h.digestBuffer();
    };
  } catch {
    return null;
  }
}

/**
 * The environment of the engine's own steps: this one without NODE_EXTRA_CA_CERTS. Node 20
 * reads and parses its whole CA store at start when that variable is set (nodejs/node#40524):
 * 50-70 ms per process measured on the bench VMs, where the sandbox sets it in every shell.
 * No engine step makes a TLS connection, and a Go peer pays nothing alike
 * (its roots load on first use), so keeping it would time the sandbox, not the engine. The
 * report prints both start costs (nodeStart).
 */
export function engineStepEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

/** Median wall ms of `node -e ''` over 7 runs, in `env`. */
async function nodeStartWith(env: NodeJS.ProcessEnv): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < 7; i++) ms.push((await run(process.execPath, ['-e', ''], { env })).seconds * 1000);
  return ms.sort((a, b) => a - b)[3]!;
}

async function nodeStart(): Promise<{ bare: number; withExtraCaCerts: number | null }> {
  const bare = await nodeStartWith(engineStepEnv());
  return { bare, withExtraCaCerts: process.env.NODE_EXTRA_CA_CERTS ? await nodeStartWith(process.env) : null };
}

async function diskBandwidth(dir: string): Promise<{ seqRead: number; fdatasyncWrite: number; readWriteOverlap: number }> {
  const file = join(dir, 'dd-bandwidth.tmp');
  const second = join(dir, 'dd-bandwidth-2.tmp');
  const count = 1024;
  const write = (to: string) => run('dd', ['if=/dev/zero', `of=${to}`, 'bs=1M', `count=${count}`, 'conv=fdatasync']);
  const read = () => run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'iflag=direct']);
  try {
    // The write twice, the faster kept: on the bench VMs one 1 GiB dd took 0.56-1.98 s minutes
    // apart, and a floor that is not the disk's best would flatter every tool measured against it.
    await run('sync', []);
    const first = await write(file);
    rmSync(file, { force: true });
    await run('sync', []);
    const again = await write(file);
    const w = first.seconds < again.seconds ? first : again;
    await run('sync', []);
    const r = await read();
    await run('sync', []);
    const t0 = performance.now();
    await Promise.all([read(), write(second)]);
    const together = (performance.now() - t0) / 1000;
    return { fdatasyncWrite: (count << 20) / w.seconds, seqRead: (count << 20) / r.seconds, readWriteOverlap: (w.seconds + r.seconds) / together };
  } finally {
    rmSync(file, { force: true });
    rmSync(second, { force: true });
  }
}

export async function measureMachine(dir: string, load: () => number[]): Promise<MachineLimits> {
  const split = (b: Buffer) => Array.from({ length: Math.floor(b.length / CHUNK) }, (_, i) => b.subarray(i * CHUNK, (i + 1) * CHUNK));
  const text = split(contentSample('text', 32 << 20));
  const rnd = split(contentSample('random', 32 << 20));
  const total = 512 << 20;
  const key = randomBytes(32);
  const codec = new ChunkCodec(false); // zstd itself: the compressibility estimate would skip the random chunks
  const gated = new ChunkCodec();
  const dst = Buffer.alloc(compressBound(CHUNK));
  const b3 = await blake3Keyed();
  const disk = await diskBandwidth(dir);
  return {
    ...disk,
    sha256: rate(rnd, total, (c) => createHash('sha256').update(c).digest()),
    hmacSha256: rate(rnd, total, (c) => createHmac('sha256', key).update(c).digest()),
    blake3Keyed: b3 ? rate(rnd, total, b3) : null,
    zstd1Text: rate(text, total / 4, (c) => codec.encode(c, dst, 1)),
    zstd1Random: rate(rnd, total, (c) => codec.encode(c, dst, 1)),
    estimateRandom: rate(rnd, total, (c) => gated.encode(c, dst, 1)),
    nodeStartMs: await nodeStart(),
    pageReporting: freePageReporting(),
    load: load(),
  };
}
