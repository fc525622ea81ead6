import type { Db } from '../store/db.js';
import { storedBytesOnTarget } from '../store/snapshot.store.js';
import type { BackupTarget, NamedTarget, TargetCatalog } from '../lib/target.js';

/** What the node knows of a target's storage right now (app/targets.ts measures it). */
export interface TargetProbe {
  /** False when the target did not answer (its repository config could not be read). */
  reachable: boolean;
  /** Bytes the storage can hold (a file system's size); null where there is no such number (S3). */
  capacity: number | null;
  /** Bytes free on the storage; null where unknown. */
  available: number | null;
}

/** One configured target as the admin list shows it. */
export interface BackupTargetInfo {
  name: string;
  target: BackupTarget;
  description: string;
  isDefault: boolean;
  probe: TargetProbe;
  /** Bytes stored by the live snapshots recorded on this target, and split by type. */
  used: { bytes: number; full: number; incremental: number };
}

export interface BackupTargetServiceDeps {
  db: Db;
  catalog: TargetCatalog;
  targets: readonly NamedTarget[];
  probe(t: NamedTarget): Promise<TargetProbe>;
}

/**
 * The configured backup targets (workloadmgr 5.x `backup_targets`) with their capacity and
 * what Lifeboat stores there. Targets are declared in configuration (LIFEBOAT_TARGETS), not
 * created through the API: every node must open the same set, so a change goes through the
 * deployment's configuration.
 */
export class BackupTargetService {
  constructor(private readonly d: BackupTargetServiceDeps) {}

  async list(): Promise<BackupTargetInfo[]> {
    return Promise.all(
      this.d.targets.map(async (t) => {
        const isDefault = t.name === this.d.catalog.defaultName;
        const [probe, used] = await Promise.all([this.d.probe(t), storedBytesOnTarget(this.d.db, { name: t.name, isDefault })]);
        return { name: t.name, target: t.target, description: this.d.catalog.describe(t.name), isDefault, probe, used };
      }),
    );
  }
}
