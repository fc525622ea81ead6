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
  /**
   * Memory for the upload buffers of every writer of this target in one process (`?upload_buffer_mib=`;
   * absent: the backend's default, 45 MiB). More lets the next pack fill while one goes up: faster
   * on a slow server, at that much more resident memory.
   */
  uploadBufferMiB?: number;
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

/** A configured backup target and the name users choose it by (workloadmgr 5.x `backup_target_types`). */
export interface NamedTarget {
  name: string;
  target: BackupTarget;
}

/** Target names: what `backup_target_types` takes and snapshots record. */
export const TARGET_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * The configured targets as the services see them: names, the default, descriptions. A stored
 * target name of null (workloads and snapshots from before several targets existed) means the
 * default target.
 */
export class TargetCatalog {
  private readonly byName: Map<string, string>;

  constructor(
    targets: readonly { name: string; description: string }[],
    readonly defaultName: string,
  ) {
    this.byName = new Map(targets.map((t) => [t.name, t.description]));
    if (!this.byName.has(defaultName)) throw new Error(`default backup target ${defaultName} is not among the targets`);
  }

  static of(targets: readonly NamedTarget[], defaultName: string): TargetCatalog {
    return new TargetCatalog(targets.map((t) => ({ name: t.name, description: describeTarget(t.target) })), defaultName);
  }

  /** One target named `default` described as `description` (tests, single-target setups). */
  static only(description: string): TargetCatalog {
    return new TargetCatalog([{ name: 'default', description }], 'default');
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The name a stored value stands for (null → the default). */
  resolve(name: string | null): string {
    return name ?? this.defaultName;
  }

  /** The target's user-facing description (no credentials); an unknown name says so. */
  describe(name: string | null): string {
    return this.byName.get(this.resolve(name)) ?? `${name} (not configured on this node)`;
  }
}
