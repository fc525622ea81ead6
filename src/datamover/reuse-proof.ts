import { IntegrityError, NotFoundError } from '../lib/errors.js';
import { ID_LEN, type ChunkIdKey } from '../repository/chunk-codec.js';
import type { ChunkLocation } from '../repository/pack-index.format.js';
import type { SnapshotWriter } from '../repository/snapshot-writer.js';
import { acquireSlotMemory, releaseSlotMemory, type ChunkPool } from './chunk-pool.js';
import type { WorkerResponse } from './worker-protocol.js';

interface Copy {
  /** Offset of the chunk id in the caller's id buffer. */
  off: number;
  loc: ChunkLocation;
}

export interface ReuseProofStats {
  /** Earlier copies read back and checked. */
  chunksProven: number;
  bytesRead: number;
  /** Copies that failed (marked bad; the chunk was uploaded again). */
  badCopies: number;
}

/**
 * Proof of reuse, for full snapshots: before a full snapshot deduplicates a chunk against a copy
 * an earlier snapshot stored, it reads that copy back, decodes it and checks its keyed hash on
 * the worker pool — once per chunk and snapshot (the writer remembers proven copies). A copy
 * that fails is marked bad on the target (nothing deduplicates against it again; restores and
 * verify skip it) and the chunk is uploaded again from the data just read, so the next full
 * snapshot heals a flipped byte without any operator command. Incrementals do not read back
 * (they still get the pack check of index-load.ts); `repo verify` covers them.
 *
 * Memory: per batch slot, 2 × slotBytes (stored bytes in, decoded bytes out) from the shared
 * slot cache, taken only when a copy needs proof; nothing per chunk.
 */
export class ReuseProof {
  readonly stats: ReuseProofStats = { chunksProven: 0, bytesRead: 0, badCopies: 0 };
  private mem: SharedArrayBuffer | null = null;

  constructor(
    private readonly writer: SnapshotWriter,
    private readonly pool: ChunkPool,
    private readonly key: ChunkIdKey,
    /** At least the batch size: a batch's chunks, stored or decoded, always fit. */
    private readonly slotBytes: number,
    private readonly slots: number,
  ) {}

  /**
   * Checks the chunks whose ids lie at `ids[off, off+32)` for each `off` and that the writer
   * would deduplicate against an unproven earlier copy. Resolves when every such copy is proven
   * or distrusted (then `writer.claim` hands the chunk out for upload).
   */
  async check(slot: number, ids: Uint8Array, offs: readonly number[]): Promise<void> {
    const todo: Copy[] = [];
    for (const off of offs) {
      const loc = this.writer.unprovenCopy(ids, off);
      if (!loc) continue;
      // Within bounds, a batch's distinct copies always fit the slot (≤ chunkSize each).
      if (loc.storedLength > this.writer.chunkSize || loc.rawLength > this.writer.chunkSize) await this.distrust(ids, { off, loc }, 'has a bad location');
      else todo.push({ off, loc });
    }
    if (todo.length === 0) return;
    this.mem ??= acquireSlotMemory(this.slots * 2 * this.slotBytes);
    todo.sort((a, b) => (a.loc.pack < b.loc.pack ? -1 : a.loc.pack > b.loc.pack ? 1 : a.loc.offset - b.loc.offset));
    for (const run of adjacentRuns(todo)) await this.proveRun(slot, ids, run);
  }

  /** Reads one run of back-to-back copies with one range read, then decodes it on a worker. */
  private async proveRun(slot: number, ids: Uint8Array, run: Copy[]): Promise<void> {
    const mem = this.mem!;
    const storedOff = slot * 2 * this.slotBytes;
    const start = run[0]!.loc.offset;
    const last = run[run.length - 1]!.loc;
    const length = last.offset + last.storedLength - start;
    try {
      await this.writer.readStoredInto({ ...run[0]!.loc, storedLength: length }, new Uint8Array(mem, storedOff, length));
      this.stats.bytesRead += length;
    } catch (e) {
      if (!(e instanceof NotFoundError) && !(e instanceof IntegrityError)) throw e;
      for (const c of run) await this.distrust(ids, c, `cannot be read: ${e.message}`);
      return;
    }
    for (let from = 0; from < run.length; ) {
      const part = run.slice(from);
      const items = new Uint32Array(part.length * 4);
      const partIds = new Uint8Array(part.length * ID_LEN);
      part.forEach((c, k) => {
        items.set([c.loc.offset - start, c.loc.storedLength, c.loc.rawLength, c.loc.flags], k * 4);
        partIds.set(ids.subarray(c.off, c.off + ID_LEN), k * ID_LEN);
      });
      const r = await this.pool.call<Extract<WorkerResponse, { op: 'decode' }>>(this.pool.pick(), {
        op: 'decode',
        task: this.pool.newTask(),
        stored: mem,
        storedOff,
        items,
        ids: partIds,
        key: this.key,
        out: mem,
        outOff: storedOff + this.slotBytes,
      });
      const failedAt = r.error ? r.error[0] : part.length;
      for (let k = 0; k < failedAt; k++) this.writer.markProven(ids, part[k]!.off);
      this.stats.chunksProven += failedAt;
      if (!r.error) return;
      await this.distrust(ids, part[failedAt]!, `is corrupt: ${r.error[1]}`);
      from += failedAt + 1;
    }
  }

  private async distrust(ids: Uint8Array, c: Copy, why: string): Promise<void> {
    this.stats.badCopies++;
    await this.writer.distrust(ids, c.off, c.loc, `full snapshot read-back: chunk ${Buffer.from(ids.subarray(c.off, c.off + ID_LEN)).toString('hex')} in pack ${c.loc.pack} ${why}`);
  }

  /** Only after every check() has resolved. */
  close(): void {
    if (this.mem) releaseSlotMemory(this.mem);
    this.mem = null;
  }
}

/** Splits copies (sorted by pack, offset) into runs stored back to back in one pack. */
function adjacentRuns(copies: Copy[]): Copy[][] {
  const runs: Copy[][] = [];
  let cur: Copy[] = [];
  for (const c of copies) {
    const prev = cur[cur.length - 1];
    if (prev && prev.loc.pack === c.loc.pack && prev.loc.offset + prev.loc.storedLength === c.loc.offset) cur.push(c);
    else if (prev && prev.loc.pack === c.loc.pack && prev.loc.offset === c.loc.offset) continue; // same copy twice in a batch
    else {
      if (cur.length > 0) runs.push(cur);
      cur = [c];
    }
  }
  if (cur.length > 0) runs.push(cur);
  return runs;
}
