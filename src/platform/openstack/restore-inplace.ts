import { rm } from 'node:fs/promises';
import type { Instance } from '../../domain/instance.js';
import { errorMessage, NotFoundError, ValidationError } from '../../lib/errors.js';
import type { NovaServer } from '../../openstack/types.js';
import { waitUntil } from '../../openstack/wait.js';
import type { PreparedInstance, RestoreTag } from '../platform.js';
import { openLocalDisks, Steps } from './restore.js';
import { imageKey, postAgain, startServer, STEP_TIMEOUT_MS, stopServer, uploadImage, type RestoreDeps, type RestoredFile } from './restore-resources.js';
import { Temporaries } from './temporaries.js';

/**
 * An in-place restore of Cinder volumes, API only: the data of each original volume is
 * overwritten and its id kept. The datamover writes each disk into a local sparse file; then
 * publish() stops the server (if it runs), and for each volume: uploads the bytes to Glance,
 * detaches the volume, rewrites it from the image with Cinder's `os-reimage` (volume API 3.68;
 * the volume must be detached: `available`), attaches it again at its device, removes the
 * image. The server is started again when it was running (or as `powerOn` says). A failure
 * still attaches a detached volume again and restarts the server, and names the step.
 *
 * The boot volume cannot be detached: Nova rewrites it instead, by rebuilding the server from
 * the uploaded image with `reimage_boot_volume` (compute API 2.93; Nova asks Cinder to reimage
 * the volume and waits for its event). The server keeps its id, ports, metadata, key and its
 * other volumes; its boot volume's `volume_image_metadata` names the restore's image (removed
 * afterwards), as after any rebuild. An image-backed local root disk cannot be restored in
 * place through the APIs: a 400 before any work (checkInPlace).
 */
export interface InPlaceTarget {
  server: NovaServer;
  instance: Instance;
}

const VOLUME_API_REIMAGE = 'volume 3.68';
const COMPUTE_API_REBUILD_VOLUME = 'compute 2.93';

/** A volume to rewrite in place; `boot`: the server's boot volume (rewritten by a rebuild). */
export interface InPlaceVolume {
  volumeId: string;
  boot: boolean;
}

/** The volume of each device, or a 400 naming what cannot be restored in place. */
export function checkInPlace(t: InPlaceTarget, devices: string[]): Map<string, InPlaceVolume> {
  const root = t.server['OS-EXT-SRV-ATTR:root_device_name'] ?? '/dev/vda';
  const out = new Map<string, InPlaceVolume>();
  for (const device of devices) {
    const disk = t.instance.disks.find((x) => x.device === device);
    if (!disk) throw new NotFoundError(`Server ${t.server.name} (${t.server.id}) has no disk ${device} any more`);
    if (!disk.volume_id) throw new ValidationError(`Disk ${device} of server ${t.server.name} is an image-backed local disk: it cannot be restored in place through the OpenStack APIs; restore it to a new server (selective restore)`);
    out.set(device, { volumeId: disk.volume_id, boot: device === root });
  }
  return out;
}

export async function openOpenStackInPlace(d: RestoreDeps, t: InPlaceTarget, disks: { device: string; size: number; data_bytes?: number }[], tag: RestoreTag, powerOn: boolean | undefined): Promise<PreparedInstance> {
  const volumes = checkInPlace(t, disks.map((x) => x.device));
  const { dir, sinks, files } = await openLocalDisks(d.scratchDir, tag, disks);
  return {
    instance: t.instance,
    sinks,
    publish: async () => {
      try {
        await rewrite(d, t, volumes, files, tag, powerOn ?? t.server.status === 'ACTIVE');
        return t.instance;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    discard: () => rm(dir, { recursive: true, force: true }),
    notes: () => ({ warnings: [], changeTrackingReset: false }),
  };
}

async function rewrite(d: RestoreDeps, t: InPlaceTarget, volumes: Map<string, InPlaceVolume>, files: Map<string, RestoredFile>, tag: RestoreTag, start: boolean): Promise<void> {
  const steps = new Steps(d.log, t.server.name);
  const temps = new Temporaries(d.log);
  const id = t.server.id;
  const t0 = Date.now();
  try {
    if (t.server.status !== 'SHUTOFF') await steps.run('server stop', () => stopServer(d, id));
    for (const [device, { volumeId, boot }] of volumes) {
      const imageId = await steps.run(`image of ${device}`, () => uploadImage(d, files.get(device)!, temps, tag));
      if (boot) {
        await steps.run(`rebuild from the image (boot volume ${volumeId})`, () => rebuildBootVolume(d, id, imageId));
      } else {
        await steps.run(`detach ${device}`, () => markDetached(d, volumeId, { restoreId: tag.restoreId, serverId: id, device }).then(() => detach(d, id, volumeId)));
        temps.add(`attachment of volume ${volumeId}`, () => attach(d, id, volumeId, device).then(() => unmarkDetached(d, volumeId)));
        await steps.run(`rewrite volume ${volumeId}`, () => reimage(d, volumeId, imageId));
        await steps.run(`attach ${device}`, () => attach(d, id, volumeId, device).then(() => unmarkDetached(d, volumeId)));
        temps.keep(`attachment of volume ${volumeId}`);
      }
      await steps.run(`remove image of ${device}`, () => d.tenantApi.deleteImage(imageId));
      temps.keep(imageKey(imageId));
    }
  } finally {
    const left = await temps.removeAll(); // images, and a volume left detached is attached again
    if (left.length > 0) d.log.error({ left }, 'in-place restore could not undo everything');
    if (start) await steps.run('server start', () => startServer(d, id));
    d.log.info({ server: id, stepMs: steps.times, totalMs: Date.now() - t0 }, 'OpenStack in-place restore done');
  }
}

/**
 * A volume detached by an in-place restore carries DETACHED_KEY = `<restore id> <server id>
 * <device>` until it is attached again, so the reconciler can attach it again if the worker
 * dies meanwhile (restore-cleanup.ts).
 */
export const DETACHED_KEY = 'lifeboat_inplace_detached';

export async function markDetached(d: Pick<RestoreDeps, 'tenant'>, volumeId: string, m: { restoreId: string; serverId: string; device: string }): Promise<void> {
  await d.tenant.call('volumev3', 'POST', `/volumes/${volumeId}/metadata`, { json: { metadata: { [DETACHED_KEY]: `${m.restoreId} ${m.serverId} ${m.device}` } } });
}

export async function unmarkDetached(d: Pick<RestoreDeps, 'tenant'>, volumeId: string): Promise<void> {
  await d.tenant.call('volumev3', 'DELETE', `/volumes/${volumeId}/metadata/${DETACHED_KEY}`, { expect: [200, 204, 404] });
}

async function detach(d: RestoreDeps, serverId: string, volumeId: string): Promise<void> {
  await d.tenant.call('compute', 'DELETE', `/servers/${serverId}/os-volume_attachments/${volumeId}`, { expect: [202, 404] });
  await waitUntil(`detach of Cinder volume ${volumeId}`, () => d.tenantApi.getVolume(volumeId), (v) => v.status === 'available', { timeoutMs: STEP_TIMEOUT_MS, failed: (v) => (v.status.startsWith('error') ? v.status : null) });
}

export async function attach(d: Pick<RestoreDeps, 'tenant' | 'tenantApi'>, serverId: string, volumeId: string, device: string): Promise<void> {
  const v = await d.tenantApi.getVolume(volumeId);
  if (v?.attachments.some((a) => a.server_id === serverId)) return;
  const attached = async () => !!(await d.tenantApi.getVolume(volumeId))?.attachments.some((a) => a.server_id === serverId);
  await postAgain(() => d.tenant.call('compute', 'POST', `/servers/${serverId}/os-volume_attachments`, { json: { volumeAttachment: { volumeId, device } } }), attached);
  await waitUntil(`attach of Cinder volume ${volumeId}`, () => d.tenantApi.getVolume(volumeId), (x) => x.status === 'in-use', { timeoutMs: STEP_TIMEOUT_MS, failed: (x) => (x.status.startsWith('error') ? x.status : null) });
}

/**
 * Cinder rewrites the (detached) volume from the image, keeping its id. A rewrite that ends in
 * `error` is tried once more: Cinder marks the volume `error` for any failure of the copy, its
 * own transient ones included (seen: its database locked while it recorded the image's
 * metadata); the volume is detached and about to be rewritten whole, so `available` is its true
 * state, which the service identity (admin) sets back before the second try.
 */
async function reimage(d: RestoreDeps, volumeId: string, imageId: string): Promise<void> {
  try {
    await reimageOnce(d, volumeId, imageId);
  } catch (e) {
    if ((await d.tenantApi.getVolume(volumeId))?.status !== 'error') throw e;
    d.log.warn({ volume: volumeId, err: errorMessage(e) }, 'Cinder failed to rewrite the volume; trying once more');
    await d.service.resetVolumeStatus(volumeId, 'available');
    await reimageOnce(d, volumeId, imageId);
  }
}

async function reimageOnce(d: RestoreDeps, volumeId: string, imageId: string): Promise<void> {
  const started = async () => (await d.tenantApi.getVolume(volumeId))?.status !== 'available';
  await postAgain(() => d.tenant.call('volumev3', 'POST', `/volumes/${volumeId}/action`, { json: { 'os-reimage': { image_id: imageId, reimage_reserved: false } }, headers: { 'openstack-api-version': VOLUME_API_REIMAGE } }), started);
  await waitUntil(`rewrite of Cinder volume ${volumeId}`, () => d.tenantApi.getVolume(volumeId), (v) => v.status === 'available', { timeoutMs: STEP_TIMEOUT_MS, failed: (v) => (v.status.startsWith('error') ? v.status : null) });
}

/**
 * Nova rebuilds the (stopped) server from the image, rewriting its boot volume through Cinder;
 * done when its task is over. A rebuild may leave the server running: it is stopped again, so
 * the restore's last step alone decides whether it runs.
 */
async function rebuildBootVolume(d: RestoreDeps, serverId: string, imageId: string): Promise<void> {
  const begun = async () => !!(await d.tenantApi.getServer(serverId))?.['OS-EXT-STS:task_state'];
  await postAgain(() => d.tenant.call('compute', 'POST', `/servers/${serverId}/action`, { json: { rebuild: { imageRef: imageId } }, headers: { 'openstack-api-version': COMPUTE_API_REBUILD_VOLUME } }), begun);
  // Accepted: the task starts at once (rebuilding), so 'no task' below means it ended.
  const after = await waitUntil(`rebuild of Nova server ${serverId}`, () => d.tenantApi.getServer(serverId), (v) => !v['OS-EXT-STS:task_state'] && v.status !== 'REBUILD', {
    timeoutMs: STEP_TIMEOUT_MS,
    failed: (v) => (v.status === 'ERROR' ? `ERROR${v.fault?.message ? `: ${v.fault.message}` : ''}` : null),
  });
  if (after?.status !== 'SHUTOFF') await stopServer(d, serverId);
}

