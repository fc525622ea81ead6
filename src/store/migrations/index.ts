import type { Kysely } from 'kysely';
// Scale-out (issue 14): listed first only to keep their lines apart from other areas' additions; order comes from the names.
import * as scaleoutTargets from './0007-backup-targets.js';
import * as scaleoutNodes from './0008-nodes.js';
import * as m0001 from './0001-core.js';
import * as m0002 from './0002-restores.js';
import * as m0003 from './0003-scheduler.js';
import * as fileSearches from './0009-file-searches.js'; // file recovery (issue 15); listed here only to keep merges apart
import * as m0004 from './0004-policies-quotas-settings.js';
import * as m0005 from './0005-job-target-node.js';
import * as m0006 from './0006-snapshot-checkpoints.js';
import * as m0007 from './0007-audit-log.js';
import * as workloadEncryption from './0010-workload-encryption.js'; // encrypted workloads (issue 17)
import * as repoVerifications from './0011-repo-verifications.js'; // dashboard: repo verify results (issue 16)
import * as snapshotParts from './0012-snapshot-parts.js'; // per-host child tasks of a snapshot (issue 12)

/**
 * Migrations are listed statically (not read from a folder) so the compiled package needs no
 * file lookups; names sort in application order. Add new ones at the end, never edit old ones.
 */
export interface Migration {
  up(db: Kysely<unknown>): Promise<void>;
}

export const migrations: Readonly<Record<string, Migration>> = {
  '0007-backup-targets': scaleoutTargets,
  '0008-nodes': scaleoutNodes,
  '0001-core': m0001,
  '0002-restores': m0002,
  '0003-scheduler': m0003,
  '0009-file-searches': fileSearches,
  '0004-policies-quotas-settings': m0004,
  '0005-job-target-node': m0005,
  '0006-snapshot-checkpoints': m0006,
  '0007-audit-log': m0007,
  '0010-workload-encryption': workloadEncryption,
  '0011-repo-verifications': repoVerifications,
  '0012-snapshot-parts': snapshotParts,
};

/** Migration names in application order. */
export function migrationNames(): string[] {
  return Object.keys(migrations).sort();
}
