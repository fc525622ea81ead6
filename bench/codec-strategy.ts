/**
 * Chunk compression strategies compared on real mix images (issue 13 item 2): for every
 * non-zero 64 KiB chunk of an image, each strategy's CPU time (this thread's user+system, not
 * wall time: the machine is shared) and stored bytes (a chunk zstd cannot shrink is stored raw,
 * as the codec does). Single thread, no I/O inside the timed part (the image is read first).
 *
 *   node dist/bench/codec-strategy.js <image> [MiB to sample, default 256]
 *
 * Prints per strategy: CPU-s per GB of non-zero data, stored/raw ratio, chunks stored raw.
 */
import { createRequire } from 'node:module';
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { ChunkCodec, compressBound } from '../src/repository/chunk-codec.js';

const require = createRequire(import.meta.url);
interface CCtx {
  compress2(dst: Uint8Array, src: Uint8Array): number;
  setParameter(param: number, value: number): void;
}
const zstd = require('zstd-napi/binding') as { CCtx: new () => CCtx; CParameter: Record<string, number> };

const CHUNK = 64 * 1024;

function loadChunks(path: string, maxBytes: number): Buffer[] {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  const zero = Buffer.alloc(CHUNK);
  const out: Buffer[] = [];
  let got = 0;
  // Spread the sample over the whole image: every stride-th chunk.
  const total = Math.floor(size / CHUNK);
  const stride = Math.max(1, Math.floor(total / Math.ceil(maxBytes / CHUNK / 0.7)));
  for (let i = 0; i < total && got < maxBytes; i += stride) {
    const b = Buffer.allocUnsafe(CHUNK);
    readSync(fd, b, 0, CHUNK, i * CHUNK);
    if (b.equals(zero)) continue;
    out.push(b);
    got += CHUNK;
  }
  closeSync(fd);
  return out;
}

interface Strategy {
  name: string;
  /** Stored length (raw length when stored raw). */
  encode(raw: Buffer, dst: Buffer): number;
}

function zstdLevel(level: number, minMatch = 0): Strategy {
  const c = new zstd.CCtx();
  c.setParameter(zstd.CParameter.compressionLevel!, level);
  if (minMatch) c.setParameter(zstd.CParameter.minMatch!, minMatch);
  return {
    name: `zstd ${level}${minMatch ? ` mm${minMatch}` : ''}`,
    encode: (raw, dst) => {
      const n = c.compress2(dst, raw);
      return n < raw.length ? n : raw.length;
    },
  };
}

function codecStrategy(name: string, level: number, estimate = true): Strategy {
  const codec = new ChunkCodec(estimate);
  return { name, encode: (raw, dst) => codec.compressInto(raw, dst, level) || raw.length };
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function measure(s: Strategy, chunks: Buffer[], dst: Buffer): { cpu: number; stored: number; raw: number } {
  for (let i = 0; i < Math.min(64, chunks.length); i++) s.encode(chunks[i]!, dst); // warm up
  let best = Infinity;
  let stored = 0;
  let rawCount = 0;
  for (let round = 0; round < 3; round++) {
    stored = 0;
    rawCount = 0;
    const t0 = cpuSeconds();
    for (const c of chunks) {
      const n = s.encode(c, dst);
      stored += n;
      if (n === c.length) rawCount++;
    }
    best = Math.min(best, cpuSeconds() - t0);
  }
  return { cpu: best, stored, raw: rawCount };
}

const [path, mib] = process.argv.slice(2);
if (!path) {
  process.stderr.write('usage: codec-strategy.js <image> [MiB]\n');
  process.exit(2);
}
const chunks = loadChunks(path, Number(mib ?? 256) * 2 ** 20);
const bytes = chunks.length * CHUNK;
const dst = Buffer.alloc(compressBound(CHUNK));
const extra = (process.env.LIFEBOAT_CODEC_LEVELS ?? '').split(',').filter(Boolean).map(Number);
const strategies: Strategy[] = [
  codecStrategy('zstd 1 mm7, no estimate', 1, false),
  codecStrategy('zstd 1 mm7 + estimate', 1),
  zstdLevel(1),
  zstdLevel(-1),
  zstdLevel(-3),
  zstdLevel(-5),
  ...extra.map((l) => codecStrategy(`level ${l} + estimate`, l)),
];
process.stdout.write(`${path}: ${chunks.length} non-zero chunks (${(bytes / 1e9).toFixed(3)} GB)\n`);
for (const s of strategies) {
  const r = measure(s, chunks, dst);
  process.stdout.write(`${s.name.padEnd(24)} ${(r.cpu / (bytes / 1e9)).toFixed(3)} CPU-s/GB  ratio ${(r.stored / bytes).toFixed(4)}  raw ${r.raw}/${chunks.length}\n`);
}
