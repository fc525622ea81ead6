import { createHash, randomBytes } from 'node:crypto';
import type { Backend, ObjectWriter } from '../backend/backend.js';
import { InvalidStateError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Clock } from '../lib/clock.js';
import { FLAG_SEALED, ID_LEN, isZeroId, type ChunkIdKey } from './chunk-codec.js';
import { sealForScope } from './data-keys.js';
import type { ChunkIndex } from './chunk-index.js';
import { encodeDiskIndex, type DiskIndex } from './disk-index.format.js';
import { keys, packId, packOwner, parse } from './keys.js';
import type { Lease } from './lease.js';
import { encodeManifest, MANIFEST_FORMAT, type Manifest, type ManifestDisk } from './manifest.format.js';
import { encodePackIndex, type ChunkLocation, type PackIndexEntry } from './pack-index.format.js';
import { encodePackTrailer } from './pack.format.js';
import type { LoadedIndex } from './index-load.js';

/** One encoded chunk for addChunks: id = id[idOff, idOff+32). */
export interface NewChunk {
  id: Uint8Array;
  idOff: number;
  stored: Uint8Array;
  rawLength: number;
  flags: number;
}

interface OpenPack {
  id: string;
  key: string;
  entries: PackIndexEntry[];
  size: number;
  /** Copies, only for backends without openWriter. */
  parts: Uint8Array[];
  writer: ObjectWriter | null;
  /** Sequential writes into `writer`. */
  chain: Promise<void>;
}

export interface WriterStats {
  /** Objects put (packs, pack indexes, disk indexes, manifest); lease heartbeats excluded. */
  objectsWritten: number;
  bytesWritten: number;
  packs: number;
}

/**
 * A pack index is also written whenever this many closed packs' chunks wait for one (not only
 * at flush, once per disk), so the writer holds at most this many index entries in memory
 * whatever the disk size (≈ 1 GiB of new 64 KiB chunks; a 16 GiB disk gets ~11 indexes).
 */
const INDEX_EVERY = 16_384;

/**
 * One running snapshot. Holds a writer lease from begin to commit/abort, the project's chunk
 * index (for dedup) and the open pack. Contract and write order:
 *   addChunk → packs (put when full) → flush(): last pack, then ONE pack index for every pack
 *   written since the previous flush → writeDiskIndex (flushes first) → commit: manifest last.
 * Nothing is ever overwritten; a crash at any point leaves only unreferenced objects, which GC
 * removes once the lease has expired. Safe for several backupDisk calls at once (all state
 * changes are synchronous on the event loop; uploads are serialised per writer).
 */
export class SnapshotWriter {
  readonly stats: WriterStats = { objectsWritten: 0, bytesWritten: 0, packs: 0 };
  private readonly disks: ManifestDisk[] = [];
  private readonly pending = new Set<string>();
  /** Hex ids whose indexed copy failed a read-back: never deduplicated until stored again. */
  private readonly distrusted = new Set<string>();
  /** Every chunk distrusted during this snapshot (hex → why), for the damage report. */
  readonly badCopiesFound = new Map<string, string>();
  private open: OpenPack | null = null;
  private seq = 0;
  private unindexed: PackIndexEntry[] = [];
  /** Exact length of every pack this writer made durable (recorded in its pack indexes). */
  private readonly packLengths = new Map<string, number>();
  private upload: Promise<void> = Promise.resolve();
  private uploadError: unknown = null;
  private failed: string | null = null;
  private state: 'open' | 'committed' | 'aborted' = 'open';

  constructor(
    private readonly backend: Backend,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly lease: Lease,
    /**
     * The project's chunk index and what the pack check found, still loading when the writer is
     * handed out early (Repository.startSnapshot): see ready().
     */
    loading: Promise<LoadedIndex>,
    readonly projectId: string,
    readonly snapshotId: string,
    readonly projectKey: ChunkIdKey,
    readonly chunkSize: number,
    readonly zstdLevel: number,
    private readonly packSize: number,
  ) {
    this.loading = loading.then(
      (l) => {
        this.loaded = l;
      },
      (error: unknown) => {
        this.loadFailure = { error };
      },
    );
  }

  /** Settles (never rejects) once the index has loaded or failed to. */
  private readonly loading: Promise<void>;
  private loaded: LoadedIndex | null = null;
  /** Why the index did not load (boxed: whatever was thrown, even undefined, is kept). */
  private loadFailure: { error: unknown } | null = null;

  /**
   * Resolves once the project's chunk index has loaded; rejects with what stopped it. Nothing
   * that consults the index (hasChunk, claim, unprovenCopy, markProven, integrity) may run
   * before; writes and commit wait for it themselves. Until then a caller may read and hash
   * its source: that touches nothing of the repository.
   */
  async ready(): Promise<void> {
    await this.loading;
    if (this.loadFailure) throw this.loadFailure.error;
  }

  /** True once ready() has resolved. */
  get isReady(): boolean {
    return this.loaded !== null;
  }

  private loadedIndex(): LoadedIndex {
    if (this.loaded === null) throw new InvalidStateError(`snapshot writer ${this.snapshotId}: the chunk index is not loaded yet (await ready())`);
    return this.loaded;
  }

  /** Good copies this writer may dedup against; grows with what it writes. */
  private get index(): ChunkIndex {
    return this.loadedIndex().index;
  }

  /**
   * What the pack check and index repair found when this writer loaded its index: lost packs
   * are not deduplicated against (their chunks are uploaded again), and callers use
   * `lostChunks` to mark the older snapshots that still lack them. Only once ready.
   */
  get integrity(): Omit<LoadedIndex, 'index'> {
    const { index: _index, ...found } = this.loadedIndex();
    return found;
  }

  get writerId(): string {
    return this.lease.record.id;
  }

  /** True when the target's streamed writes buffer a pack themselves while it uploads (Backend.buffersWrites). */
  get uploadsBuffered(): boolean {
    return this.backend.buffersWrites === true;
  }

  /** True when a good copy of the chunk is stored, or this writer has stored/claimed it. */
  hasChunk(id: Uint8Array, off = 0): boolean {
    if (this.index.has(id, off) && !this.isDistrusted(id, off)) return true;
    return this.pending.has(Buffer.from(id.subarray(off, off + ID_LEN)).toString('hex'));
  }

  private isDistrusted(id: Uint8Array, off: number): boolean {
    return this.distrusted.size > 0 && this.distrusted.has(Buffer.from(id.subarray(off, off + ID_LEN)).toString('hex'));
  }

  /**
   * The copy a reuse of this chunk would rely on, when an earlier snapshot stored it and this
   * writer has not verified it yet (ReuseProof); null for unknown, own, proven or distrusted ids.
   */
  unprovenCopy(id: Uint8Array, off = 0): ChunkLocation | null {
    const loc = this.index.get(id, off);
    if (!loc || packOwner(loc.pack) === this.writerId || this.index.isProven(id, off) || this.isDistrusted(id, off)) return null;
    return loc;
  }

  markProven(id: Uint8Array, off = 0): void {
    this.index.markProven(id, off);
  }

  /**
   * A copy failed its read-back: mark it bad on the target (nothing dedups against it again,
   * restore and verify skip it) and stop deduplicating the chunk here, so it is uploaded again.
   */
  async distrust(id: Uint8Array, off: number, loc: ChunkLocation, reason: string): Promise<void> {
    const hex = Buffer.from(id.subarray(off, off + ID_LEN)).toString('hex');
    this.distrusted.add(hex);
    this.badCopiesFound.set(hex, reason);
    this.lease.assertValid();
    await this.backend.put(keys.bad(this.projectId, hex, loc.pack), Buffer.from(JSON.stringify({ reason, at: this.clock.now() })));
  }

  /** Reads stored bytes of an indexed copy (for ReuseProof). */
  async readStoredInto(loc: ChunkLocation, dst: Uint8Array): Promise<void> {
    const key = keys.pack(this.projectId, loc.pack);
    if (this.backend.getRangeInto) await this.backend.getRangeInto(key, loc.offset, loc.storedLength, dst);
    else dst.set(await this.backend.getRange(key, loc.offset, loc.storedLength));
  }

  /**
   * Claims an unknown chunk for upload: returns false when it is already stored or claimed
   * (dedup inside a running backup). A claimed chunk must be passed to addChunk before commit.
   */
  claim(id: Uint8Array, off = 0): boolean {
    if (this.index.has(id, off) && !this.isDistrusted(id, off)) return false;
    const hex = Buffer.from(id.subarray(off, off + ID_LEN)).toString('hex');
    if (this.pending.has(hex)) return false;
    this.pending.add(hex);
    return true;
  }

  /** Appends a stored (encoded) chunk to the open pack; waits when an upload is behind. */
  async addChunk(id: Uint8Array, stored: Uint8Array, rawLength: number, flags: number): Promise<void> {
    await this.addChunks([{ id, idOff: 0, stored, rawLength, flags }]);
  }

  /**
   * Appends encoded chunks to the open pack, streaming them to the backend (`openWriter`) so
   * that no pack is held in memory; resolves once the bytes were handed over (the caller may
   * then reuse `stored`). Packs close at packSize; at most one closed pack is being made
   * durable (fsync) while the next one fills, so a slow target slows the caller down.
   */
  async addChunks(chunks: readonly NewChunk[]): Promise<void> {
    this.assertOpen();
    if (!this.isReady) await this.ready();
    this.throwIfUploadFailed();
    // Encrypted workload (issue 17): the chunks of a sealed scope are stored sealed (data-keys.ts).
    const sealed = sealForScope(this.projectId, chunks, FLAG_SEALED);
    const items = sealed.items;
    const waits: Promise<void>[] = [];
    let run: Uint8Array[] = [];
    let runPack: OpenPack | null = null;
    const pushRun = () => {
      if (runPack && run.length > 0) waits.push(this.appendTo(runPack, run));
      run = [];
    };
    for (const it of items) {
      if (this.open === null) this.open = this.newPack();
      const pk = this.open;
      runPack = pk;
      const idBuf = Buffer.from(it.id.subarray(it.idOff, it.idOff + ID_LEN));
      const entry: PackIndexEntry = { id: idBuf, pack: pk.id, offset: pk.size, storedLength: it.stored.length, rawLength: it.rawLength, flags: it.flags };
      pk.entries.push(entry);
      pk.size += it.stored.length;
      run.push(it.stored);
      const hex = idBuf.toString('hex');
      this.index.set(idBuf, entry, 0, true); // replaces a distrusted copy
      this.pending.delete(hex);
      if (this.distrusted.size > 0) this.distrusted.delete(hex);
      if (pk.size >= this.packSize) {
        pushRun();
        this.open = null;
        waits.push(this.closePack(pk));
      }
    }
    pushRun();
    await Promise.all(waits);
    this.throwIfUploadFailed();
    sealed.release(); // handed over: the sealed bytes' arena may be reused (not after a failure: a write may still read it)
  }

  private newPack(): OpenPack {
    const id = packId(this.writerId, this.seq++);
    const key = keys.pack(this.projectId, id);
    const pk: OpenPack = { id, key, entries: [], size: 0, parts: [], writer: null, chain: Promise.resolve() };
    if (this.backend.openWriter) {
      const open = this.backend.openWriter.bind(this.backend);
      pk.chain = (async () => {
        this.lease.assertValid();
        pk.writer = await open(key);
      })();
      this.track(pk.chain);
    }
    return pk;
  }

  /** Queues parts on the pack's sequential write chain (offsets were assigned in call order). */
  private appendTo(pk: OpenPack, parts: Uint8Array[]): Promise<void> {
    if (!this.backend.openWriter) {
      for (const p of parts) pk.parts.push(Buffer.from(p)); // copy: the caller reuses its buffer
      return Promise.resolve();
    }
    pk.chain = pk.chain.then(async () => {
      if (this.uploadError) return;
      await pk.writer!.write(parts);
    });
    this.track(pk.chain);
    return pk.chain.catch(() => {});
  }

  private track(p: Promise<unknown>): void {
    p.catch((e: unknown) => {
      this.uploadError ??= e;
    });
  }

  /** Makes a pack durable and visible (trailer, then commit/put); chained after the previous one. */
  private closePack(pk: OpenPack): Promise<void> {
    const prev = this.upload;
    const done = (async () => {
      await pk.chain.catch(() => {});
      await prev;
      if (this.uploadError) {
        await pk.writer?.abort().catch(() => {});
        return;
      }
      const trailer = encodePackTrailer(this.projectId, pk.entries);
      this.lease.assertValid(); // fencing: nothing becomes visible once the lease may be lost
      if (pk.writer) {
        await pk.writer.write([trailer]);
        this.lease.assertValid();
        await pk.writer.commit();
      } else {
        await this.backend.put(pk.key, [...pk.parts, trailer]);
        pk.parts = [];
      }
      this.stats.objectsWritten++;
      this.stats.packs++;
      this.stats.bytesWritten += pk.size + trailer.length;
      this.packLengths.set(pk.id, pk.size + trailer.length);
      this.unindexed.push(...pk.entries);
      if (this.unindexed.length >= INDEX_EVERY) await this.putPackIndex();
    })().catch(async (e: unknown) => {
      this.uploadError ??= e;
      await pk.writer?.abort().catch(() => {});
    });
    this.upload = done;
    // The caller waits for the previous pack only: one pack syncs while the next one fills.
    return prev;
  }

  private throwIfUploadFailed(): void {
    if (this.uploadError) throw this.uploadError;
  }

  /** Makes every chunk added so far durable and findable: packs, then one pack index. */
  async flush(): Promise<void> {
    this.assertOpen();
    if (this.open) {
      const pk = this.open;
      this.open = null;
      await this.closePack(pk);
    }
    await this.upload;
    this.throwIfUploadFailed();
    await this.putPackIndex();
  }

  /** One pack index for the closed (durable) packs not indexed yet. */
  private async putPackIndex(): Promise<void> {
    if (this.unindexed.length === 0) return;
    const entries = this.unindexed;
    this.unindexed = [];
    this.lease.assertValid();
    // The pack index is named after the first pack it covers (unique per writer).
    const body = encodePackIndex(this.projectId, this.clock.now(), entries, this.packLengths);
    await this.backend.put(keys.packIndex(this.projectId, entries[0]!.pack), body);
    this.stats.objectsWritten++;
    this.stats.bytesWritten += body.reduce((n, b) => n + b.length, 0);
  }

  /**
   * Publishes one disk's index and flushes the chunks it references; both are durable when this
   * returns. Every id must be a hole or a chunk this writer can dedup against (checked before
   * anything is written: a disk index never references a chunk that is not stored).
   */
  async writeDiskIndex(index: DiskIndex, extra: { storedBytes: number; meta?: unknown }): Promise<ManifestDisk> {
    this.assertOpen();
    const { header, ids } = index;
    if (header.chunkSize !== this.chunkSize) throw new InvalidStateError('disk index chunk size differs from the repository');
    if (this.disks.some((d) => d.diskKey === header.diskKey)) throw new InvalidStateError(`disk ${header.diskKey} was already written`);
    await this.ready();
    // The ids are checked while the packs are made durable (the check is CPU, the flush mostly
    // waits on fsync: ~5 ms each for a 2 GiB disk); flush() changes what is durable, never
    // which chunks the index knows. Once they pass, the disk index is written while the flush
    // goes on: nothing reads a disk index that no manifest names, and the manifest is written
    // only after this returns, with both durable. A crash in between leaves an index without
    // manifest, which GC removes like any dead writer's (gc.ts). Measured on the libvirt bench
    // (2 GiB disk, 1 % changed): the flush took 10-30 ms and the 1 MiB index put 5-11 ms after it.
    const flushed = this.flush();
    const missing = firstUnknownChunk(this.index, ids, header.chunkCount);
    if (missing >= 0) {
      await flushed.catch(() => undefined);
      throw new Error(`disk ${header.diskKey}: chunk ${missing} is not stored (internal error)`);
    }
    const diskHash = createHash('sha256').update(header.diskKey).digest('hex').slice(0, 32);
    const key = keys.diskIndex(this.snapshotId, this.writerId, diskHash);
    const body = encodeDiskIndex(index);
    this.lease.assertValid();
    const put = this.backend.put(key, body);
    // Both settle before either's failure is thrown (no write left running unobserved).
    const [f, p] = await Promise.allSettled([flushed, put]);
    if (f.status === 'rejected') throw f.reason;
    if (p.status === 'rejected') throw p.reason;
    this.stats.objectsWritten++;
    this.stats.bytesWritten += body.reduce((n, b) => n + b.length, 0);
    const disk: ManifestDisk = {
      diskKey: header.diskKey,
      index: key,
      size: header.size,
      chunkSize: header.chunkSize,
      chunkCount: header.chunkCount,
      holes: header.holes,
      changeToken: header.changeToken,
      storedBytes: extra.storedBytes,
      meta: extra.meta ?? null,
    };
    this.disks.push(disk);
    return disk;
  }

  /** Marks the writer unusable for commit (a disk failed): its snapshot must not be published. */
  fail(reason: string): void {
    this.failed ??= reason;
  }

  /**
   * Adds disks that another writer of the same snapshot wrote (a per-host part: finishPart) to
   * this writer's manifest. Each must be this snapshot's disk index, of this repository's chunk
   * size, and not a disk already listed; the part writer checked every chunk it references
   * before publishing it. This writer's live lease is what keeps GC off the part's objects
   * until the manifest names them (gc.ts keeps disk indexes of a snapshot with a live writer).
   */
  adoptDisks(disks: readonly ManifestDisk[]): void {
    this.assertOpen();
    for (const d of disks) {
      const owner = parse.diskIndex(d.index);
      if (owner?.snapshotId !== this.snapshotId) throw new InvalidStateError(`disk ${d.diskKey}: index ${d.index} is not one of snapshot ${this.snapshotId}`);
      if (d.chunkSize !== this.chunkSize) throw new InvalidStateError(`disk ${d.diskKey}: chunk size differs from the repository`);
      if (this.disks.some((x) => x.diskKey === d.diskKey)) throw new InvalidStateError(`disk ${d.diskKey} was already written`);
      this.disks.push(d);
    }
  }

  /** Every chunk durable and indexed, none claimed but unstored: what a commit or a part's end requires. */
  private async settle(what: string): Promise<void> {
    this.assertOpen();
    if (this.failed) throw new InvalidStateError(`snapshot ${this.snapshotId} cannot be ${what}: ${this.failed}`);
    await this.ready();
    await this.flush();
    if (this.pending.size > 0) throw new InvalidStateError(`snapshot ${this.snapshotId} has ${this.pending.size} chunks claimed but never stored`);
  }

  /**
   * Ends a part writer (one host's share of a snapshot whose manifest another writer commits):
   * everything durable, no manifest, lease released. Returns the disks it wrote, for the
   * committing writer's adoptDisks.
   */
  async finishPart(): Promise<ManifestDisk[]> {
    await this.settle('finished');
    this.state = 'committed';
    await this.lease.release().catch((e) => this.logger.warn({ err: String(e) }, 'lease release failed'));
    return [...this.disks];
  }

  /** Writes the manifest (the commit point) and releases the lease. */
  async commit(meta: unknown): Promise<Manifest> {
    await this.settle('committed');
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      snapshotId: this.snapshotId,
      projectId: this.projectId,
      writerId: this.writerId,
      startedAt: this.lease.record.startedAt,
      createdAt: this.clock.now(),
      disks: [...this.disks],
      meta: meta ?? null,
    };
    const body = encodeManifest(manifest);
    this.lease.assertValid();
    await this.backend.put(keys.manifest(this.snapshotId), body);
    this.stats.objectsWritten++;
    this.stats.bytesWritten += body.length;
    this.state = 'committed';
    await this.lease.release().catch((e) => this.logger.warn({ err: String(e) }, 'lease release failed'));
    return manifest;
  }

  /**
   * Gives up: no manifest is written; packs and indexes already put stay as garbage for GC.
   * `simulateCrash` (tests) stops the heartbeat but leaves the lease, as a killed process would.
   */
  async abort(opts: { simulateCrash?: boolean } = {}): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.uploadError ??= new InvalidStateError('snapshot writer aborted');
    const pk = this.open;
    this.open = null;
    if (pk) {
      await pk.chain.catch(() => {});
      await pk.writer?.abort().catch(() => {});
    }
    await this.upload.catch(() => {});
    await this.loading; // nothing of this writer still reads (or repairs) once its lease is gone
    await this.lease.release(!opts.simulateCrash);
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new InvalidStateError(`snapshot writer ${this.snapshotId} is ${this.state}`);
  }
}

export function newLeaseId(): string {
  return randomBytes(16).toString('hex');
}

/** The first of `count` ids (32 bytes each in `ids`) that is neither a hole nor in `index`; -1 when none. */
function firstUnknownChunk(index: ChunkIndex, ids: Uint8Array, count: number): number {
  for (let i = 0; i < count; i++) {
    const off = i * ID_LEN;
    if (!isZeroId(ids, off) && !index.has(ids, off)) return i;
  }
  return -1;
}
