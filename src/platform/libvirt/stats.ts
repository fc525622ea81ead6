import type { DiskSource } from '../platform.js';

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
