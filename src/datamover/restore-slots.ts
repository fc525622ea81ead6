import { FifoPool } from '../lib/fifo-pool.js';
import { acquireSlotMemory, releaseSlotMemory } from './chunk-pool.js';

/**
 * A restore's slot memory: ONE shared buffer cut into slots of `slotBytes` (page-aligned when
 * `slotBytes` is a multiple of the page size, as the default 2 MiB is), in two pools:
 *
 * - **stored** slots hold a group's pack bytes from its read until it is decoded (an all-raw
 *   group, whose stored bytes are the disk's bytes, keeps its stored slot until written);
 * - **raw** slots hold a compressed group's decoded bytes from its decode until written.
 *
 * A group takes a stored slot, then (compressed) a raw slot, and gives the stored slot back as
 * soon as it is decoded. A group waiting for a raw slot holds only its stored slot, and every
 * raw slot holder needs nothing more to finish, so the pools cannot deadlock.
 *
 * Why two pools and not one pair of slots per group: a group holds pack bytes for its read and
 * decode and raw bytes for its decode and write, each about two thirds of its life; pairing them
 * kept both for all of it. Split, the same number of groups moves in less memory, and that
 * memory (`budget`, by default what a backup's batch slots take) is reused from the idle
 * buffer a backup in the same process leaves (chunk-pool.ts), where a restore's two 32 MiB
 * buffers took that one and a new one beside it (the service bench's restore peak RSS,
 * 266-269 MiB, was 45-50 MiB above its backups').
 */
export class RestoreSlots {
  readonly mem: SharedArrayBuffer;
  readonly stride: number;
  private readonly stored: FifoPool<number>;
  private readonly raw: FifoPool<number>;

  constructor(slotBytes: number, counts: { stored: number; raw: number }) {
    this.stride = slotBytes;
    this.mem = acquireSlotMemory((counts.stored + counts.raw) * this.stride);
    this.stored = new FifoPool(range(0, counts.stored));
    this.raw = new FifoPool(range(counts.stored, counts.stored + counts.raw));
  }

  /** Stored and raw slot counts for a slot size: half each (stored gets the odd one) of `budget`, each at most `groups`. */
  static counts(slotBytes: number, budget: number, groups: number): { stored: number; raw: number } {
    const n = Math.max(2, Math.floor(budget / slotBytes));
    const cap = Math.max(1, groups);
    return { stored: Math.min(cap, Math.ceil(n / 2)), raw: Math.min(cap, Math.floor(n / 2)) };
  }

  /** Byte offset of a slot in `mem`. */
  offset(slot: number): number {
    return slot * this.stride;
  }

  takeStored(): Promise<number> {
    return this.stored.take();
  }
  releaseStored(slot: number): void {
    this.stored.give(slot);
  }
  takeRaw(): Promise<number> {
    return this.raw.take();
  }
  releaseRaw(slot: number): void {
    this.raw.give(slot);
  }

  /** Only after every worker request naming this memory has been answered. */
  close(): void {
    releaseSlotMemory(this.mem);
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => to - 1 - i);
