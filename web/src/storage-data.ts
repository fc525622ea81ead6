/**
 * The storage numbers of one workload from its snapshots (pure; tested in
 * test/dashboard-validation.test.ts). `size` is what a snapshot stored (new compressed chunk
 * bytes), `restore_size` the logical bytes it protects; their ratio over all snapshots is the
 * data reduction of deduplication, change tracking and compression together.
 */
export interface StorageSnap {
  created_at: string;
  finished_at: string | null;
  status: string;
  snapshot_type: string;
  size: number;
  restore_size?: number;
}

export interface StorageNumbers {
  fullBytes: number;
  incrementalBytes: number;
  fullCount: number;
  incrementalCount: number;
  logicalBytes: number;
  /** logical ÷ stored, null without stored bytes. */
  reduction: number | null;
  /** Chart columns: seconds since epoch, stored bytes in total so far, full and incremental bytes of that snapshot. */
  series: [number[], number[], (number | null)[], (number | null)[]];
}

function seconds(t: string | null, parse: (t: string) => Date | null): number | null {
  const d = t ? parse(t) : null;
  return d ? Math.floor(d.getTime() / 1000) : null;
}

export function storageNumbers(snaps: StorageSnap[], parse: (t: string) => Date | null): StorageNumbers {
  const done = snaps
    .filter((s) => s.status === 'available')
    .map((s) => ({ s, at: seconds(s.finished_at, parse) ?? seconds(s.created_at, parse) ?? 0 }))
    .sort((a, b) => a.at - b.at);
  const n: StorageNumbers = { fullBytes: 0, incrementalBytes: 0, fullCount: 0, incrementalCount: 0, logicalBytes: 0, reduction: null, series: [[], [], [], []] };
  let total = 0;
  for (const { s, at } of done) {
    const full = s.snapshot_type === 'full';
    if (full) {
      n.fullBytes += s.size;
      n.fullCount++;
    } else {
      n.incrementalBytes += s.size;
      n.incrementalCount++;
    }
    n.logicalBytes += s.restore_size ?? 0;
    total += s.size;
    n.series[0].push(at);
    n.series[1].push(total);
    n.series[2].push(full ? s.size : null);
    n.series[3].push(full ? null : s.size);
  }
  const stored = n.fullBytes + n.incrementalBytes;
  n.reduction = stored > 0 && n.logicalBytes > 0 ? n.logicalBytes / stored : null;
  return n;
}
