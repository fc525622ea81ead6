import { ID_LEN } from './chunk-codec.js';
import type { ChunkLocation } from './pack-index.format.js';

/** High bit of the flags slot: this copy was read back and verified by the current writer (memory only). */
const PROVEN = 0x8000_0000;

/**
 * Chunk id → location, as a compact open-addressing hash table (about 56 bytes per chunk, no
 * per-entry JS objects), because a project's whole index is held while a backup runs. Ids are
 * keyed hash outputs (BLAKE3 or HMAC-SHA256), so their first 4 bytes are already a uniform hash.
 */
export class ChunkIndex {
  private cap: number;
  private ids: Buffer;
  /** Per slot: packOrdinal+1 (0 = empty), offset, storedLength, rawLength, flags. */
  private vals: Uint32Array;
  private packs: string[] = [];
  private packOrd = new Map<string, number>();
  private n = 0;

  constructor(initialCapacity = 1024) {
    let c = 16;
    while (c < initialCapacity * 2) c *= 2;
    this.cap = c;
    this.ids = Buffer.alloc(c * ID_LEN);
    this.vals = new Uint32Array(c * 5);
  }

  get size(): number {
    return this.n;
  }

  private slot(id: Uint8Array, idOff: number): number {
    const mask = this.cap - 1;
    let i = (id[idOff]! | (id[idOff + 1]! << 8) | (id[idOff + 2]! << 16) | (id[idOff + 3]! << 24)) & mask;
    for (;;) {
      if (this.vals[i * 5] === 0) return i;
      if (this.ids.compare(id, idOff, idOff + ID_LEN, i * ID_LEN, i * ID_LEN + ID_LEN) === 0) return i;
      i = (i + 1) & mask;
    }
  }

  has(id: Uint8Array, idOff = 0): boolean {
    return this.vals[this.slot(id, idOff) * 5] !== 0;
  }

  get(id: Uint8Array, idOff = 0): ChunkLocation | undefined {
    const s = this.slot(id, idOff) * 5;
    const p = this.vals[s]!;
    if (p === 0) return undefined;
    return {
      pack: this.packs[p - 1]!,
      offset: this.vals[s + 1]!,
      storedLength: this.vals[s + 2]!,
      rawLength: this.vals[s + 3]!,
      flags: this.vals[s + 4]! & 0x7fff_ffff,
    };
  }

  /** True when markProven was called for the id's current copy. */
  isProven(id: Uint8Array, idOff = 0): boolean {
    const s = this.slot(id, idOff) * 5;
    return this.vals[s] !== 0 && (this.vals[s + 4]! & PROVEN) !== 0;
  }

  /** Marks the id's current copy as read back and verified (cleared when the copy is replaced). */
  markProven(id: Uint8Array, idOff = 0): void {
    const s = this.slot(id, idOff) * 5;
    if (this.vals[s] !== 0) this.vals[s + 4] = (this.vals[s + 4]! | PROVEN) >>> 0;
  }

  /** Makes room for `total` entries at once (one rehash instead of a doubling series). */
  reserve(total: number): void {
    if (total * 10 <= this.cap * 7) return;
    let c = this.cap;
    while (total * 10 > c * 7) c *= 2;
    this.rehash(c);
  }

  /** Adds a location; an id already present keeps its first location unless `replace`. */
  set(id: Uint8Array, loc: ChunkLocation, idOff = 0, replace = false): void {
    if ((this.n + 1) * 10 > this.cap * 7) this.grow();
    const i = this.slot(id, idOff);
    const s = i * 5;
    if (this.vals[s] !== 0 && !replace) return;
    if (this.vals[s] === 0) {
      this.n++;
      this.ids.set(id.subarray(idOff, idOff + ID_LEN), i * ID_LEN);
    }
    let o = this.packOrd.get(loc.pack);
    if (o === undefined) {
      o = this.packs.length;
      this.packs.push(loc.pack);
      this.packOrd.set(loc.pack, o);
    }
    this.vals[s] = o + 1;
    this.vals[s + 1] = loc.offset;
    this.vals[s + 2] = loc.storedLength;
    this.vals[s + 3] = loc.rawLength;
    this.vals[s + 4] = loc.flags;
  }

  private grow(): void {
    this.rehash(this.cap * 2);
  }

  private rehash(cap: number): void {
    const oldIds = this.ids;
    const oldVals = this.vals;
    const oldCap = this.cap;
    this.cap = cap;
    this.ids = Buffer.alloc(this.cap * ID_LEN);
    this.vals = new Uint32Array(this.cap * 5);
    for (let i = 0; i < oldCap; i++) {
      if (oldVals[i * 5] === 0) continue;
      const j = this.slot(oldIds, i * ID_LEN);
      this.ids.set(oldIds.subarray(i * ID_LEN, i * ID_LEN + ID_LEN), j * ID_LEN);
      this.vals.set(oldVals.subarray(i * 5, i * 5 + 5), j * 5);
    }
  }
}
