/**
 * Where backups are stored, as parsed from `LIFEBOAT_TARGET` by config/ and opened by
 * backend/open.ts. It lives in lib/ because both layers need the type and neither may import
 * the other. The URL scheme picks the kind: `file://<absolute dir>`, `s3://<bucket>/<prefix>`.
 */
export type BackupTarget = FileTarget | S3Target;

export interface FileTarget {
  kind: 'file';
  /** Absolute directory (local disk or an NFS mount). */
  path: string;
}

export interface S3Target {
  kind: 's3';
  bucket: string;
  /** Key prefix inside the bucket, '' or ending without '/' (e.g. `lifeboat/prod`). */
  prefix: string;
  /** S3-compatible endpoint (MinIO, Ceph RGW); null for AWS. Addressing is path-style. */
  endpoint: string | null;
  region: string | null;
}

/** The target as shown to users (snapshot `backup_target` fields, logs): no credentials. */
export function describeTarget(t: BackupTarget): string {
  switch (t.kind) {
    case 'file':
      return `file://${t.path}`;
    case 's3':
      return `s3://${t.bucket}${t.prefix ? `/${t.prefix}` : ''}`;
  }
}
