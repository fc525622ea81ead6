import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { OpenStackApi } from '../../openstack/api.js';
import { waitUntil } from '../../openstack/wait.js';
import { FileDiskSink } from '../disk-io/file-disk.js';
import type { Logger } from '../../lib/logger.js';
import { OpenStackError } from '../../openstack/errors.js';
import { qemuImg } from './qemu-img.js';
import { takeVolumeSnapshot } from './cinder-snapshot.js';
import { Temporaries } from './temporaries.js';

/**
 * The API-only export of one Cinder volume (OpenStack-in-a-box README §7.4), for volumes with
 * no Lifeboat worker on their compute host:
 *   snapshot (`force`, the volume may be in use; a lost one is taken again, cinder-snapshot.ts)
 *   → volume from the snapshot → upload that
 *   volume to Glance as qcow2 (never `force` upload: clouds refuse it by default) → stream
 *   `GET /v2/images/{id}/file` into a local file, converted to a sparse raw one → delete
 *   image, volume, snapshot.
 * The three temporaries belong to Lifeboat's service project (not the tenant's quota). Each is
 * registered the moment it exists and all are removed before this returns or throws (success,
 * failure, cancel through `signal`); a removal failure fails the export naming the leftover.
 * Returns the local file (the caller deletes it).
 */
export interface VolumeExport {
  file: string;
  size: number;
}

const STEP_TIMEOUT_MS = 30 * 60_000;

export async function exportVolume(api: OpenStackApi, volumeId: string, sizeGiB: number, dir: string, log: Logger, signal?: AbortSignal): Promise<VolumeExport> {
  const temps = new Temporaries(log);
  let result: VolumeExport | undefined;
  try {
    result = await exportThrough(api, temps, volumeId, sizeGiB, dir, log, signal);
  } finally {
    const left = await temps.removeAll();
    if (left.length > 0) {
      if (result) await rm(result.file, { force: true });
      // eslint-disable-next-line no-unsafe-finally
      throw new Error(`could not remove temporaries of volume ${volumeId}: ${left.join('; ')}`);
    }
  }
  return result;
}

async function exportThrough(api: OpenStackApi, temps: Temporaries, volumeId: string, sizeGiB: number, dir: string, log: Logger, signal?: AbortSignal): Promise<VolumeExport> {
  const tag = `lifeboat-tmp-${volumeId.slice(0, 8)}-${randomUUID().slice(0, 8)}`;
  const failed = (v: { status: string }) => (v.status.startsWith('error') ? v.status : null);
  const wait = { timeoutMs: STEP_TIMEOUT_MS, signal, failed };

  const snap = await takeVolumeSnapshot(api, volumeId, tag, temps, { log, signal });

  const vol = await api.createVolume({ size: sizeGiB, name: tag, snapshot_id: snap.id });
  const volKey = `Cinder volume ${vol.id}`;
  let uploaded = false;
  temps.add(volKey, () => removeVolume(api, vol.id, { uploaded }));
  await waitUntil(volKey, () => api.getVolume(vol.id), (v) => v.status === 'available', wait);

  const imageId = await uploadAsQcow2(api, vol.id, tag);
  const imageKey = `Glance image ${imageId}`;
  temps.add(imageKey, () => api.deleteImage(imageId));
  const image = await waitUntil(imageKey, () => api.getImage(imageId), (i) => i.status === 'active', { ...wait, failed: (i) => (i.status === 'killed' || i.status === 'deleted' ? i.status : null) });
  uploaded = true;
  return fetchImageAsRaw(api, imageId, { size: Number(image?.size ?? sizeGiB * 2 ** 30), format: String(image?.disk_format ?? 'raw') }, path.join(dir, tag), `volume ${volumeId}`, signal);
}

/**
 * The temporary volume goes to Glance as qcow2: Cinder leaves its unwritten blocks out, so a
 * mostly empty volume is neither uploaded nor downloaded in full (1 GiB volume holding 3 MiB,
 * loopback stack: upload 14.3 → 4.2 s, image 1 GiB → 3.4 MiB). A cloud that refuses qcow2
 * uploads (400) gets the raw one.
 */
async function uploadAsQcow2(api: OpenStackApi, volumeId: string, name: string): Promise<string> {
  try {
    return await api.uploadVolumeToImage(volumeId, name, 'qcow2');
  } catch (e) {
    if (!(e instanceof OpenStackError && e.status === 400)) throw e;
    return api.uploadVolumeToImage(volumeId, name, 'raw');
  }
}

/**
 * Streams a Glance image into `base`.<format> and returns it as a raw sparse file: a raw image
 * as it came, any other format converted by qemu-img with its holes kept (the fetched file is
 * removed). On failure no file is left.
 */
export async function fetchImageAsRaw(api: OpenStackApi, imageId: string, image: { size: number; format: string }, base: string, what: string, signal?: AbortSignal): Promise<VolumeExport> {
  const fetched = `${base}.${image.format}`;
  await downloadImageTo(api, imageId, fetched, image.size, signal);
  if (image.format === 'raw') return { file: fetched, size: image.size };
  const raw = `${base}.raw`;
  try {
    await qemuImg(['convert', '-f', image.format, '-O', 'raw', '-S', '64k', fetched, raw], what, signal);
    const info = JSON.parse(await qemuImg(['info', '--output=json', '-f', 'raw', raw], what)) as { 'virtual-size'?: number };
    if (!info['virtual-size']) throw new Error(`qemu-img reported no size for ${what}`);
    return { file: raw, size: info['virtual-size'] };
  } catch (e) {
    await rm(raw, { force: true });
    throw e;
  } finally {
    await rm(fetched, { force: true });
  }
}

/** Streams the image into a sparse file (all-zero blocks become holes). */
export async function downloadImageTo(api: OpenStackApi, imageId: string, target: string, size: number, signal?: AbortSignal): Promise<void> {
  const sink = await FileDiskSink.create(target, size);
  try {
    const res = await api.downloadImage(imageId, STEP_TIMEOUT_MS);
    let pos = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      signal?.throwIfAborted();
      const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (pos + buf.length > size) throw new Error(`Glance image ${imageId} is longer than its size ${size}`);
      await sink.write(buf, pos);
      pos += buf.length;
    }
    if (pos !== size) throw new Error(`Glance image ${imageId}: got ${pos} of ${size} bytes`);
    await sink.commit();
  } catch (e) {
    await sink.abort().catch(() => undefined);
    await rm(target, { force: true });
    throw e;
  }
}

/**
 * How long a temporary volume whose upload to Glance is complete (the image is active) may stay
 * `uploading` before its status is reset: Cinder sets it back to `available` right after the
 * upload, but a failed database update (the loopback stack's SQLite "database is locked") leaves
 * it `uploading` for ever, and Cinder refuses to delete it.
 */
const STUCK_UPLOAD_MS = 120_000;

/**
 * Deletes a volume and waits until it is gone (its snapshot can be deleted only then).
 * `uploaded`: the volume is Lifeboat's temporary and its upload to Glance finished, so an
 * `uploading` status that outlives STUCK_UPLOAD_MS is Cinder's lost update: reset (admin).
 */
export async function removeVolume(api: OpenStackApi, id: string, o: { uploaded?: boolean } = {}): Promise<void> {
  if (o.uploaded) await unstickUpload(api, id);
  // A volume still uploading (or detaching) cannot be deleted yet: wait for a settled state.
  await waitUntil(`Cinder volume ${id}`, () => api.getVolume(id), (v) => !['uploading', 'creating', 'downloading', 'attaching', 'detaching'].includes(v.status), { timeoutMs: STEP_TIMEOUT_MS, goneIsDone: true });
  await api.deleteVolume(id);
  await waitUntil(`deletion of Cinder volume ${id}`, () => api.getVolume(id), () => false, { timeoutMs: STEP_TIMEOUT_MS, goneIsDone: true, failed: (v) => (v.status === 'error_deleting' ? v.status : null) });
}

async function unstickUpload(api: OpenStackApi, id: string): Promise<void> {
  try {
    await waitUntil(`Cinder volume ${id} to end its upload`, () => api.getVolume(id), (v) => v.status !== 'uploading', { timeoutMs: STUCK_UPLOAD_MS, goneIsDone: true });
  } catch (e) {
    if ((await api.getVolume(id))?.status !== 'uploading') throw e;
    await api.resetVolumeStatus(id, 'available');
  }
}
