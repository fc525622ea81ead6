import type { Db } from '../store/db.js';
import { getSnapshot, listSnapshots, setSnapshotMetadata, snapshotMetadata, transitionSnapshot } from '../store/snapshot.store.js';
import { deleteSnapshotMetadataKeys, snapshotIdsInStatus, snapshotsWithMetadata } from '../store/file-recovery.store.js';
import type { Platform } from '../platform/platform.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { errorMessage, InvalidStateError, NotFoundError, ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import { toSecond } from '../lib/time.js';
import type { RequestContext } from '../domain/context.js';
import type { Snapshot } from '../domain/snapshot.js';
import { listDirectory, openFile, tarDirectory, type FileEntry, type OpenedFile } from '../recovery/browse.js';
import type { SnapshotMounts } from '../recovery/mounts.js';
import { ownScope } from './workload.service.js';

export interface SnapshotMountDeps {
  db: Db;
  clock: Clock;
  platform: Platform;
  /** The host's mounts; null in a process that does not serve them (api-only role). */
  mounts: SnapshotMounts | null;
  log: Logger;
}

export interface MountedSnapshot {
  snapshot_id: string;
  snapshot_name: string;
  workload_id: string;
  mounturl: string;
  status: string;
}

const MOUNT_KEYS = ['mount_vm_id', 'mounturl', 'mount_error'];

/**
 * Snapshot mount / dismount / browse / download (workloadmgr-api §4.2.7–4.2.9, F10). The
 * vendor attaches the snapshot to a recovery VM; Lifeboat mounts it read-only on its own host
 * (recovery/mounts.ts) and serves the files through the API. `mount_vm_id` is still checked to
 * be an instance of the caller's project and recorded. Status: available → mounting → mounted
 * → (dismount, idle timeout, restart) available; a failed mount goes back to available with
 * `mount_error` in the metadata.
 */
export class SnapshotMountService {
  constructor(private readonly d: SnapshotMountDeps) {}

  private now(): number {
    return toSecond(this.d.clock.now());
  }

  private async snapshot(ctx: RequestContext, snapshotId: string, workloadId?: string): Promise<Snapshot> {
    const s = isUuid(snapshotId) ? await getSnapshot(this.d.db, ownScope(ctx), snapshotId.toLowerCase()) : null;
    if (!s || (workloadId !== undefined && s.workload_id !== workloadId.toLowerCase())) throw NotFoundError.of('Snapshot', snapshotId);
    return s;
  }

  private engine(): SnapshotMounts {
    if (!this.d.mounts) throw new InvalidStateError('Snapshot mounts are served by the worker process of this host; this API process has none');
    return this.d.mounts;
  }

  async mount(ctx: RequestContext, snapshotId: string, workloadId: string | undefined, mountVmId: string): Promise<void> {
    const snap = await this.snapshot(ctx, snapshotId, workloadId);
    const mounts = this.engine();
    if (snap.status !== 'available') throw new InvalidStateError('Snapshot status must be available');
    const vm = isUuid(mountVmId) ? await this.d.platform.getInstance(ctx.projectId, mountVmId.toLowerCase()) : null;
    if (!vm) throw new ValidationError(`mount_vm_id ${JSON.stringify(mountVmId)} is not an instance of this project`);
    const busy = await snapshotsWithMetadata(this.d.db, ctx.projectId, 'mount_vm_id', vm.id, ['mounting', 'mounted']);
    if (busy.length > 0) throw new InvalidStateError(`snapshot ${busy[0]} already mounted with id:${vm.id}`);
    const now = this.now();
    if (!(await transitionSnapshot(this.d.db, snap.id, ['available'], 'mounting', now))) throw new InvalidStateError('Snapshot status must be available');
    await deleteSnapshotMetadataKeys(this.d.db, snap.id, ['mount_error']);
    await setSnapshotMetadata(this.d.db, snap.id, { mount_vm_id: vm.id }, now);
    void mounts.mount(snap.id, snap.backup_target).then(
      async () => {
        const ok = await transitionSnapshot(this.d.db, snap.id, ['mounting'], 'mounted', this.now());
        if (ok) await setSnapshotMetadata(this.d.db, snap.id, { mounturl: `/snapshots/${snap.id}/files` }, this.now());
        else await mounts.dismount(snap.id); // dismounted (or deleted) while mounting
      },
      async (e: unknown) => {
        this.d.log.warn({ snapshotId: snap.id, err: errorMessage(e) }, 'snapshot mount failed');
        await transitionSnapshot(this.d.db, snap.id, ['mounting'], 'available', this.now());
        await deleteSnapshotMetadataKeys(this.d.db, snap.id, MOUNT_KEYS);
        await setSnapshotMetadata(this.d.db, snap.id, { mount_error: errorMessage(e).slice(0, 500) }, this.now());
      },
    ).catch((e: unknown) => this.d.log.error({ snapshotId: snap.id, err: errorMessage(e) }, 'recording the mount outcome failed'));
  }

  async dismount(ctx: RequestContext, snapshotId: string, workloadId?: string): Promise<void> {
    const snap = await this.snapshot(ctx, snapshotId, workloadId);
    if (snap.status !== 'mounted' && snap.status !== 'mounting') throw new InvalidStateError('Snapshot status must be mounted');
    await this.engine().dismount(snap.id);
    await this.released(snap.id);
  }

  /** The snapshot is no longer mounted (dismount, idle timeout): back to available. */
  async released(snapshotId: string): Promise<void> {
    await transitionSnapshot(this.d.db, snapshotId, ['mounted', 'mounting'], 'available', this.now());
    await deleteSnapshotMetadataKeys(this.d.db, snapshotId, ['mount_vm_id', 'mounturl']);
  }

  async mountedList(ctx: RequestContext, workloadId?: string): Promise<MountedSnapshot[]> {
    const snaps = await listSnapshots(this.d.db, ownScope(ctx), { status: 'mounted', ...(workloadId ? { workloadId: workloadId.toLowerCase() } : {}) });
    const meta = await snapshotMetadata(this.d.db, snaps.map((s) => s.id));
    return snaps.map((s) => ({
      snapshot_id: s.id,
      snapshot_name: s.name,
      workload_id: s.workload_id,
      mounturl: meta.get(s.id)?.find((m) => m.key === 'mounturl')?.value ?? '',
      status: s.status,
    }));
  }

  /** Host root of a mounted snapshot the caller may read. */
  private async root(ctx: RequestContext, snapshotId: string): Promise<string> {
    const snap = await this.snapshot(ctx, snapshotId);
    const path = snap.status === 'mounted' ? this.engine().pathOf(snap.id) : null;
    if (!path) throw new InvalidStateError('Snapshot status must be mounted');
    this.engine().touch(snap.id);
    return path;
  }

  async listFiles(ctx: RequestContext, snapshotId: string, path: string): Promise<{ path: string; entries: FileEntry[]; truncated: boolean }> {
    return listDirectory(await this.root(ctx, snapshotId), path);
  }

  async openFile(ctx: RequestContext, snapshotId: string, path: string, rangeHeader?: string): Promise<OpenedFile> {
    return openFile(await this.root(ctx, snapshotId), path, rangeHeader);
  }

  async tar(ctx: RequestContext, snapshotId: string, path: string): Promise<{ name: string; stream: import('node:stream').Readable }> {
    return tarDirectory(await this.root(ctx, snapshotId), path);
  }

  /**
   * At start (worker role): removes mounts and appliances a killed process left and moves every
   * snapshot still `mounting`/`mounted` back to `available` (no mount survives a restart).
   */
  async reconcile(): Promise<number> {
    this.d.mounts?.reconcile();
    const ids = await snapshotIdsInStatus(this.d.db, ['mounting', 'mounted']);
    for (const id of ids) await this.released(id);
    return ids.length;
  }

  /** Shutdown: dismounts everything this process mounted and records it. */
  async close(): Promise<void> {
    const m = this.d.mounts;
    if (!m) return;
    const ids = m.mounted();
    await m.closeAll().catch((e: unknown) => this.d.log.warn({ err: errorMessage(e) }, 'dismounting snapshots at shutdown failed'));
    for (const id of ids) await this.released(id).catch(() => undefined);
  }
}
