import type { DiskSource } from '../platform.js';
import type { Virsh } from './virsh.js';

/** Bytes read from the disks of one backup (operator diagnostics; the tests assert them). */
export interface BackupReadStats {
  mode: 'full' | 'incremental';
  bytesRead: number;
}

/** Counts the bytes read through a source (BackupReadStats). */
export function counted(source: DiskSource, stats: BackupReadStats): DiskSource {
  const read = source.read.bind(source);
  return Object.assign(source, {
    read: async (buf: Buffer, offset: number, length: number, position: number) => {
      const n = await read(buf, offset, length, position);
      stats.bytesRead += n;
      return n;
    },
  });
}

/**
 * Where one backup's time went (logged at info as 'libvirt backup timings'; the bench prints
 * it): every virsh call by operation (count, summed ms), the begin and end steps' wall time,
 * and the NBD side: block-status queries (summed ms) and the span from the first read's start
 * to the last read's end.
 */
export interface BackupTimings {
  virsh: Record<string, { n: number; ms: number }>;
  beginMs: number;
  endMs: number;
  blockStatusMs: number;
  reads: number;
  readSpanMs: number;
}

export function newBackupTimings(): BackupTimings {
  return { virsh: {}, beginMs: 0, endMs: 0, blockStatusMs: 0, reads: 0, readSpanMs: 0 };
}

/** A virsh whose calls are added to `t.virsh` (the same connection and shells underneath). */
export function timedVirsh(virsh: Virsh, t: BackupTimings): Virsh {
  const timed = Object.create(virsh) as Virsh;
  timed.run = async (args, opts) => {
    const t0 = performance.now();
    try {
      return await virsh.run(args, opts);
    } finally {
      const op = (t.virsh[args[0] ?? 'virsh'] ??= { n: 0, ms: 0 });
      op.n++;
      op.ms += performance.now() - t0;
    }
  };
  return timed;
}

/** Adds a source's block-status time and read span to `t` (reads of all disks share one span). */
export function timedSource(source: DiskSource, t: BackupTimings, span: { first: number | null }): DiskSource {
  const read = source.read.bind(source);
  const wrapStatus = <A extends unknown[], R>(f: ((...a: A) => Promise<R>) | undefined) =>
    f &&
    (async (...a: A) => {
      const t0 = performance.now();
      try {
        return await f.apply(source, a);
      } finally {
        t.blockStatusMs += performance.now() - t0;
      }
    });
  const changed = wrapStatus(source.changedExtentsSince);
  const allocated = wrapStatus(source.allocatedExtents);
  return Object.assign(source, {
    read: async (buf: Buffer, offset: number, length: number, position: number) => {
      span.first ??= performance.now();
      const n = await read(buf, offset, length, position);
      t.reads++;
      t.readSpanMs = performance.now() - span.first;
      return n;
    },
    ...(changed ? { changedExtentsSince: changed } : {}),
    ...(allocated ? { allocatedExtents: allocated } : {}),
  });
}
