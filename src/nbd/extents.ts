import type { StatusExtent } from './client.js';
import { STATE_DIRTY, STATE_ZERO } from './protocol.js';

/**
 * A byte range [offset, offset + length): the shape of platform/platform.ts `Extent` (nbd/
 * imports only lib/, so it states the shape itself; TypeScript checks the fit where a platform
 * hands an NBD source out as a DiskSource).
 */
export interface Extent {
  offset: number;
  length: number;
}

/**
 * Turns block-status extents into the sorted, disjoint byte ranges the datamover reads
 * (platform/platform.ts DiskSource: `allocatedExtents`, `changedExtentsSince`).
 */
export interface AlignOptions {
  /** Round every extent out to multiples of this (e.g. the chunk or cluster size); default 1. */
  alignment?: number;
  /** Clip to the disk size (needed when the last aligned extent would pass the end). */
  size?: number;
}

/**
 * Extents of a `base:allocation` map that may hold non-zero data. Everything flagged
 * NBD_STATE_ZERO reads as zeroes and is skipped; a hole without the ZERO flag is kept, because
 * the protocol does not promise what such a range reads as.
 */
export function dataExtents(allocation: readonly StatusExtent[], opts: AlignOptions = {}): Extent[] {
  return alignExtents(allocation.filter((e) => !(e.flags & STATE_ZERO)), opts);
}

/** Extents a `qemu:dirty-bitmap:<name>` map reports as dirty (changed since the bitmap started). */
export function dirtyExtents(bitmap: readonly StatusExtent[], opts: AlignOptions = {}): Extent[] {
  return alignExtents(bitmap.filter((e) => (e.flags & STATE_DIRTY) !== 0), opts);
}

/** Rounds extents out to `alignment`, clips them to `size`, and merges overlapping or touching ones. */
export function alignExtents(extents: readonly Extent[], opts: AlignOptions = {}): Extent[] {
  const a = opts.alignment ?? 1;
  if (!Number.isSafeInteger(a) || a < 1) throw new RangeError(`alignment must be a positive integer, got ${a}`);
  const rounded: Extent[] = [];
  for (const e of extents) {
    if (e.length <= 0) continue;
    const start = Math.floor(e.offset / a) * a;
    let end = Math.ceil((e.offset + e.length) / a) * a;
    if (opts.size !== undefined) end = Math.min(end, opts.size);
    if (end > start) rounded.push({ offset: start, length: end - start });
  }
  return mergeExtents(rounded);
}

/** Union of extents: sorted by offset, overlapping and touching extents joined. */
export function mergeExtents(extents: readonly Extent[]): Extent[] {
  const sorted = extents.filter((e) => e.length > 0).sort((x, y) => x.offset - y.offset);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && e.offset <= last.offset + last.length) last.length = Math.max(last.length, e.offset + e.length - last.offset);
    else out.push({ offset: e.offset, length: e.length });
  }
  return out;
}

/** The parts of `from` not covered by `remove` (e.g. dirty extents minus those that read as zero). */
export function subtractExtents(from: readonly Extent[], remove: readonly Extent[]): Extent[] {
  const cut = mergeExtents(remove);
  const out: Extent[] = [];
  for (const e of mergeExtents(from)) {
    let pos = e.offset;
    const end = e.offset + e.length;
    for (const c of cut) {
      if (c.offset + c.length <= pos) continue;
      if (c.offset >= end) break;
      if (c.offset > pos) out.push({ offset: pos, length: c.offset - pos });
      pos = Math.max(pos, c.offset + c.length);
    }
    if (pos < end) out.push({ offset: pos, length: end - pos });
  }
  return out;
}
