import { IntegrityError } from '../lib/errors.js';

/** A chunk a reader needed: which copy failed, and how. */
export interface ChunkDamage {
  projectId: string;
  /** Chunk id (hex). */
  chunk: string;
  /** Pack of the failed copy; null when no usable copy is indexed at all. */
  pack: string | null;
  kind: 'missing' | 'corrupt';
}

/**
 * Stored data a restore needed is missing or corrupt. Carries the chunk and copy so the caller
 * can mark the snapshots that reference it (jobs/damage.job.ts); a corrupt copy has already been
 * marked bad on the target, so the next backup uploads that chunk again.
 */
export class DataDamageError extends IntegrityError {
  constructor(
    message: string,
    readonly damage: ChunkDamage,
  ) {
    super(message);
  }

  /** Short cause for a snapshot's warning (ids only: no paths). */
  get summary(): string {
    const d = this.damage;
    if (d.kind === 'corrupt') return `restore found a corrupt copy of chunk ${d.chunk.slice(0, 16)}… in pack ${d.pack}`;
    return d.pack ? `restore could not read pack ${d.pack}` : `restore found no copy of chunk ${d.chunk.slice(0, 16)}…`;
  }
}
