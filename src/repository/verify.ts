import { listAll } from '../backend/backend.js';
import { EncryptionKeyError, errorMessage, IntegrityError, NotFoundError, ValidationError } from '../lib/errors.js';
import { ChunkCodec, ID_LEN, newChunkHasher, ZERO_ID, type ChunkHasher } from './chunk-codec.js';
import { decodeDiskIndex } from './disk-index.format.js';
import { keys, parse } from './keys.js';
import { decodeManifest } from './manifest.format.js';
import { decodePackIndex, type PackIndexEntry } from './pack-index.format.js';
import type { Repository } from './repository.js';
import { checkSealedFraming, sealedScope } from './envelope.js';

/** Largest read from a pack (bytes). */
const WINDOW = 4 << 20;

export interface AffectedDisk {
  snapshotId: string;
  diskKey: string;
}

export interface ChunkProblem {
  /** Chunk id (hex). */
  chunk: string;
  /** Pack holding the bad copy; null when no pack index lists the chunk at all. */
  pack: string | null;
  kind: 'missing' | 'corrupt';
  detail: string;
  affected: AffectedDisk[];
}

export interface MetadataProblem {
  key: string;
  snapshotId: string | null;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  /** Share of packs whose data was read (0..1), or null for a complete verify. */
  sampled: number | null;
  /** Every snapshot whose manifest was read (those not in failedSnapshots are whole, as far as read). */
  snapshotIds: string[];
  /** Chunks in packs the sample left unread (existence and length still checked). */
  chunksSkipped: number;
  snapshots: number;
  disks: number;
  packsRead: number;
  chunksChecked: number;
  bytesRead: number;
  /** Referenced chunks without any intact copy. */
  problems: ChunkProblem[];
  /** Unreadable manifests, disk indexes or pack indexes. */
  metadataProblems: MetadataProblem[];
  /** Snapshots with at least one problem (for verify_state=failed on exactly those). */
  failedSnapshots: string[];
  /** Referenced chunks with a bad copy but also an intact one (self-healed by a later backup). */
  healedChunks: number;
  /** New bad-copy markers written (those copies are never deduplicated against again). */
  badCopiesMarked: number;
  /**
   * Encrypted workloads whose data key this node could not open: their structure was checked
   * (every object sealed, for its scope, of its kind, with a readable header and room for its
   * tag; each pack's trailer framing), their contents were not. Their snapshots are not in
   * `snapshotIds` (not verified).
   */
  encryptedUnchecked: EncryptedUnchecked[];
}

export interface EncryptedUnchecked {
  /** The encrypted workload's storage scope (its id). */
  scope: string;
  /** "contents not checked: key not available (<why>)". */
  reason: string;
  /** Its snapshots whose manifests were found (sealed, structure only). */
  snapshots: string[];
  /** Sealed metadata objects whose framing was checked (manifests, disk and pack indexes). */
  sealedObjects: number;
  /** Packs whose trailer framing was checked, and their bytes. */
  packs: number;
  packBytes: number;
}


export interface VerifyOptions {
  /** Write `bad/` markers for bad copies (default true): the next backup re-uploads them. */
  markBad?: boolean;
  /** Read the data of about this share (0 < x ≤ 1) of the packs, chosen at random (restic's --read-data-subset=x%). */
  readDataSubset?: number;
  onProgress?: (p: { packsDone: number; packsTotal: number }) => void;
  signal?: AbortSignal;
  /**
   * The snapshots the caller's records (the service's DB) say are committed on this target.
   * Asked before the manifests are listed and again at the end: one in both answers whose
   * manifest was not listed is a metadata problem, "manifest missing" (reliability.md §2 B8);
   * one deleted meanwhile is in the first answer only, one committed meanwhile in the second.
   */
  expectedSnapshots?: () => Promise<readonly string[]>;
}

/** What every manifest references: projectId → chunk hex → indexes into `disks`. */
interface References {
  disks: AffectedDisk[];
  byProject: Map<string, Map<string, number[]>>;
  /** Snapshots with a problem so far. */
  failed: Set<string>;
  /** Every snapshot whose manifest the listing showed, readable or not. */
  listed: Set<string>;
}

type Kind = ChunkProblem['kind'];

/** What the packs said about each chunk of one project. */
interface Verdicts {
  good: Set<string>;
  /** Chunks with a present copy the sample left unread. */
  unchecked: Set<string>;
  bad: Map<string, { pack: string; kind: Kind; detail: string }>;
}

/**
 * Reads every manifest, disk index, pack index and pack, decodes every stored chunk and checks
 * its keyed hash. Reports which snapshots and disks each missing/corrupt chunk affects. Bad
 * copies get a marker (`bad/<project>/<chunk>.<pack>`) so no later backup dedups against them:
 * the next backup of the affected disk re-uploads the chunk (reliability.md §2 B7), after which
 * verify passes again. Holds a reader lease for all projects, so GC does not sweep meanwhile.
 * Runs on the calling thread, one pack at a time (memory: one read window + the reference map).
 * With `readDataSubset`, only the sampled packs' data is read; every pack is still checked for
 * presence and indexed length. With `expectedSnapshots`, a snapshot the records call committed
 * whose manifest is gone is a problem too (the target alone cannot tell it ever existed).
 */
export async function verifyRepository(repo: Repository, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const subset = opts.readDataSubset;
  if (subset !== undefined && !(subset > 0 && subset <= 1)) throw new ValidationError('readDataSubset must be in (0, 1]');
  const res = emptyResult(subset ?? null);
  const lease = await repo.acquireLease('reader', null, null);
  try {
    // Encrypted workloads: checking their GCM tags needs each wrapped data key (on the target) and
    // the KEK that opens it; a scope this node cannot open gets its structure checked instead.
    const locked = await openDataKeys(repo, res);
    const expected = opts.expectedSnapshots ? new Set(await opts.expectedSnapshots()) : null;
    const refs = await collectReferences(repo, res, locked);
    const projects = new Set<string>([...refs.byProject.keys(), ...locked.keys()]);
    for (const k of await listAll(repo.backend, 'index/')) {
      const p = parse.packIndex(k);
      if (p) projects.add(p.projectId);
    }
    const allPacks = await listAll(repo.backend, 'packs/');
    const reader = new PackReader(repo, opts, res, subset === undefined ? null : samplePacks(allPacks, subset), allPacks.length);
    for (const projectId of projects) {
      const unchecked = locked.get(projectId);
      if (unchecked) {
        await checkSealedScope(repo, res, unchecked);
        continue;
      }
      const verdicts = await reader.verifyProject(projectId);
      judgeReferences(res, refs, projectId, verdicts);
    }
    if (expected && opts.expectedSnapshots) reportMissingManifests(res, refs, expected, await opts.expectedSnapshots());
    res.encryptedUnchecked = [...locked.values()];
    res.failedSnapshots = [...refs.failed].sort();
    res.ok = res.problems.length === 0 && res.metadataProblems.length === 0;
    return res;
  } finally {
    await lease.release().catch(() => {});
  }
}

function emptyResult(sampled: number | null): VerifyResult {
  return {
    ok: false,
    sampled,
    snapshotIds: [],
    chunksSkipped: 0,
    snapshots: 0,
    disks: 0,
    packsRead: 0,
    chunksChecked: 0,
    bytesRead: 0,
    problems: [],
    metadataProblems: [],
    failedSnapshots: [],
    healedChunks: 0,
    badCopiesMarked: 0,
    encryptedUnchecked: [],
  };
}

/**
 * Opens the data key of every encrypted scope; the ones this node cannot open (no or another
 * KEK, a Barbican secret it cannot read) are returned, to be checked without the key. A damaged
 * wrapped key is a metadata problem too.
 */
async function openDataKeys(repo: Repository, res: VerifyResult): Promise<Map<string, EncryptedUnchecked>> {
  const locked = new Map<string, EncryptedUnchecked>();
  for (const scope of await repo.dataKeys.scopes()) {
    try {
      await repo.dataKeys.unlock(scope);
    } catch (e) {
      if (!(e instanceof EncryptionKeyError || e instanceof IntegrityError)) throw e;
      if (e instanceof IntegrityError) res.metadataProblems.push({ key: keys.dataKey(scope), snapshotId: null, message: errorMessage(e) });
      locked.set(scope, { scope, reason: `contents not checked: key not available (${errorMessage(e)})`, snapshots: [], sealedObjects: 0, packs: 0, packBytes: 0 });
    }
  }
  return locked;
}

/**
 * A sealed manifest of a scope whose key is not available: its framing and its disk indexes'
 * (listed under the snapshot) are checked, nothing inside. Problems are metadata problems of the snapshot.
 */
async function checkLockedSnapshot(repo: Repository, res: VerifyResult, u: EncryptedUnchecked, snapshotId: string, mk: string, data: Buffer): Promise<boolean> {
  try {
    checkSealedFraming(mk, data, 'manifest', u.scope);
    u.sealedObjects++;
    for (const dk of await listAll(repo.backend, `disks/${snapshotId}/`)) {
      if (!parse.diskIndex(dk)) continue;
      checkSealedFraming(dk, await repo.backend.get(dk), 'disk-index', u.scope);
      u.sealedObjects++;
    }
  } catch (e) {
    if (!(e instanceof IntegrityError || e instanceof NotFoundError)) throw e;
    res.metadataProblems.push({ key: mk, snapshotId, message: errorMessage(e) });
    return false;
  }
  u.snapshots.push(snapshotId);
  return true;
}

/**
 * The pack indexes and packs of a scope whose key is not available: every pack index sealed
 * for the scope; every pack's length word pointing at a sealed trailer of the scope inside the
 * pack. Chunks stay unread (their tags need the key).
 */
async function checkSealedScope(repo: Repository, res: VerifyResult, u: EncryptedUnchecked): Promise<void> {
  const b = repo.backend;
  for (const k of await listAll(b, `index/${u.scope}/`)) {
    if (!parse.packIndex(k)) continue;
    try {
      checkSealedFraming(k, await b.get(k), 'pack-index', u.scope);
      u.sealedObjects++;
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      res.metadataProblems.push({ key: k, snapshotId: null, message: errorMessage(e) });
    }
  }
  for (const k of await listAll(b, `packs/${u.scope}/`)) {
    if (!parse.pack(k)) continue;
    try {
      const size = await b.stat(k);
      if (size === null) continue; // deleted meanwhile (GC)
      if (size < 4) throw new IntegrityError(`${k} is truncated (${size} bytes)`);
      const len = (await b.getRange(k, size - 4, 4)).readUInt32LE(0);
      if (len + 4 > size) throw new IntegrityError(`${k} has a bad trailer length`);
      checkSealedFraming(`${k} trailer`, await b.getRange(k, size - 4 - len, len), 'pack-trailer', u.scope);
      u.packs++;
      u.packBytes += size;
      res.bytesRead += len + 4;
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      res.metadataProblems.push({ key: k, snapshotId: null, message: errorMessage(e) });
    }
  }
}

/** Reads every manifest and disk index; unreadable ones are metadata problems of their snapshot. */
async function collectReferences(repo: Repository, res: VerifyResult, locked: ReadonlyMap<string, EncryptedUnchecked>): Promise<References> {
  const b = repo.backend;
  const refs: References = { disks: [], byProject: new Map(), failed: new Set(), listed: new Set() };
  for (const mk of await listAll(b, 'manifests/')) {
    const snapshotId = parse.manifest(mk);
    if (!snapshotId) continue;
    refs.listed.add(snapshotId);
    res.snapshots++;
    let m;
    try {
      const data = await b.get(mk);
      const u = locked.get(sealedScope(mk, data) ?? '');
      if (u) {
        if (!(await checkLockedSnapshot(repo, res, u, snapshotId, mk, data))) refs.failed.add(snapshotId);
        continue;
      }
      m = decodeManifest(mk, data);
    } catch (e) {
      if (e instanceof NotFoundError) continue; // deleted meanwhile
      res.metadataProblems.push({ key: mk, snapshotId, message: errorMessage(e) });
      refs.failed.add(snapshotId);
      continue;
    }
    res.snapshotIds.push(snapshotId);
    let pr = refs.byProject.get(m.projectId);
    if (!pr) refs.byProject.set(m.projectId, (pr = new Map()));
    for (const d of m.disks) {
      res.disks++;
      let di;
      try {
        di = decodeDiskIndex(d.index, await b.get(d.index));
      } catch (e) {
        res.metadataProblems.push({ key: d.index, snapshotId, message: `disk ${d.diskKey}: ${errorMessage(e)}` });
        refs.failed.add(snapshotId);
        continue;
      }
      addDiskReferences(pr, refs.disks.push({ snapshotId, diskKey: d.diskKey }) - 1, di.ids, di.header.chunkCount);
    }
  }
  return refs;
}

/** The message of a committed snapshot without a manifest on the target (damage.job words it for the API). */
export const MANIFEST_MISSING = 'manifest missing';

/** Snapshots committed in both answers of the records whose manifest the listing did not show. */
function reportMissingManifests(res: VerifyResult, refs: References, before: ReadonlySet<string>, after: readonly string[]): void {
  for (const id of after) {
    if (!before.has(id) || refs.listed.has(id)) continue;
    res.metadataProblems.push({ key: keys.manifest(id), snapshotId: id, message: MANIFEST_MISSING });
    refs.failed.add(id);
  }
}

function addDiskReferences(pr: Map<string, number[]>, ord: number, ids: Buffer, chunkCount: number): void {
  for (let i = 0; i < chunkCount; i++) {
    const off = i * ID_LEN;
    if (ids.compare(ZERO_ID, 0, ID_LEN, off, off + ID_LEN) === 0) continue;
    const hex = ids.subarray(off, off + ID_LEN).toString('hex');
    const list = pr.get(hex);
    if (!list) pr.set(hex, [ord]);
    else if (list[list.length - 1] !== ord) list.push(ord);
  }
}

/** Every referenced chunk of the project without an intact (or unsampled) copy is a problem. */
function judgeReferences(res: VerifyResult, refs: References, projectId: string, v: Verdicts): void {
  for (const [hex, ords] of refs.byProject.get(projectId) ?? []) {
    if (v.good.has(hex)) {
      if (v.bad.has(hex)) res.healedChunks++;
      continue;
    }
    if (v.unchecked.has(hex)) continue; // an unread copy exists: not judged by this sample
    const b0 = v.bad.get(hex);
    const affected = ords.map((o) => refs.disks[o]!);
    for (const a of affected) refs.failed.add(a.snapshotId);
    res.problems.push({ chunk: hex, pack: b0?.pack ?? null, kind: b0?.kind ?? 'missing', detail: b0?.detail ?? 'no pack index lists this chunk', affected });
  }
}

/**
 * Reads and checks packs, one project at a time. Reads go through one reused window buffer, so
 * memory stays at WINDOW + one chunk whatever the pack or repository size.
 */
class PackReader {
  private readonly codec = new ChunkCodec();
  private raw = Buffer.alloc(0);
  private windowBuf = Buffer.alloc(0);

  constructor(
    private readonly repo: Repository,
    private readonly opts: VerifyOptions,
    private readonly res: VerifyResult,
    /** Pack keys whose data is read; null = all. */
    private readonly chosen: ReadonlySet<string> | null,
    private readonly packsTotal: number,
  ) {}

  async verifyProject(projectId: string): Promise<Verdicts> {
    const { copies, lengths } = await this.readIndexes(projectId);
    const listed = new Set<string>();
    for (const k of await listAll(this.repo.backend, `packs/${projectId}/`)) {
      const p = parse.pack(k);
      if (p) listed.add(p.packId);
    }
    const project = {
      projectId,
      hasher: newChunkHasher(this.repo.projectKey(projectId)),
      known: await this.repo.listBadCopies(projectId),
      v: { good: new Set<string>(), unchecked: new Set<string>(), bad: new Map() } as Verdicts,
    };
    for (const [pack, entries] of copies) {
      this.opts.signal?.throwIfAborted();
      await this.checkPack(project, pack, entries, listed.has(pack), lengths.get(pack));
      this.opts.onProgress?.({ packsDone: this.res.packsRead, packsTotal: this.packsTotal });
    }
    return project.v;
  }

  /** pack → the copies the project's readable pack indexes list in it, and its recorded length. */
  private async readIndexes(projectId: string): Promise<{ copies: Map<string, PackIndexEntry[]>; lengths: Map<string, number> }> {
    const b = this.repo.backend;
    const copies = new Map<string, PackIndexEntry[]>();
    const lengths = new Map<string, number>();
    for (const k of await listAll(b, `index/${projectId}/`)) {
      if (!parse.packIndex(k)) continue;
      try {
        const { header, entries } = decodePackIndex(k, await b.get(k));
        header.packLengths?.forEach((n, i) => lengths.set(header.packs[i]!, n));
        for (const e of entries) {
          const l = copies.get(e.pack);
          if (l) l.push(e);
          else copies.set(e.pack, [e]);
        }
      } catch (e) {
        this.res.metadataProblems.push({ key: k, snapshotId: null, message: errorMessage(e) });
      }
    }
    return { copies, lengths };
  }

  private async checkPack(p: ProjectState, pack: string, entries: PackIndexEntry[], listed: boolean, expected: number | undefined): Promise<void> {
    const packKey = keys.pack(p.projectId, pack);
    const size = listed ? await this.repo.backend.stat(packKey) : null;
    const wrongLength = size !== null && expected !== undefined && size !== expected ? `pack ${pack} has ${size} bytes, its index says ${expected}` : null;
    if (size !== null && !wrongLength && this.chosen !== null && !this.chosen.has(packKey)) {
      for (const e of entries) p.v.unchecked.add(e.id.toString('hex'));
      this.res.chunksSkipped += entries.length;
      return;
    }
    if (size !== null) this.res.packsRead++;
    const unreadable = size === null ? `pack ${pack} is missing` : wrongLength;
    entries.sort((x, y) => x.offset - y.offset);
    for (let i = 0; i < entries.length; ) {
      // A window: consecutive entries within WINDOW bytes, read at once.
      let j = i + 1;
      const from = entries[i]!.offset;
      let to = from + entries[i]!.storedLength;
      while (j < entries.length && entries[j]!.offset >= from && entries[j]!.offset + entries[j]!.storedLength - from <= WINDOW) {
        to = Math.max(to, entries[j]!.offset + entries[j]!.storedLength);
        j++;
      }
      await this.checkWindow(p, pack, packKey, entries.slice(i, j), from, to, unreadable);
      i = j;
    }
  }

  private async checkWindow(p: ProjectState, pack: string, packKey: string, win: PackIndexEntry[], from: number, to: number, unreadable: string | null): Promise<void> {
    let window: Buffer | null = null;
    let readErr = unreadable;
    if (!readErr) {
      try {
        window = await this.readRange(packKey, from, to - from);
        this.res.bytesRead += to - from;
      } catch (e) {
        if (e instanceof NotFoundError) readErr = `pack ${pack} is missing`;
        else if (!(e instanceof IntegrityError)) throw e; // truncated: check entry by entry
      }
    }
    for (const e of win) {
      const hex = e.id.toString('hex');
      this.res.chunksChecked++;
      if (readErr) {
        await this.markBad(p, hex, pack, 'missing', readErr);
        continue;
      }
      const stored = window ? window.subarray(e.offset - from, e.offset - from + e.storedLength) : await this.readEntry(packKey, e);
      if (this.raw.length < e.rawLength) this.raw = Buffer.allocUnsafe(e.rawLength);
      const err =
        stored === null || stored.length !== e.storedLength
          ? `pack ${pack} is truncated`
          : this.codec.decodeVerify(stored, e.flags, this.raw.subarray(0, e.rawLength), p.hasher, e.id);
      if (err) await this.markBad(p, hex, pack, 'corrupt', err);
      else p.v.good.add(hex);
    }
  }

  /** One entry of a window that could not be read whole (a truncated pack); null when gone. */
  private async readEntry(packKey: string, e: PackIndexEntry): Promise<Buffer | null> {
    try {
      const stored = Buffer.from(await this.repo.backend.getRange(packKey, e.offset, e.storedLength));
      this.res.bytesRead += e.storedLength;
      return stored;
    } catch (err) {
      if (!(err instanceof IntegrityError) && !(err instanceof NotFoundError)) throw err;
      return null;
    }
  }

  private async readRange(key: string, offset: number, length: number): Promise<Buffer> {
    const b = this.repo.backend;
    if (!b.getRangeInto) return b.getRange(key, offset, length);
    if (this.windowBuf.length < length) this.windowBuf = Buffer.allocUnsafe(Math.max(length, WINDOW));
    await b.getRangeInto(key, offset, length, this.windowBuf);
    return this.windowBuf.subarray(0, length);
  }

  private async markBad(p: ProjectState, hex: string, pack: string, kind: Kind, detail: string): Promise<void> {
    if (!p.v.bad.has(hex) || kind === 'corrupt') p.v.bad.set(hex, { pack, kind, detail });
    if (this.opts.markBad !== false && !p.known.has(`${hex}.${pack}`)) {
      await this.repo.markBadCopy(p.projectId, hex, pack, `${kind}: ${detail}`);
      p.known.add(`${hex}.${pack}`);
      this.res.badCopiesMarked++;
    }
  }
}

interface ProjectState {
  projectId: string;
  hasher: ChunkHasher;
  /** Bad copies already marked (`<chunkHex>.<pack>`). */
  known: Set<string>;
  v: Verdicts;
}

/** About `share` of the pack keys (at least one when there is any), chosen uniformly at random. */
function samplePacks(packKeys: readonly string[], share: number): Set<string> {
  const keysLeft = [...packKeys];
  const want = Math.min(keysLeft.length, Math.max(1, Math.round(keysLeft.length * share)));
  for (let i = 0; i < want; i++) {
    const j = i + Math.floor(Math.random() * (keysLeft.length - i));
    [keysLeft[i], keysLeft[j]] = [keysLeft[j]!, keysLeft[i]!];
  }
  return new Set(keysLeft.slice(0, want));
}
