import type { Backend } from '../backend/backend.js';
import { listAll } from '../backend/backend.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { CorruptMetadataError, IntegrityError, MissingObjectError, NotFoundError, ValidationError } from '../lib/errors.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { deriveProjectKey, type ChunkIdKey } from './chunk-codec.js';
import { ChunkIndex } from './chunk-index.js';
import { ID_LEN, isZeroId } from './chunk-codec.js';
import { newConfig, readConfig, type InitOptions, type RepoConfig } from './config.js';
import { decodeDiskIndex, type DiskIndex } from './disk-index.format.js';
import type { RepoFormat } from './format.js';
import { assertId, CONFIG_KEY, GC_PLAN_KEY, keys, parse } from './keys.js';
import { Lease, type LeaseKind } from './lease.js';
import { decodeManifest, type Manifest } from './manifest.format.js';
import { type ChunkLocation } from './pack-index.format.js';
import { loadIndexOnce, type IndexRepair, type LoadedIndex, type LoadIndexOptions, type LostPack } from './index-load.js';
import { collectGarbage, type GcOptions, type GcReport } from './gc.js';
import { newLeaseId, SnapshotWriter } from './snapshot-writer.js';
import { verifyRepository, type VerifyResult } from './verify.js';
import { DataKeys, scopeDataKey, type ScopeOwner } from './data-keys.js';
import { isSealed, sealedScope, unsealedError } from './envelope.js';
import { KeySources, type KeySource, type SecretKeyReader } from './key-source.js';

export interface RepositoryOptions {
  clock?: Clock;
  logger?: Logger;
  /** A lease is renewed every ttl/3; GC treats it as dead after ttl + grace. Default 5 min. */
  leaseTtlMs?: number;
  /** Extra safety margin for clock skew and stalls before GC trusts an expired lease. Default 5 min. */
  graceMs?: number;
  /** The default key-encryption key source of encrypted workloads (the key file; key-source.ts); without one their data cannot be opened. */
  keySource?: KeySource | null;
  /** Barbican secrets as key-encryption keys (`secret_uuid`; the OpenStack platform's key manager); null: not read on this node. */
  secretKeys?: SecretKeyReader | null;
}

export interface GcPlan {
  planId: string;
  createdAt: number;
  /** projectId → pack ids GC intends to delete or rewrite. Writers never dedup against them. */
  condemned: Record<string, string[]>;
}

export interface StartSnapshotArgs {
  projectId: string;
  snapshotId: string;
  /** Encrypted workload: its scope's owner (the data key is made or opened first). */
  encryptedFor?: ScopeOwner | null;
}

/**
 * A backup repository on a Backend (format: README.md). One instance per process is enough;
 * it holds no state that other processes need: every coordination goes through the target.
 */
export class Repository {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly leaseTtlMs: number;
  readonly graceMs: number;
  private readonly secret: Buffer;
  /** Data keys of the encrypted workloads on this target (data-keys.ts). */
  readonly dataKeys: DataKeys;

  private constructor(
    readonly backend: Backend,
    readonly config: RepoConfig,
    /** The checked format version, chunk id hash and features (format.ts). */
    readonly format: RepoFormat,
    opts: RepositoryOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.leaseTtlMs = opts.leaseTtlMs ?? 5 * 60_000;
    this.graceMs = opts.graceMs ?? 5 * 60_000;
    this.secret = Buffer.from(config.secret, 'base64');
    this.dataKeys = new DataKeys(backend, new KeySources(opts.keySource ?? null, opts.secretKeys ?? null), this.clock, this.logger);
  }

  /**
   * Opens an existing repository; NotFoundError when the target has no config, and
   * UnsupportedFormatError (versions named) when it is in a format this code does not read.
   */
  static async open(backend: Backend, opts: RepositoryOptions = {}): Promise<Repository> {
    const found = await readConfig(backend);
    if (!found) throw new NotFoundError('no Lifeboat repository at the backup target (config.json missing)');
    return new Repository(backend, found.config, found.format, opts);
  }

  /** Opens the repository, creating it first when the target is empty. Idempotent. */
  static async init(backend: Backend, init: InitOptions = {}, opts: RepositoryOptions = {}): Promise<Repository> {
    const existing = await readConfig(backend);
    if (existing) return new Repository(backend, existing.config, existing.format, opts);
    const config = newConfig(init, (opts.clock ?? systemClock).now());
    await backend.put(CONFIG_KEY, Buffer.from(JSON.stringify(config, null, 1)));
    return Repository.open(backend, opts);
  }

  get chunkSize(): number {
    return this.config.chunkSize;
  }

  /**
   * The storage scope's chunk id function and key (format.ts: the repository's chunkIdHash). An
   * encrypted workload's scope (unlocked first: every async entry point below does) derives its
   * id key from its data key, not from the secret on the target, so whoever reads the target
   * cannot test its chunks for known content; the data key comes along to open its chunks.
   */
  projectKey(projectId: string): ChunkIdKey {
    assertId('project', projectId);
    const dek = scopeDataKey(projectId);
    if (!dek) return deriveProjectKey(this.secret, projectId, this.format.chunkIdHash);
    return { ...deriveProjectKey(dek, projectId, this.format.chunkIdHash), dek };
  }

  /** Opens the data key of every encrypted scope on the target (GC, verify); EncryptionKeyError names a workload it cannot open. */
  async unlockAll(): Promise<void> {
    for (const scope of await this.dataKeys.scopes()) await this.dataKeys.unlock(scope);
  }

  /** Opens the data key of the scope a stored object names when it is sealed (readers, before decoding). */
  private async unlockFor(what: string, stored: Buffer): Promise<void> {
    const scope = sealedScope(what, stored);
    if (scope) await this.dataKeys.unlock(scope);
  }

  async acquireLease(kind: LeaseKind, projectId: string | null, snapshotId: string | null, gcPlanSeen: string | null = null): Promise<Lease> {
    return Lease.acquire(this.backend, this.clock, this.logger, {
      id: newLeaseId(),
      kind,
      projectId,
      snapshotId,
      ttlMs: this.leaseTtlMs,
      gcPlanSeen,
    });
  }

  /**
   * Starts a snapshot and waits for its chunk index: startSnapshot, then writer.ready(). On a
   * failure the lease is released and the error thrown.
   */
  async beginSnapshot(args: StartSnapshotArgs): Promise<SnapshotWriter> {
    const writer = await this.startSnapshot(args);
    try {
      await writer.ready();
      return writer;
    } catch (e) {
      await writer.abort().catch(() => {});
      throw e;
    }
  }

  /**
   * Starts a snapshot: registers the writer lease FIRST, then reads the GC plan, and hands the
   * writer out while the project's chunk index loads (order matters: see gc.ts). The caller may
   * read and hash its disks meanwhile; whatever consults the index waits for writer.ready(),
   * and no object is written before it (a large project's index and pack check take seconds on
   * S3: the backup's first batches need not wait for them). No exclusive lock is taken.
   */
  async startSnapshot(args: StartSnapshotArgs): Promise<SnapshotWriter> {
    assertId('project', args.projectId);
    assertId('snapshot', args.snapshotId);
    // Encrypted workload: its scope's data key is made (first snapshot) or opened before anything is written.
    if (args.encryptedFor) await this.dataKeys.ensure(args.projectId, args.encryptedFor);
    if ((await this.backend.stat(keys.manifest(args.snapshotId))) !== null) {
      throw new ValidationError(`snapshot ${args.snapshotId} already exists in the repository`);
    }
    const lease = await this.acquireLease('writer', args.projectId, args.snapshotId);
    try {
      const plan = await this.readGcPlan();
      lease.record.gcPlanSeen = plan?.planId ?? null;
      return new SnapshotWriter(
        this.backend,
        this.clock,
        this.logger,
        lease,
        this.loadWriterIndex(args.projectId, lease, plan),
        args.projectId,
        args.snapshotId,
        this.projectKey(args.projectId),
        this.config.chunkSize,
        this.config.zstdLevel,
        this.config.packSize,
      );
    } catch (e) {
      await lease.release().catch(() => {});
      throw e;
    }
  }

  /**
   * A writer's index: publishes which GC plan it honours while the index loads (reads only;
   * the plan is already fixed, and until the beat lands GC sees a writer that has not seen its
   * plan, which only makes it more careful). Both settle before the writer may write.
   */
  private async loadWriterIndex(projectId: string, lease: Lease, plan: GcPlan | null): Promise<LoadedIndex> {
    const [beat, loaded] = await Promise.allSettled([
      lease.beat(),
      this.loadProjectIndex(projectId, {
        excludePacks: new Set(plan?.condemned[projectId] ?? []),
        checkPacks: true,
        repair: 'write',
        repairId: lease.record.id,
        assertCanWrite: () => lease.assertValid(),
      }),
    ]);
    if (beat.status === 'rejected') throw beat.reason;
    if (loaded.status === 'rejected') throw loaded.reason;
    const found = loaded.value;
    if (found.lostPacks?.length || found.repair) {
      this.logger.warn({ projectId, lostPacks: found.lostPacks, lostChunks: found.lostChunks.length, repair: found.repair }, 'backup target damage found; the snapshot re-uploads what it needs');
    }
    return found;
  }

  async readGcPlan(): Promise<GcPlan | null> {
    try {
      return JSON.parse((await this.backend.get(GC_PLAN_KEY)).toString('utf8')) as GcPlan;
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e; // an unreadable plan must not be ignored: it protects data from reuse
    }
  }

  /**
   * The project's chunk index for reading: every copy listed in its pack indexes, minus copies
   * marked bad, copies in packs that are missing or have the wrong length (so a restore reads
   * an intact copy when one exists), and packs in `excludePacks`; an unreadable pack index is
   * rebuilt from the packs in memory (index-load.ts). Retries when a pack index vanishes meanwhile (GC consolidating
   * indexes). A listing or read failure throws.
   */
  async loadChunkIndex(projectId: string, opts: { excludePacks?: ReadonlySet<string> } = {}): Promise<ChunkIndex> {
    return (await this.loadProjectIndex(projectId, { ...opts, checkPacks: true, repair: 'memory' })).index;
  }

  /** loadChunkIndex with the pack check and index repair options of index-load.ts. */
  async loadProjectIndex(projectId: string, opts: LoadIndexOptions): Promise<LoadedIndex> {
    assertId('project', projectId);
    await this.dataKeys.unlock(projectId);
    for (let attempt = 0; ; attempt++) {
      try {
        const markers = await this.listDamageMarkers(projectId);
        return await loadIndexOnce(this.backend, projectId, markers, { clockNow: () => this.clock.now(), ...opts });
      } catch (e) {
        if (e instanceof NotFoundError && attempt < 3) continue;
        throw e;
      }
    }
  }

  /**
   * `lifeboat repo repair-index`: per project (all when none given), drops unreadable pack
   * indexes and indexes every pack no readable index covers, from the pack trailers. Runs as a
   * writer (lease, GC plan honoured), so GC treats it like a backup in progress.
   */
  async repairIndex(projectIds?: readonly string[]): Promise<{ projectId: string; repair: IndexRepair; lostPacks: LostPack[] }[]> {
    const projects = projectIds ? [...projectIds] : await this.listProjects();
    const out: { projectId: string; repair: IndexRepair; lostPacks: LostPack[] }[] = [];
    for (const projectId of projects) {
      const lease = await this.acquireLease('writer', projectId, null);
      try {
        const plan = await this.readGcPlan();
        lease.record.gcPlanSeen = plan?.planId ?? null;
        await lease.beat();
        const r = await this.loadProjectIndex(projectId, {
          excludePacks: new Set(plan?.condemned[projectId] ?? []),
          checkPacks: true,
          repair: 'write',
          reindexUncovered: true,
          repairId: lease.record.id,
          assertCanWrite: () => lease.assertValid(),
        });
        out.push({ projectId, repair: r.repair!, lostPacks: r.lostPacks ?? [] });
      } finally {
        await lease.release().catch(() => {});
      }
    }
    return out;
  }

  /** Projects with pack indexes or packs on the target. */
  async listProjects(): Promise<string[]> {
    const out = new Set<string>();
    for (const k of await listAll(this.backend, 'index/')) {
      const p = parse.packIndex(k);
      if (p) out.add(p.projectId);
    }
    for (const k of await listAll(this.backend, 'packs/')) {
      const p = parse.pack(k);
      if (p) out.add(p.projectId);
    }
    return [...out].sort();
  }

  /** `<chunkHex>.<packId>` of every copy verify found bad in this project. */
  async listBadCopies(projectId: string): Promise<Set<string>> {
    return (await this.listDamageMarkers(projectId)).badCopies;
  }

  /** Bad-copy markers (`<chunkHex>.<packId>`) and lost packs already reported, from one listing. */
  async listDamageMarkers(projectId: string): Promise<{ badCopies: Set<string>; reportedLostPacks: Set<string> }> {
    const badCopies = new Set<string>();
    const reportedLostPacks = new Set<string>();
    for (const key of await listAll(this.backend, `bad/${projectId}/`)) {
      const p = parse.bad(key);
      if (p) badCopies.add(`${p.chunkHex}.${p.packId}`);
      const l = parse.lostPack(key);
      if (l) reportedLostPacks.add(l.packId);
    }
    return { badCopies, reportedLostPacks };
  }

  /** Records that a lost pack's damage was reported, so later snapshots do not report it again. */
  async markLostPackReported(projectId: string, pack: string, reason: string): Promise<void> {
    await this.backend.put(keys.lostPack(projectId, pack), Buffer.from(JSON.stringify({ reason, at: this.clock.now() })));
  }

  async markBadCopy(projectId: string, chunkHex: string, pack: string, reason: string): Promise<void> {
    await this.backend.put(keys.bad(projectId, chunkHex, pack), Buffer.from(JSON.stringify({ reason, at: this.clock.now() })));
  }

  /** Reads a stored chunk's bytes (still encoded) from its pack. */
  async readStored(projectId: string, loc: ChunkLocation): Promise<Buffer> {
    return this.backend.getRange(keys.pack(projectId, loc.pack), loc.offset, loc.storedLength);
  }

  /** Reads a stored chunk range into `dst` (no allocation when the backend supports it). */
  async readStoredInto(projectId: string, loc: ChunkLocation, dst: Uint8Array): Promise<void> {
    const key = keys.pack(projectId, loc.pack);
    if (this.backend.getRangeInto) await this.backend.getRangeInto(key, loc.offset, loc.storedLength, dst);
    else dst.set(await this.backend.getRange(key, loc.offset, loc.storedLength));
  }

  /**
   * The snapshot's manifest. `expect.encryptedScope`: the caller knows (from its database) that
   * the snapshot is an encrypted workload's, so the manifest must be sealed for that scope,
   * whatever the target says about itself.
   */
  async readManifest(snapshotId: string, expect: { encryptedScope?: string } = {}): Promise<Manifest> {
    assertId('snapshot', snapshotId);
    const key = keys.manifest(snapshotId);
    let data: Buffer;
    try {
      data = await this.backend.get(key);
    } catch (e) {
      // Absent on the target: damage, not an unknown id (a missing object, 500 if it reaches a client).
      if (e instanceof NotFoundError) throw new MissingObjectError(`the manifest of snapshot ${snapshotId} is missing on the backup target`);
      throw e;
    }
    // An encrypted workload's job opens its data key afresh (a revoked Barbican secret stops it here).
    if (expect.encryptedScope !== undefined) await this.dataKeys.reopen(expect.encryptedScope);
    await this.unlockFor(key, data);
    const m = decodeManifest(key, data);
    if (m.snapshotId !== snapshotId) throw new CorruptMetadataError(`${key} describes snapshot ${m.snapshotId}`);
    await this.refuseUnsealed(key, data, m.projectId);
    const want = expect.encryptedScope;
    if (want !== undefined && (!isSealed(data) || m.projectId !== want)) throw isSealed(data) ? new CorruptMetadataError(`${key} belongs to scope ${m.projectId}, not to encrypted workload ${want}: refused`) : unsealedError(key, want);
    return m;
  }

  /**
   * A plain object is trusted only when its scope is not an encrypted workload's, checked on the
   * target (the codecs check what this process already knows: envelope.ts assertSealedAsScope).
   */
  private async refuseUnsealed(key: string, stored: Buffer, scope: string): Promise<void> {
    if (!isSealed(stored) && (await this.dataKeys.isEncrypted(scope))) throw unsealedError(key, scope);
  }

  /** Ids of every committed snapshot (those with a manifest). A failing listing throws. */
  async listSnapshots(): Promise<string[]> {
    const ids: string[] = [];
    for (const key of await listAll(this.backend, 'manifests/')) {
      const id = parse.manifest(key);
      if (id) ids.push(id);
    }
    return ids.sort();
  }

  async readDiskIndex(key: string): Promise<DiskIndex> {
    if (!parse.diskIndex(key)) throw new ValidationError(`not a disk index key: ${key}`);
    const data = await this.backend.get(key);
    await this.unlockFor(key, data);
    const index = decodeDiskIndex(key, data);
    await this.refuseUnsealed(key, data, index.header.projectId);
    return index;
  }

  /**
   * Deletes a snapshot's metadata: the manifest first (the snapshot disappears atomically),
   * then its disk indexes. Chunks are left to GC. Idempotent; false when nothing was there.
   */
  async deleteSnapshot(snapshotId: string): Promise<boolean> {
    assertId('snapshot', snapshotId);
    const had = (await this.backend.stat(keys.manifest(snapshotId))) !== null;
    await this.backend.delete(keys.manifest(snapshotId));
    const disks = await listAll(this.backend, `disks/${snapshotId}/`);
    for (const k of disks) await this.backend.delete(k);
    return had || disks.length > 0;
  }

  /** The index of `diskKey` in a committed snapshot (an incremental's base); null if absent. */
  async findDiskIndex(snapshotId: string, diskKey: string): Promise<DiskIndex | null> {
    let m: Manifest;
    try {
      m = await this.readManifest(snapshotId);
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
    const d = m.disks.find((x) => x.diskKey === diskKey);
    return d ? this.readDiskIndex(d.index) : null;
  }

  /**
   * Which committed snapshots of the project reference any of `chunks` (hex ids), per disk key:
   * how many, and how many of those are among `lost`. Reads every manifest and the project's
   * disk indexes, so it is for damage reports only, never on a backup's normal path.
   */
  async snapshotsReferencing(projectId: string, chunks: readonly string[], lost: readonly string[]): Promise<Map<string, Map<string, { total: number; lost: number }>>> {
    const asSet = (hexes: readonly string[]) => {
      const set = new ChunkIndex(hexes.length);
      for (const h of hexes) set.set(Buffer.from(h, 'hex'), { pack: '', offset: 0, storedLength: 0, rawLength: 0, flags: 0 });
      return set;
    };
    const want = asSet(chunks);
    const lostSet = asSet(lost);
    const out = new Map<string, Map<string, { total: number; lost: number }>>();
    for (const snapshotId of await this.listSnapshots()) {
      const m = await this.readManifest(snapshotId).catch((e: unknown) => {
        if (e instanceof NotFoundError || e instanceof IntegrityError) return null; // deleted meanwhile, or unreadable (verify reports it)
        throw e;
      });
      if (!m || m.projectId !== projectId) continue;
      for (const d of m.disks) {
        const di = await this.readDiskIndex(d.index).catch((e: unknown) => {
          if (e instanceof NotFoundError || e instanceof IntegrityError) return null;
          throw e;
        });
        if (!di) continue;
        let total = 0;
        let nLost = 0;
        for (let i = 0; i < di.header.chunkCount; i++) {
          const off = i * ID_LEN;
          if (isZeroId(di.ids, off) || !want.has(di.ids, off)) continue;
          total++;
          if (lostSet.has(di.ids, off)) nLost++;
        }
        if (total === 0) continue;
        const disks = out.get(snapshotId) ?? new Map<string, { total: number; lost: number }>();
        disks.set(d.diskKey, { total, lost: nLost });
        out.set(snapshotId, disks);
      }
    }
    return out;
  }

  /** Mark-and-sweep garbage collection (gc.ts). */
  gc(opts: GcOptions = {}): Promise<GcReport> {
    return collectGarbage(this, opts);
  }

  /** Full read-back verification (verify.ts). */
  verify(opts: Parameters<typeof verifyRepository>[1] = {}): Promise<VerifyResult> {
    return verifyRepository(this, opts);
  }
}
