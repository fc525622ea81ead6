import { WLM_VERSION } from '../domain/snapshot.js';
import type { BackupTargetInfo } from '../services/backup-target.service.js';

/** The vendor's target types: a directory (local or an NFS mount) is `nfs`. */
function typeOf(t: BackupTargetInfo): 'nfs' | 's3' {
  return t.target.kind === 'file' ? 'nfs' : 's3';
}

/** A backup target type (5.x `backup_target_types`): here each target is its own type, named like it. */
export function backupTargetTypeView(t: BackupTargetInfo) {
  return { id: t.name, name: t.name, btt_name: t.name, is_default: t.isDefault ? 1 : 0, backup_target_id: t.name, type: typeOf(t) };
}

/**
 * One target as workloadmgr 5.x lists it (`GET /backup_targets`, admin only): where it is,
 * whether it is the default, `capacity` (bytes; null for S3) and `used` (bytes the live
 * snapshots recorded on it store), `status` available/offline by a read of its repository.
 */
export function backupTargetView(t: BackupTargetInfo) {
  const file = t.target.kind === 'file' ? t.target : null;
  const s3 = t.target.kind === 's3' ? t.target : null;
  return {
    id: t.name,
    name: t.name,
    type: typeOf(t),
    version: WLM_VERSION,
    created_at: null,
    updated_at: null,
    filesystem_export: file ? file.path : null,
    filesystem_export_mount_path: file ? file.path : null,
    s3_bucket: s3 ? s3.bucket : null,
    s3_prefix: s3 ? s3.prefix : null,
    s3_endpoint_url: s3 ? s3.endpoint : null,
    description: t.description,
    is_default: t.isDefault ? 1 : 0,
    immutable: 0,
    capacity: t.probe.capacity,
    available: t.probe.available,
    used: t.used.bytes,
    full_backups_size: t.used.full,
    incremental_backups_size: t.used.incremental,
    status: t.probe.reachable ? 'available' : 'offline',
    backup_target_types: [backupTargetTypeView(t)],
  };
}
