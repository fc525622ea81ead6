import type { Repository } from '../repository/repository.js';
import type { Manifest } from '../repository/manifest.format.js';
import { manifestMetaProblem, type SnapshotManifestMeta, type TargetScan, type TargetSnapshot, type UnreadableSnapshot } from '../domain/target-snapshot.js';
import { errorMessage, isEngineFault } from '../lib/errors.js';

/**
 * Reads every manifest on the target (import, orphans). A manifest that is damaged (checksum,
 * truncation) or carries no snapshot-job meta is reported in `unreadable`, never guessed at; a
 * failing listing or a target error other than a damaged object throws (nothing is imported
 * from half a listing).
 */
export async function scanTarget(repo: Repository): Promise<TargetScan> {
  const ids = await repo.listSnapshots();
  const snapshots: TargetSnapshot[] = [];
  const unreadable: UnreadableSnapshot[] = [];
  const readOne = async (id: string): Promise<void> => {
    let m: Manifest;
    try {
      m = await repo.readManifest(id);
    } catch (e) {
      if (!isEngineFault(e)) throw e;
      unreadable.push({ snapshot_id: id, reason: `manifest unreadable: ${errorMessage(e)}` });
      return;
    }
    const problem = manifestMetaProblem(m.meta);
    if (problem) {
      unreadable.push({ snapshot_id: id, reason: problem });
      return;
    }
    snapshots.push({
      snapshotId: m.snapshotId,
      storageProjectId: m.projectId,
      startedAt: m.startedAt,
      committedAt: m.createdAt,
      storedBytes: m.disks.reduce((a, d) => a + d.storedBytes, 0),
      totalBytes: m.disks.reduce((a, d) => a + d.size, 0),
      meta: m.meta as SnapshotManifestMeta,
    });
  };
  // A few manifests in flight: an S3 target answers each get in a round trip.
  let next = 0;
  const worker = async () => {
    while (next < ids.length) await readOne(ids[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(8, ids.length) }, worker));
  snapshots.sort((a, b) => a.committedAt - b.committedAt || a.snapshotId.localeCompare(b.snapshotId));
  unreadable.sort((a, b) => a.snapshot_id.localeCompare(b.snapshot_id));
  return { snapshots, unreadable };
}
