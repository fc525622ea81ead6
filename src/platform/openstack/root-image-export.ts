import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { OpenStackApi } from '../../openstack/api.js';
import { waitUntil } from '../../openstack/wait.js';
import type { Logger } from '../../lib/logger.js';
import { qemuImg } from './qemu-img.js';
import { Temporaries } from './temporaries.js';
import { downloadImageTo, type VolumeExport } from './volume-export.js';

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
  const files: string[] = [];
  let result: VolumeExport | undefined;
  try {
    const imageId = await api.createServerImage(serverId, tag, { lifeboat_temporary: 'root-disk-export' });
    const key = `Glance image ${imageId} (createImage of server ${serverId})`;
    temps.add(key, () => api.deleteImage(imageId));
    const failed = (i: { status: string }) => (i.status === 'killed' || i.status === 'deleted' ? i.status : null);
    const image = await waitUntil(key, () => api.getImage(imageId), (i) => i.status === 'active', { timeoutMs: STEP_TIMEOUT_MS, signal, failed });
    const size = Number(image?.size ?? 0);
    const format = String(image?.disk_format ?? 'raw');
    const fetched = path.join(dir, `${tag}.${format}`);
    files.push(fetched);
    await downloadImageTo(api, imageId, fetched, size, signal);
    if (format === 'raw') result = { file: fetched, size };
    else {
      const raw = path.join(dir, `${tag}.raw`);
      files.push(raw);
      await qemuImg(['convert', '-f', format, '-O', 'raw', '-S', '64k', fetched, raw], 'the root disk', signal);
      await rm(fetched, { force: true });
      result = { file: raw, size: await virtualSize(raw) };
    }
  } catch (e) {
    await Promise.all(files.map((f) => rm(f, { force: true })));
    throw e;
  } finally {
    const left = await temps.removeAll();
    if (left.length > 0) {
      await Promise.all(files.map((f) => rm(f, { force: true })));
      // eslint-disable-next-line no-unsafe-finally
      throw new Error(`could not remove the temporary image of server ${serverId}: ${left.join('; ')}`);
    }
  }
  return result;
}

async function virtualSize(file: string): Promise<number> {
  const info = JSON.parse(await qemuImg(['info', '--output=json', '-f', 'raw', file], 'the root disk')) as { 'virtual-size'?: number };
  if (!info['virtual-size']) throw new Error('qemu-img reported no size for the converted root disk');
  return info['virtual-size'];
}
