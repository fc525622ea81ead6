import type { OpenStackApi } from '../../openstack/api.js';
import type { CinderSnapshot } from '../../openstack/types.js';
import { realWaitClock, waitUntil, type WaitClock } from '../../openstack/wait.js';
import type { Logger } from '../../lib/logger.js';
import type { Temporaries } from './temporaries.js';

/**
 * How long a temporary Cinder snapshot may stay `creating` before it is taken as lost. Backends
 * snapshot in seconds (LVM and Ceph copy on write); a snapshot still `creating` after minutes is
 * one whose create_snapshot call died in cinder-volume without marking it `error` (seen on the
 * loopback stack: "database is locked" inside create_snapshot left it `creating` for ever, and
 * the export waited for it until the snapshot job's own bound).
 */
export const SNAPSHOT_LOST_MS = 5 * 60_000;
/** Snapshots tried at most, counting the first: a lost or failed one is removed and made again. */
export const SNAPSHOT_TRIES = 3;
/** Outer bound of every wait here (a `creating` snapshot is given up sooner: SNAPSHOT_LOST_MS). */
const WAIT_TIMEOUT_MS = 30 * 60_000;

export interface SnapshotOptions {
  log: Logger;
  signal?: AbortSignal;
  clock?: WaitClock;
}

export const snapshotKey = (id: string): string => `Cinder snapshot ${id}`;

/**
 * Takes a `force` snapshot of the volume named `name`, registered in `temps` the moment it
 * exists, and waits until it is available. A snapshot that ends in `error` or stays `creating`
 * for SNAPSHOT_LOST_MS is removed and taken again, SNAPSHOT_TRIES times at most; then the step
 * fails naming the last one and what became of it.
 */
export async function takeVolumeSnapshot(api: OpenStackApi, volumeId: string, name: string, temps: Temporaries, o: SnapshotOptions): Promise<CinderSnapshot> {
  const clock = o.clock ?? realWaitClock;
  for (let attempt = 1; ; attempt++) {
    const snap = await api.createSnapshot(volumeId, attempt === 1 ? name : `${name}-${attempt}`);
    const key = snapshotKey(snap.id);
    // A removal gives a `creating` snapshot time to settle, unless it was already waited out here.
    const removal = { settleMs: SNAPSHOT_LOST_MS };
    temps.add(key, () => removeSnapshot(api, snap.id, { clock, settleMs: removal.settleMs }));
    const since = clock.now();
    const lost = (s: CinderSnapshot) => s.status === 'creating' && clock.now() - since > SNAPSHOT_LOST_MS;
    const s = await waitUntil(key, () => api.getSnapshot(snap.id), (x) => x.status === 'available' || x.status.startsWith('error') || lost(x), { timeoutMs: WAIT_TIMEOUT_MS, signal: o.signal, clock });
    if (s?.status === 'available') return s;
    const failure = s?.status === 'creating' ? `${key} of volume ${volumeId} stayed creating for ${SNAPSHOT_LOST_MS / 1000} s` : `${key} of volume ${volumeId} failed: ${s?.status}`;
    removal.settleMs = 0;
    if (attempt >= SNAPSHOT_TRIES) throw new Error(`${failure} (${SNAPSHOT_TRIES} snapshots tried)`);
    o.log.warn({ snapshot: snap.id, volume: volumeId, attempt }, `${failure}: removing it and taking another`);
    await temps.removeNow(key);
  }
}

/**
 * Deletes a temporary snapshot and waits until it is gone. One still `creating` is given
 * `settleMs` (default SNAPSHOT_LOST_MS) to settle (a cancel may come right after the create),
 * then its status is reset to `error` (admin; Cinder deletes no `creating` snapshot).
 */
export async function removeSnapshot(api: OpenStackApi, id: string, o: { clock?: WaitClock; settleMs?: number } = {}): Promise<void> {
  const key = snapshotKey(id);
  const clock = o.clock ?? realWaitClock;
  const settle = { timeoutMs: o.settleMs ?? SNAPSHOT_LOST_MS, goneIsDone: true, clock };
  const settled = await waitUntil(key, () => api.getSnapshot(id), (s) => s.status !== 'creating', settle).catch(() => undefined);
  if (settled === null) return;
  if (settled === undefined) await api.resetSnapshotStatus(id, 'error');
  await api.deleteSnapshot(id);
  await waitUntil(`deletion of ${key}`, () => api.getSnapshot(id), () => false, { timeoutMs: WAIT_TIMEOUT_MS, goneIsDone: true, clock, failed: (s) => (s.status === 'error_deleting' ? s.status : null) });
}
