/**
 * Reproducible sparse VM-disk images in three data mixes, and the change an incremental
 * backup sees (issue 13 item 1). The same (mix, size, seed) always gives the same bytes.
 *
 * A disk is a sequence of regions of 4 KiB to 3 MiB (log-uniform, 4 KiB aligned, so holes are
 * real filesystem holes). Each region is a hole, word-like text, random bytes, or database
 * pages, with per-mix shares:
 *
 *   mix      holes  text  random  db pages
 *   text     30 %   55 %  15 %    –
 *   random   30 %   15 %  55 %    –
 *   db       35 %   10 %   5 %    50 %
 *
 * Text is fragments (64 B–1 KiB) of a 4 MiB pool of words, so it compresses like prose and no
 * two chunks are equal. Database pages are 8 KiB: header, rows of typed fields (ids, times,
 * words, amounts, 16 random bytes), zero free space at a varying fill factor.
 *
 * The change (mutate): per GiB of disk, one clustered 2 MiB rewrite (database-like: a table
 * rewritten in place) plus 256 scattered writes of 4–16 KiB (index and log updates), each in
 * the content kind of the mix. About 6 MiB per GiB (0.6 %).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

export type MixName = 'text' | 'random' | 'db';
export const MIX_NAMES: readonly MixName[] = ['text', 'random', 'db'];
type Kind = 'hole' | 'text' | 'random' | 'db';

const SHARES: Record<MixName, [Kind, number][]> = {
  text: [['hole', 0.3], ['text', 0.55], ['random', 0.15]],
  random: [['hole', 0.3], ['text', 0.15], ['random', 0.55]],
  db: [['hole', 0.35], ['text', 0.1], ['random', 0.05], ['db', 0.5]],
};
/** The content kind of the mutation writes. */
const MUTATION_KIND: Record<MixName, Kind> = { text: 'text', random: 'random', db: 'db' };

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const PAGE = 8 * KiB;

/** Small deterministic PRNG for decisions (sfc32); bulk random bytes come from AES-CTR. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: string) {
    const h = createHash('sha256').update(seed).digest();
    [this.a, this.b, this.c, this.d] = [h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)];
    for (let i = 0; i < 12; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }
  real(): number {
    return this.u32() / 2 ** 32;
  }
}

/** Random bytes from AES-128-CTR over zeros: deterministic per seed, GB/s fast. */
class ByteStream {
  private readonly cipher;
  private readonly zeros = Buffer.alloc(MiB);
  constructor(seed: string) {
    const k = createHash('sha256').update(`bytes/${seed}`).digest();
    this.cipher = createCipheriv('aes-128-ctr', k.subarray(0, 16), k.subarray(16, 32));
  }
  fill(dst: Buffer, from = 0, to = dst.length): void {
    for (let at = from; at < to; at += MiB) {
      const n = Math.min(MiB, to - at);
      this.cipher.update(this.zeros.subarray(0, n)).copy(dst, at);
    }
  }
}

const WORDS = (
  'the of and to in is was for on that with as by at from his her it an were are which this be ' +
  'backup restore volume snapshot instance network project quota policy schedule retention chunk ' +
  'server request response kernel memory process thread socket packet storage cluster replica ' +
  'customer invoice order payment account balance transfer ledger report status pending shipped ' +
  'delivered cancelled warehouse product category price discount region country city street ' +
  'january february march april monday friday morning evening error warning info debug trace ' +
  'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore'
).split(' ');

let textPool: Buffer | null = null;
/** 4 MiB of word-like text, the same in every run. */
function pool(): Buffer {
  if (textPool) return textPool;
  const r = new Rng('text-pool');
  const parts: string[] = [];
  let n = 0;
  while (n < 4 * MiB) {
    let line = '';
    const words = 4 + r.int(14);
    for (let i = 0; i < words; i++) line += (i ? ' ' : '') + WORDS[r.int(WORDS.length)]!;
    line += r.int(4) === 0 ? `. ${r.int(100000)}\n` : '.\n';
    parts.push(line);
    n += line.length;
  }
  textPool = Buffer.from(parts.join('').slice(0, 4 * MiB), 'latin1');
  return textPool;
}

/** Fills dst[from, to) with content of `kind`. */
class Filler {
  private readonly r: Rng;
  private readonly bytes: ByteStream;
  private rowId = 0;
  private time = 1_700_000_000_000;
  constructor(seed: string) {
    this.r = new Rng(`fill/${seed}`);
    this.bytes = new ByteStream(seed);
  }

  fill(kind: Kind, dst: Buffer, from: number, to: number, diskOffset: number): void {
    if (kind === 'hole') dst.fill(0, from, to);
    else if (kind === 'random') this.bytes.fill(dst, from, to);
    else if (kind === 'text') this.text(dst, from, to);
    else this.pages(dst, from, to, diskOffset);
  }

  private text(dst: Buffer, from: number, to: number): void {
    const p = pool();
    for (let at = from; at < to; ) {
      const n = Math.min(to - at, 64 + this.r.int(960));
      const src = this.r.int(p.length - n);
      p.copy(dst, at, src, src + n);
      at += n;
    }
  }

  /** 8 KiB database pages (page number from the disk offset, so rewrites keep their page ids). */
  private pages(dst: Buffer, from: number, to: number, diskOffset: number): void {
    const rnd = Buffer.alloc(PAGE / 2); // 16 random bytes per row, drawn once per page
    for (let at = from; at < to; at += PAGE) {
      const end = Math.min(to, at + PAGE);
      dst.fill(0, at, end);
      if (end - at < 64) continue;
      const fill = at + Math.floor((end - at) * (0.5 + 0.45 * this.r.real()));
      this.bytes.fill(rnd);
      dst.writeUInt32LE(Math.floor((diskOffset + at - from) / PAGE) >>> 0, at);
      dst.writeUInt32LE(this.time % 2 ** 32, at + 8);
      let p = at + 24;
      let rows = 0;
      while (p + 96 < fill) {
        this.time += this.r.int(5000);
        dst.writeUInt32LE(++this.rowId >>> 0, p);
        dst.writeUInt32LE(this.time % 2 ** 32, p + 8);
        dst.writeUInt16LE(Math.floor(this.time / 2 ** 32), p + 12);
        dst.writeUInt32LE(this.r.int(10_000_000), p + 16);
        dst.writeUInt8(this.r.int(5), p + 20);
        rnd.copy(dst, p + 24, rows * 16, rows * 16 + 16);
        const name = `${WORDS[this.r.int(WORDS.length)]} ${WORDS[this.r.int(WORDS.length)]} ${this.r.int(1000)}`;
        const len = dst.write(name, p + 41, 'latin1');
        dst.writeUInt8(len, p + 40);
        p += 41 + len + (this.r.int(8) === 0 ? 24 : 0);
        rows++;
      }
      dst.writeUInt16LE(rows, at + 16);
    }
  }
}

export interface Region {
  offset: number;
  length: number;
  kind: Kind;
}

/** The layout of a disk (regions in order, covering [0, size)). */
export function layout(mix: MixName, size: number, seed: number): Region[] {
  const r = new Rng(`layout/${mix}/${size}/${seed}`);
  const shares = SHARES[mix];
  const out: Region[] = [];
  for (let offset = 0; offset < size; ) {
    const len = Math.min(size - offset, Math.max(4 * KiB, Math.round(Math.exp(Math.log(4 * KiB) + r.real() * Math.log(768)) / (4 * KiB)) * 4 * KiB));
    let x = r.real();
    let kind: Kind = shares[shares.length - 1]![0];
    for (const [k, s] of shares) {
      if (x < s) {
        kind = k;
        break;
      }
      x -= s;
    }
    out.push({ offset, length: len, kind });
    offset += len;
  }
  return out;
}

async function writeRegions(path: string, size: number, regions: Region[], seed: string, create: boolean): Promise<number> {
  const fh = await open(path, create ? 'w' : 'r+');
  const buf = Buffer.alloc(4 * MiB);
  const filler = new Filler(seed);
  let written = 0;
  try {
    if (create) await fh.truncate(size);
    for (const reg of regions) {
      if (reg.kind === 'hole') continue;
      for (let at = 0; at < reg.length; at += buf.length) {
        const n = Math.min(buf.length, reg.length - at);
        filler.fill(reg.kind, buf, 0, n, reg.offset + at);
        await fh.write(buf, 0, n, reg.offset + at);
        written += n;
      }
    }
    await fh.datasync();
  } finally {
    await fh.close();
  }
  return written;
}

/** Writes the disk image (sparse); returns the bytes of data (non-hole) written. */
export async function makeMixDisk(path: string, mix: MixName, size: number, seed: number): Promise<number> {
  return writeRegions(path, size, layout(mix, size, seed), `${mix}/${size}/${seed}`, true);
}

/** The incremental's change, applied in place; returns the bytes written. */
export async function mutateMixDisk(path: string, mix: MixName, size: number, seed: number): Promise<number> {
  const r = new Rng(`mutate/${mix}/${size}/${seed}`);
  const kind = MUTATION_KIND[mix];
  const gib = Math.max(1, Math.round(size / GiB));
  const regions: Region[] = [];
  for (let g = 0; g < gib; g++) {
    regions.push({ offset: r.int((size - 2 * MiB) / (4 * KiB)) * 4 * KiB, length: 2 * MiB, kind });
    for (let i = 0; i < 256; i++) {
      const length = (1 + r.int(4)) * 4 * KiB;
      regions.push({ offset: r.int((size - length) / (4 * KiB)) * 4 * KiB, length, kind });
    }
  }
  return writeRegions(path, size, regions, `mutate/${mix}/${size}/${seed}`, false);
}

/** `bytes` of one content kind (for the machine-limit measurements). */
export function contentSample(kind: 'text' | 'random' | 'db', bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  new Filler(`sample/${kind}`).fill(kind, b, 0, bytes, 0);
  return b;
}
