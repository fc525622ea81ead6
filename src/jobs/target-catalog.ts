import type { Repository } from '../repository/repository.js';
import type { RepositorySet } from '../repository/repository-set.js';
import type { Manifest } from '../repository/manifest.format.js';
import { manifestMetaProblem, type SnapshotManifestMeta, type TargetScan, type TargetSnapshot, type UnreadableSnapshot } from '../domain/target-snapshot.js';
import { EncryptionKeyError, errorMessage, isEngineFault } from '../lib/errors.js';

/**
 * Every configured target's manifests (import, orphans): a workload on a non-default target
 * (LIFEBOAT_TARGETS) is found there, its snapshots tagged with that target's name.
 */
export async function scanTargets(repos: RepositorySet): Promise<TargetScan> {
  const out: TargetScan = { snapshots: [], unreadable: [] };
  for (const t of repos.entries()) {
    const scan = await scanTarget(t.repo);
    for (const s of scan.snapshots) out.snapshots.push(t.isDefault ? s : { ...s, target: t.name });
    out.unreadable.push(...scan.unreadable);
  }
  out.snapshots.sort((a, b) => a.committedAt - b.committedAt || a.snapshotId.localeCompare(b.snapshotId));
  out.unreadable.sort((a, b) => a.snapshot_id.localeCompare(b.snapshot_id));
  return out;
}

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
      // An encrypted workload whose key this node cannot open is reported like a damaged manifest.
      if (!isEngineFault(e) && !(e instanceof EncryptionKeyError)) throw e;
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
