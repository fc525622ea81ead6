import { ID_LEN } from './chunk-codec.js';
import type { ChunkLocation } from './pack-index.format.js';

/** High bit of the flags word: this copy was read back and verified by the current writer (memory only). */
const PROVEN = 0x8000_0000;
/** u32 words per entry: packOrdinal, offset, storedLength, rawLength, flags. */
const VALS = 5;
/** Entries per page: pages are added as the index grows and never copied (no growth spike). */
const PAGE_SHIFT = 13;
const PAGE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE - 1;
/** Slot tables are kept at most this full (tenths). */
const MAX_LOAD_TENTHS = 7;

/**
 * The ID_LEN bytes at `a[aOff]` and `b[bOff]` are equal. A plain loop, not Buffer.compare: a
 * probe is one call per lookup on the hot paths (index loading, dedup, reuse checks), and the
 * native call with its argument checks cost ~1 µs, more than the whole lookup otherwise. Ids
 * are uniform hashes, so a different id almost always differs in its first byte.
 */
function sameId(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let k = 0; k < ID_LEN; k++) if (a[aOff + k] !== b[bOff + k]) return false;
  return true;
}

function valAt(e: number): number {
  return (e & PAGE_MASK) * VALS;
}

/**
 * Chunk id → location, held in typed arrays with no per-entry JS object, because a project's
 * whole index is held while a backup or restore runs. Entries (id + five u32) live densely in
 * pages of 8,192 that are appended, never moved: 52 bytes per chunk. Lookups go through an
 * open-addressing table of u32 entry numbers (≤ 70 % full: 6–12 bytes per chunk), the only part
 * rebuilt on growth. So the whole index costs ≈ 60–65 bytes per chunk (≈ 1 MiB per GiB of
 * 64 KiB chunks) and growing it never holds two copies of the entries. Ids are keyed hash
 * outputs (BLAKE3 or HMAC-SHA256), so their first 4 bytes are already a uniform hash.
 */
export class ChunkIndex {
  /** Per slot: entry number + 1 (0 = empty). */
  private slots: Uint32Array;
  private readonly idPages: Buffer[] = [];
  private readonly valPages: Uint32Array[] = [];
  private readonly packs: string[] = [];
  private readonly packOrd = new Map<string, number>();
  private n = 0;

  constructor(initialCapacity = 1024) {
    this.slots = new Uint32Array(ChunkIndex.slotsFor(initialCapacity));
  }

  private static slotsFor(entries: number): number {
    let c = 16;
    while (entries * 10 > c * MAX_LOAD_TENTHS) c *= 2;
    return c;
  }

  get size(): number {
    return this.n;
  }

  /** Slot of `id`: the one holding it, or the empty one where it would go. */
  private slot(id: Uint8Array, idOff: number): number {
    const mask = this.slots.length - 1;
    let i = (id[idOff]! | (id[idOff + 1]! << 8) | (id[idOff + 2]! << 16) | (id[idOff + 3]! << 24)) & mask;
    for (;;) {
      const e = this.slots[i]!;
      if (e === 0) return i;
      const at = ((e - 1) & PAGE_MASK) * ID_LEN;
      if (sameId(this.idPages[(e - 1) >>> PAGE_SHIFT]!, at, id, idOff)) return i;
      i = (i + 1) & mask;
    }
  }

  /** The value page of entry number `e` (0-based); its words start at valAt(e). */
  private valPage(e: number): Uint32Array {
    return this.valPages[e >>> PAGE_SHIFT]!;
  }

  /** Entry number of `id`, or -1. */
  private find(id: Uint8Array, idOff: number): number {
    return this.slots[this.slot(id, idOff)]! - 1;
  }

  has(id: Uint8Array, idOff = 0): boolean {
    return this.find(id, idOff) >= 0;
  }

  get(id: Uint8Array, idOff = 0): ChunkLocation | undefined {
    const e = this.find(id, idOff);
    if (e < 0) return undefined;
    const v = this.valPage(e);
    const s = valAt(e);
    return { pack: this.packs[v[s]!]!, offset: v[s + 1]!, storedLength: v[s + 2]!, rawLength: v[s + 3]!, flags: v[s + 4]! & ~PROVEN };
  }

  /** True when markProven was called for the id's current copy. */
  isProven(id: Uint8Array, idOff = 0): boolean {
    const e = this.find(id, idOff);
    if (e < 0) return false;
    const v = this.valPage(e);
    const s = valAt(e);
    return (v[s + 4]! & PROVEN) !== 0;
  }

  /** Marks the id's current copy as read back and verified (cleared when the copy is replaced). */
  markProven(id: Uint8Array, idOff = 0): void {
    const e = this.find(id, idOff);
    if (e < 0) return;
    const v = this.valPage(e);
    const s = valAt(e);
    v[s + 4] = (v[s + 4]! | PROVEN) >>> 0;
  }

  /** Makes room for `total` entries at once (one slot table instead of a doubling series). */
  reserve(total: number): void {
    const want = ChunkIndex.slotsFor(total);
    if (want > this.slots.length) this.rehash(want);
  }

  /** Adds a location; an id already present keeps its first location unless `replace`. */
  set(id: Uint8Array, loc: ChunkLocation, idOff = 0, replace = false): void {
    this.setFields(id, idOff, loc.pack, loc.offset, loc.storedLength, loc.rawLength, loc.flags, replace);
  }

  /** set() without a location object (index loading: one call per stored record). */
  setFields(id: Uint8Array, idOff: number, pack: string, offset: number, storedLength: number, rawLength: number, flags: number, replace = false): void {
    if ((this.n + 1) * 10 > this.slots.length * MAX_LOAD_TENTHS) this.rehash(this.slots.length * 2);
    const i = this.slot(id, idOff);
    let e = this.slots[i]! - 1;
    if (e >= 0 && !replace) return;
    if (e < 0) {
      e = this.append(id, idOff);
      this.slots[i] = e + 1;
    }
    const v = this.valPage(e);
    const s = valAt(e);
    v[s] = this.packOrdinal(pack);
    v[s + 1] = offset;
    v[s + 2] = storedLength;
    v[s + 3] = rawLength;
    v[s + 4] = flags;
  }

  /** A new entry holding `id` (values set by the caller); its number. */
  private append(id: Uint8Array, idOff: number): number {
    const e = this.n++;
    if ((e & PAGE_MASK) === 0) {
      this.idPages.push(Buffer.alloc(PAGE * ID_LEN));
      this.valPages.push(new Uint32Array(PAGE * VALS));
    }
    this.idPages[e >>> PAGE_SHIFT]!.set(id.subarray(idOff, idOff + ID_LEN), (e & PAGE_MASK) * ID_LEN);
    return e;
  }

  private packOrdinal(pack: string): number {
    let o = this.packOrd.get(pack);
    if (o === undefined) {
      o = this.packs.length;
      this.packs.push(pack);
      this.packOrd.set(pack, o);
    }
    return o;
  }

  /** A new slot table of `size` slots for the same entries (the entries stay where they are). */
  private rehash(size: number): void {
    this.slots = new Uint32Array(size);
    const mask = size - 1;
    for (let e = 0; e < this.n; e++) {
      const ids = this.idPages[e >>> PAGE_SHIFT]!;
      const at = (e & PAGE_MASK) * ID_LEN;
      let i = (ids[at]! | (ids[at + 1]! << 8) | (ids[at + 2]! << 16) | (ids[at + 3]! << 24)) & mask;
      while (this.slots[i] !== 0) i = (i + 1) & mask;
      this.slots[i] = e + 1;
    }
  }
}
