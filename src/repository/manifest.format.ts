import { CorruptMetadataError } from '../lib/errors.js';
import { sha256 } from './chunk-codec.js';
import { assertSealedAsScope, openMetadata, sealMetadata } from './envelope.js';

/**
 * Snapshot manifest (`manifests/<snapshotId>.json`), written last: its presence is what makes
 * a snapshot exist. Plain JSON so operators and import tools can read it; `checksum` is the
 * sha256 of the JSON text of all other fields (in the order written), so a truncated or
 * edited manifest is a clean IntegrityError rather than wrong data.
 */
export const MANIFEST_FORMAT = 'lifeboat-manifest/v1';

export interface ManifestDisk {
  /** The caller's disk name (any text; never used in a key). */
  diskKey: string;
  /** Object key of the disk index. */
  index: string;
  size: number;
  chunkSize: number;
  chunkCount: number;
  holes: number;
  changeToken: string | null;
  /** New compressed bytes this snapshot wrote for the disk. */
  storedBytes: number;
  /** Opaque caller metadata for this disk. */
  meta: unknown;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  snapshotId: string;
  projectId: string;
  writerId: string;
  startedAt: number;
  createdAt: number;
  disks: ManifestDisk[];
  /** Opaque caller metadata (workload, instances, flavors, networks...). */
  meta: unknown;
}

export function encodeManifest(m: Manifest): Buffer {
  const body = JSON.stringify(m);
  const checksum = sha256(Buffer.from(body, 'utf8')).toString('hex');
  const plain = Buffer.from(JSON.stringify({ ...m, checksum }, null, 1), 'utf8');
  return Buffer.concat(sealMetadata('manifest', { projectId: m.projectId, snapshotId: m.snapshotId }, [plain]));
}

export function decodeManifest(what: string, data: Buffer): Manifest {
  const plain = openMetadata('manifest', what, data);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(plain.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new CorruptMetadataError(`${what} is truncated or not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || parsed.format !== MANIFEST_FORMAT) {
    const found = typeof parsed === 'object' && parsed !== null ? ` (format ${JSON.stringify(parsed.format)})` : '';
    throw new CorruptMetadataError(`${what} is not a ${MANIFEST_FORMAT} manifest${found}`);
  }
  const { checksum, ...rest } = parsed;
  if (sha256(Buffer.from(JSON.stringify(rest), 'utf8')).toString('hex') !== checksum) {
    throw new CorruptMetadataError(`${what} is corrupt (checksum mismatch)`);
  }
  const m = rest as unknown as Manifest;
  if (typeof m.snapshotId !== 'string' || typeof m.projectId !== 'string' || !Array.isArray(m.disks)) {
    throw new CorruptMetadataError(`${what} lacks required fields`);
  }
  assertSealedAsScope(what, data, m.projectId, claimsEncryption(m.meta));
  return m;
}

/** Whether the caller's metadata says the workload is encrypted (jobs/manifest-meta.ts `workload.encryption`). */
function claimsEncryption(meta: unknown): boolean {
  const w = meta && typeof meta === 'object' ? (meta as { workload?: unknown }).workload : undefined;
  return !!w && typeof w === 'object' && (w as { encryption?: unknown }).encryption === true;
}
