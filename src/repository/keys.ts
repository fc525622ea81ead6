import { ValidationError } from '../lib/errors.js';
import { isHexId, isUuid } from '../lib/ids.js';

/**
 * Every object key of the repository is built here, only from validated ids and hex digests,
 * so no caller text ever reaches a path. See README.md for the layout.
 */

/** Project, snapshot and writer ids: a lowercase UUID or 32 lowercase hex chars. */
export function assertId(kind: string, id: string): void {
  if (!(isHexId(id) || (isUuid(id) && /^[0-9a-f-]+$/.test(id)))) {
    throw new ValidationError(`invalid ${kind} id: ${JSON.stringify(String(id)).slice(0, 80)}`);
  }
}

const PACK_ID_RE = /^[0-9a-f]{32}-[0-9]{6}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;
const HEX32_RE = /^[0-9a-f]{32}$/;

export function isPackId(s: string): boolean {
  return PACK_ID_RE.test(s);
}

/** A pack id is `<writerId>-<seq>`: GC can tell which writer (lease) owns an unindexed pack. */
export function packId(writerId: string, seq: number): string {
  return `${writerId}-${String(seq).padStart(6, '0')}`;
}

export function packOwner(id: string): string {
  return id.slice(0, 32);
}

export const CONFIG_KEY = 'config.json';
export const GC_PLAN_KEY = 'gc/plan.json';

export const keys = {
  pack: (projectId: string, id: string) => `packs/${projectId}/${id}.pack`,
  packIndex: (projectId: string, id: string) => `index/${projectId}/${id}.pidx`,
  manifest: (snapshotId: string) => `manifests/${snapshotId}.json`,
  /** `diskHash` = first 32 hex of sha256(diskKey): the caller's disk name never becomes a path. */
  diskIndex: (snapshotId: string, writerId: string, diskHash: string) => `disks/${snapshotId}/${writerId}.${diskHash}.didx`,
  lease: (leaseId: string) => `locks/${leaseId}.json`,
  bad: (projectId: string, chunkHex: string, pack: string) => `bad/${projectId}/${chunkHex}.${pack}`,
  /** Marker: the loss of this pack was reported on the snapshots it affects (not reported again). */
  lostPack: (projectId: string, pack: string) => `bad/${projectId}/lost-${pack}`,
  /** The wrapped data key of an encrypted storage scope (data-keys.ts). */
  dataKey: (scope: string) => `datakeys/${scope}.json`,
};

/** Parses keys back; null when a key does not have the expected shape (foreign files are ignored). */
export const parse = {
  pack(key: string): { projectId: string; packId: string } | null {
    const m = /^packs\/([0-9a-f-]+)\/([0-9a-f]{32}-[0-9]{6})\.pack$/.exec(key);
    return m ? { projectId: m[1]!, packId: m[2]! } : null;
  },
  packIndex(key: string): { projectId: string; id: string } | null {
    const m = /^index\/([0-9a-f-]+)\/([0-9a-f]{32}-[0-9]{6})\.pidx$/.exec(key);
    return m ? { projectId: m[1]!, id: m[2]! } : null;
  },
  manifest(key: string): string | null {
    const m = /^manifests\/([0-9a-f-]+)\.json$/.exec(key);
    return m ? m[1]! : null;
  },
  diskIndex(key: string): { snapshotId: string; writerId: string } | null {
    const m = /^disks\/([0-9a-f-]+)\/([0-9a-f]{32})\.([0-9a-f]{32})\.didx$/.exec(key);
    return m ? { snapshotId: m[1]!, writerId: m[2]! } : null;
  },
  lease(key: string): string | null {
    const m = /^locks\/([0-9a-f]{32})\.json$/.exec(key);
    return m ? m[1]! : null;
  },
  dataKey(key: string): string | null {
    const m = /^datakeys\/([0-9a-f-]+)\.json$/.exec(key);
    return m ? m[1]! : null;
  },
  lostPack(key: string): { projectId: string; packId: string } | null {
    const m = /^bad\/([0-9a-f-]+)\/lost-([0-9a-f]{32}-[0-9]{6})$/.exec(key);
    return m ? { projectId: m[1]!, packId: m[2]! } : null;
  },
  bad(key: string): { projectId: string; chunkHex: string; packId: string } | null {
    const m = /^bad\/([0-9a-f-]+)\/([0-9a-f]{64})\.([0-9a-f]{32}-[0-9]{6})$/.exec(key);
    return m ? { projectId: m[1]!, chunkHex: m[2]!, packId: m[3]! } : null;
  },
};

export function isHex64(s: string): boolean {
  return HEX64_RE.test(s);
}
export function isHex32(s: string): boolean {
  return HEX32_RE.test(s);
}
