import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { OpenStackApi } from '../../openstack/api.js';
import { waitUntil } from '../../openstack/wait.js';
import type { Logger } from '../../lib/logger.js';
import { Temporaries } from './temporaries.js';
import { fetchImageAsRaw, type VolumeExport } from './volume-export.js';

/**
 * The API-only export of an image-booted server's root disk (issue 12 item 3, "image-booted
 * root disks through Nova createImage"), for servers with no Lifeboat worker on their host:
 *   Nova `createImage` (a Glance image of the root disk, named `lifeboat-tmp-<server>-…`, in
 *   Lifeboat's service view) → wait `active` → stream `GET /v2/images/{id}/file` into a sparse
 *   local file → a qcow2 (libvirt's snapshot format) is converted to raw with qemu-img (holes
 *   kept) → the image is deleted.
 * The image is registered the moment it exists and removed before this returns or throws
 * (success, failure, cancel through `signal`); a removal failure fails the export naming it.
 * Returns the raw local file (the caller deletes it).
 */
const STEP_TIMEOUT_MS = 30 * 60_000;

export async function exportRootImage(api: OpenStackApi, serverId: string, dir: string, log: Logger, signal?: AbortSignal): Promise<VolumeExport> {
  const temps = new Temporaries(log);
  const tag = `lifeboat-tmp-${serverId.slice(0, 8)}-${randomUUID().slice(0, 8)}`;
  let result: VolumeExport | undefined;
  try {
    const imageId = await api.createServerImage(serverId, tag, { lifeboat_temporary: 'root-disk-export' });
    const key = `Glance image ${imageId} (createImage of server ${serverId})`;
    temps.add(key, () => api.deleteImage(imageId));
    const failed = (i: { status: string }) => (i.status === 'killed' || i.status === 'deleted' ? i.status : null);
    const image = await waitUntil(key, () => api.getImage(imageId), (i) => i.status === 'active', { timeoutMs: STEP_TIMEOUT_MS, signal, failed });
    result = await fetchImageAsRaw(api, imageId, { size: Number(image?.size ?? 0), format: String(image?.disk_format ?? 'raw') }, path.join(dir, tag), 'the root disk', signal);
  } finally {
    const left = await temps.removeAll();
    if (left.length > 0) {
      if (result) await rm(result.file, { force: true });
      // eslint-disable-next-line no-unsafe-finally
      throw new Error(`could not remove the temporary image of server ${serverId}: ${left.join('; ')}`);
    }
  }
  return result;
}
