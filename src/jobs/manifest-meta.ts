import type { DbOrTx } from '../store/db.js';
import { getPolicy } from '../store/policy.store.js';
import { snapshotMetadata } from '../store/snapshot.store.js';
import type { Workload } from '../domain/workload.js';
import type { Snapshot, SnapshotInstance } from '../domain/snapshot.js';
import type { ManifestPolicy, SnapshotManifestMeta } from '../domain/target-snapshot.js';

/**
 * The meta a snapshot's manifest carries (domain/target-snapshot.ts): everything a fresh
 * install needs to rebuild the workload, its schedule and policy and the snapshot's detail view
 * from the target alone (import, workloadmgr-api §4.12).
 */
export async function snapshotManifestMeta(
  db: DbOrTx,
  x: {
    snapshot: Snapshot;
    workload: Workload;
    host: string;
    startedAt: number;
    warnings: string[];
    metadata: Record<string, string>;
    instances: SnapshotInstance[];
    disks: SnapshotManifestMeta['disks'];
    checkpoints: unknown;
  },
): Promise<SnapshotManifestMeta> {
  const { snapshot: s, workload: w } = x;
  const own = Object.fromEntries(((await snapshotMetadata(db, [s.id])).get(s.id) ?? []).map((m) => [m.key, m.value]));
  return {
    snapshot: {
      id: s.id,
      name: s.name,
      description: s.description,
      snapshot_type: s.snapshot_type,
      created_at: s.created_at,
      user_id: s.user_id,
      is_scheduled: s.is_scheduled,
      host: x.host,
      warning_msg: x.warnings.length > 0 ? x.warnings.join('; ') : null,
      started_at: x.startedAt,
      metadata: { ...own, ...x.metadata },
    },
    workload: {
      id: w.id,
      name: w.name,
      description: w.description,
      project_id: w.project_id,
      workload_type_id: w.workload_type_id,
      metadata: w.metadata,
      user_id: w.user_id,
      source_platform: w.source_platform,
      availability_zone: w.availability_zone,
      jobschedule: w.jobschedule,
      created_at: w.created_at,
      instances: w.instances,
      policy: await manifestPolicy(db, w.metadata.policy_id),
      ...(w.encryption ? { encryption: true, secret_uuid: w.secret_uuid ?? null } : {}),
    },
    instances: x.instances,
    disks: x.disks,
    checkpoints: x.checkpoints,
  };
}

async function manifestPolicy(db: DbOrTx, policyId: string | undefined): Promise<ManifestPolicy | null> {
  if (!policyId) return null;
  const p = await getPolicy(db, policyId);
  if (!p) return null;
  return { id: p.id, name: p.name, description: p.description, fields: Object.fromEntries(p.fields.map((f) => [f.field_name, f.value])) };
}
