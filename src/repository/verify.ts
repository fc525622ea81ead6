import { listAll } from '../backend/backend.js';
import { errorMessage, IntegrityError, NotFoundError, ValidationError } from '../lib/errors.js';
import { ChunkCodec, ChunkHasher, ID_LEN, ZERO_ID } from './chunk-codec.js';
import { decodeDiskIndex } from './disk-index.format.js';
import { keys, parse } from './keys.js';
import { decodeManifest } from './manifest.format.js';
import { decodePackIndex, type PackIndexEntry } from './pack-index.format.js';
import type { Repository } from './repository.js';

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
}

/**
 * Reads every manifest, disk index, pack index and pack, decodes every stored chunk and checks
 * its keyed hash. Reports which snapshots and disks each missing/corrupt chunk affects. Bad
 * copies get a marker (`bad/<project>/<chunk>.<pack>`) so no later backup dedups against them:
 * the next backup of the affected disk re-uploads the chunk (reliability.md §2 B7), after which
 * verify passes again. Holds a reader lease for all projects, so GC does not sweep meanwhile.
 * Runs on the calling thread, one pack at a time (memory: one pack + the reference map).
 */
export async function verifyRepository(
  repo: Repository,
  opts: {
    markBad?: boolean;
    /** Read the data of about this share (0 < x ≤ 1) of the packs, chosen at random (restic's --read-data-subset=x%). */
    readDataSubset?: number;
    onProgress?: (p: { packsDone: number; packsTotal: number }) => void;
    signal?: AbortSignal;
  } = {},
): Promise<VerifyResult> {
  const subset = opts.readDataSubset;
  if (subset !== undefined && !(subset > 0 && subset <= 1)) throw new ValidationError('readDataSubset must be in (0, 1]');
  const b = repo.backend;
  const res: VerifyResult = {
    ok: false,
    sampled: subset ?? null,
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
  };
  const failed = new Set<string>();
  const lease = await repo.acquireLease('reader', null, null);
  try {
    // References: projectId → chunk hex → indexes into `disks`.
    const disks: AffectedDisk[] = [];
    const refs = new Map<string, Map<string, number[]>>();
    for (const mk of await listAll(b, 'manifests/')) {
      const snapshotId = parse.manifest(mk);
      if (!snapshotId) continue;
      res.snapshots++;
      let m;
      try {
        m = decodeManifest(mk, await b.get(mk));
      } catch (e) {
        if (e instanceof NotFoundError) continue; // deleted meanwhile
        res.metadataProblems.push({ key: mk, snapshotId, message: errorMessage(e) });
        failed.add(snapshotId);
        continue;
      }
      res.snapshotIds.push(snapshotId);
      let pr = refs.get(m.projectId);
      if (!pr) refs.set(m.projectId, (pr = new Map()));
      for (const d of m.disks) {
        res.disks++;
        let di;
        try {
          di = decodeDiskIndex(d.index, await b.get(d.index));
        } catch (e) {
          res.metadataProblems.push({ key: d.index, snapshotId, message: `disk ${d.diskKey}: ${errorMessage(e)}` });
          failed.add(snapshotId);
          continue;
        }
        const ord = disks.push({ snapshotId, diskKey: d.diskKey }) - 1;
        for (let i = 0; i < di.header.chunkCount; i++) {
          const off = i * ID_LEN;
          if (di.ids.compare(ZERO_ID, 0, ID_LEN, off, off + ID_LEN) === 0) continue;
          const hex = di.ids.subarray(off, off + ID_LEN).toString('hex');
          const list = pr.get(hex);
          if (!list) pr.set(hex, [ord]);
          else if (list[list.length - 1] !== ord) list.push(ord);
        }
      }
    }

    const codec = new ChunkCodec();
    let raw = Buffer.alloc(0);
    let windowBuf = Buffer.alloc(0);
    const readRange = async (key: string, offset: number, length: number): Promise<Buffer> => {
      if (!b.getRangeInto) return b.getRange(key, offset, length);
      if (windowBuf.length < length) windowBuf = Buffer.allocUnsafe(Math.max(length, WINDOW));
      await b.getRangeInto(key, offset, length, windowBuf);
      return windowBuf.subarray(0, length);
    };
    const projects = new Set<string>([...refs.keys()]);
    for (const k of await listAll(b, 'index/')) {
      const p = parse.packIndex(k);
      if (p) projects.add(p.projectId);
    }
    const allPacks = await listAll(b, 'packs/');
    const packsTotal = allPacks.length;
    const chosen = subset === undefined ? null : samplePacks(allPacks, subset);
    for (const projectId of projects) {
      const hasher = new ChunkHasher(repo.projectKey(projectId));
      const copies = new Map<string, PackIndexEntry[]>(); // pack → entries
      const lengths = new Map<string, number>(); // pack → length its index records
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
          res.metadataProblems.push({ key: k, snapshotId: null, message: errorMessage(e) });
        }
      }
      const listed = new Set<string>();
      for (const k of await listAll(b, `packs/${projectId}/`)) {
        const p = parse.pack(k);
        if (p) listed.add(p.packId);
      }
      const known = await repo.listBadCopies(projectId);
      const good = new Set<string>();
      const unchecked = new Set<string>(); // chunks with a present copy the sample left unread
      const bad = new Map<string, { pack: string; kind: 'missing' | 'corrupt'; detail: string }>();
      const markBad = async (hex: string, pack: string, kind: 'missing' | 'corrupt', detail: string) => {
        if (!bad.has(hex) || kind === 'corrupt') bad.set(hex, { pack, kind, detail });
        if (opts.markBad !== false && !known.has(`${hex}.${pack}`)) {
          await repo.markBadCopy(projectId, hex, pack, `${kind}: ${detail}`);
          known.add(`${hex}.${pack}`);
          res.badCopiesMarked++;
        }
      };
      for (const [pack, entries] of copies) {
        opts.signal?.throwIfAborted();
        const packKey = keys.pack(projectId, pack);
        const size = listed.has(pack) ? await b.stat(packKey) : null;
        const expected = lengths.get(pack);
        const present = size !== null;
        const wrongLength = present && expected !== undefined && size !== expected ? `pack ${pack} has ${size} bytes, its index says ${expected}` : null;
        if (present && !wrongLength && chosen !== null && !chosen.has(packKey)) {
          for (const e of entries) unchecked.add(e.id.toString('hex'));
          res.chunksSkipped += entries.length;
          continue;
        }
        if (present) res.packsRead++;
        // Windows of consecutive entries read into one reused buffer: memory stays at
        // WINDOW + one chunk whatever the pack or repository size.
        entries.sort((x, y) => x.offset - y.offset);
        for (let i = 0; i < entries.length; ) {
          let j = i + 1;
          const from = entries[i]!.offset;
          let to = from + entries[i]!.storedLength;
          while (j < entries.length && entries[j]!.offset >= from && entries[j]!.offset + entries[j]!.storedLength - from <= WINDOW) {
            to = Math.max(to, entries[j]!.offset + entries[j]!.storedLength);
            j++;
          }
          const win = entries.slice(i, j);
          i = j;
          let window: Buffer | null = null;
          let readErr: string | null = present ? wrongLength : `pack ${pack} is missing`;
          if (present && !wrongLength) {
            try {
              window = await readRange(packKey, from, to - from);
              res.bytesRead += to - from;
            } catch (e) {
              if (e instanceof NotFoundError) readErr = `pack ${pack} is missing`;
              else if (e instanceof IntegrityError) readErr = null; // truncated: check entry by entry
              else throw e;
            }
          }
          for (const e of win) {
            const hex = e.id.toString('hex');
            res.chunksChecked++;
            if (readErr) {
              await markBad(hex, pack, 'missing', readErr);
              continue;
            }
            let stored: Buffer | null = window ? window.subarray(e.offset - from, e.offset - from + e.storedLength) : null;
            if (!stored) {
              try {
                stored = Buffer.from(await b.getRange(packKey, e.offset, e.storedLength));
                res.bytesRead += e.storedLength;
              } catch (err) {
                if (!(err instanceof IntegrityError) && !(err instanceof NotFoundError)) throw err;
              }
            }
            if (raw.length < e.rawLength) raw = Buffer.allocUnsafe(e.rawLength);
            const err =
              stored === null || stored.length !== e.storedLength
                ? `pack ${pack} is truncated`
                : codec.decodeVerify(stored, e.flags, raw.subarray(0, e.rawLength), hasher, e.id);
            if (err) await markBad(hex, pack, 'corrupt', err);
            else good.add(hex);
          }
        }
        opts.onProgress?.({ packsDone: res.packsRead, packsTotal });
      }
      for (const [hex, ords] of refs.get(projectId) ?? []) {
        if (good.has(hex)) {
          if (bad.has(hex)) res.healedChunks++;
          continue;
        }
        if (unchecked.has(hex)) continue; // an unread copy exists: not judged by this sample
        const b0 = bad.get(hex);
        const affected = ords.map((o) => disks[o]!);
        for (const a of affected) failed.add(a.snapshotId);
        res.problems.push({
          chunk: hex,
          pack: b0?.pack ?? null,
          kind: b0?.kind ?? 'missing',
          detail: b0?.detail ?? 'no pack index lists this chunk',
          affected,
        });
      }
    }
    res.failedSnapshots = [...failed].sort();
    res.ok = res.problems.length === 0 && res.metadataProblems.length === 0;
    return res;
  } finally {
    await lease.release().catch(() => {});
  }
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
