import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { WorkerRequest, WorkerResponse } from './worker-protocol.js';
import { alignedSharedMemory } from '../lib/aligned-memory.js';

type Pending = { resolve: (r: WorkerResponse) => void; reject: (e: Error) => void };

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  dead: Error | null;
}

/**
 * A small pool of chunk workers (default: one per core, at least 2). Create one per process
 * and share it between backups and restores; `close()` ends the threads. Idle workers are
 * unref'd, so an unused pool never keeps the process alive. Workers hold no state between
 * requests (data lives in the caller's SharedArrayBuffers), so any request may go to any worker:
 * `pick` returns the least busy one.
 */
export class ChunkPool {
  private readonly slots: Slot[] = [];
  private nextTask = 1;
  private closed = false;

  constructor(readonly size = Math.max(2, Math.min(availableParallelism(), 8))) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./chunk.worker.js', import.meta.url));
    const slot: Slot = { worker, pending: new Map(), dead: null };
    worker.on('message', (msg: WorkerResponse) => {
      const p = slot.pending.get(msg.task);
      if (!p) return;
      slot.pending.delete(msg.task);
      if (slot.pending.size === 0) worker.unref();
      if (msg.op === 'error') p.reject(new Error(`chunk worker: ${msg.message}`));
      else p.resolve(msg);
    });
    const die = (e: Error) => {
      slot.dead = e;
      for (const p of slot.pending.values()) p.reject(e);
      slot.pending.clear();
    };
    worker.on('error', die);
    worker.on('exit', (code) => {
      if (!this.closed) die(new Error(`chunk worker exited with code ${code}`));
    });
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    return slot;
  }

  /** The least busy live worker. */
  pick(): number {
    let best = -1;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (s.dead) continue;
      if (best < 0 || s.pending.size < this.slots[best]!.pending.size) best = i;
    }
    if (best < 0) {
      // Every worker died (e.g. out of memory): replace them rather than fail forever.
      for (let i = 0; i < this.slots.length; i++) this.slots[i] = this.spawn();
      best = 0;
    }
    return best;
  }

  newTask(): number {
    return this.nextTask++;
  }

  call<R extends WorkerResponse>(slotNo: number, req: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<R> {
    if (this.closed) return Promise.reject(new Error('chunk pool is closed'));
    const slot = this.slots[slotNo]!;
    if (slot.dead) return Promise.reject(slot.dead);
    return new Promise<R>((resolve, reject) => {
      slot.pending.set(req.task, { resolve: resolve as (r: WorkerResponse) => void, reject });
      slot.worker.ref(); // a pending request keeps the process alive until it is answered
      slot.worker.postMessage(req, transfer);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

let shared: ChunkPool | null = null;

/** A process-wide pool created on first use (unref'd when idle). */
export function sharedChunkPool(): ChunkPool {
  shared ??= new ChunkPool();
  return shared;
}

/**
 * Shared memory for batch slots, reused across backups and restores: a disk's slots are
 * allocated once and handed to the next disk afterwards, so RSS stays flat over many disks
 * instead of waiting for GC to free each disk's buffers. At most `KEEP` idle buffers are kept.
 */
const idleSlots: SharedArrayBuffer[] = [];
const KEEP = 2;

export function acquireSlotMemory(bytes: number): SharedArrayBuffer {
  // The smallest idle buffer that fits and wastes at most half: a restore's slot buffer
  // (restore-slots.ts, 20 × 2 MiB) runs in the memory a backup (5 × (2 × 4 MiB) + ids/meta)
  // or a full's read-back proof (5 × 2 × 4 MiB) left, instead of adding its own.
  let best = -1;
  for (let i = 0; i < idleSlots.length; i++) {
    const n = idleSlots[i]!.byteLength;
    if (n >= bytes && n - bytes <= bytes / 2 && (best < 0 || n < idleSlots[best]!.byteLength)) best = i;
  }
  if (best >= 0) return idleSlots.splice(best, 1)[0]!;
  return alignedSharedMemory(bytes);
}

/** Only after every worker request naming this memory has been answered. */
export function releaseSlotMemory(sab: SharedArrayBuffer): void {
  idleSlots.push(sab);
  if (idleSlots.length > KEEP) idleSlots.shift();
}
