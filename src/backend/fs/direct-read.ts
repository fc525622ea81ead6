import type { FileHandle } from 'node:fs/promises';
import { alignedSharedMemory } from '../../lib/aligned-memory.js';
import { copyBytes } from '../../lib/copy-bytes.js';
import { DIRECT_ALIGN, isDirectRefused } from '../../lib/direct-io.js';
import { IntegrityError } from '../../lib/errors.js';

/**
 * Large range reads of objects (pack ranges of a restore, a verify or a full's read-back)
 * with O_DIRECT, through page-aligned bounce buffers: the aligned span around the range is
 * read from the device and the range copied into the caller's buffer. See lib/direct-io.ts.
 *
 * Why: packs are written with O_DIRECT (direct-stream.ts) and so are not in the page cache; a
 * buffered read would fill fresh cache pages with bytes read once, which on the bench VM (free
 * page reporting) costs a host fault per page: the 1 GiB sweep's restores read their 0.33-0.66
 * GB of packs that way at 0.85-2.0 system CPU-s per GB. The copy out of the bounce buffer is
 * the copy the kernel would make out of the cache anyway.
 *
 * Bounded memory: at most BUFFERS bounce buffers exist per process; a read waits for a free
 * one (the device is the limit then, not the number of reads in flight). Reads below
 * DIRECT_READ_MIN stay buffered (a small read is a cache hit or one device request anyway).
 */
export const DIRECT_READ_MIN = 256 * 1024;
const WINDOW = 1024 * 1024;
const BUFFERS = 2;

const free: SharedArrayBuffer[] = [];
const waiting: ((b: SharedArrayBuffer) => void)[] = [];
let made = 0;

async function acquire(): Promise<SharedArrayBuffer> {
  const b = free.pop();
  if (b) return b;
  if (made < BUFFERS) {
    made++;
    return alignedSharedMemory(WINDOW + 2 * DIRECT_ALIGN);
  }
  return new Promise((resolve) => waiting.push(resolve));
}

function release(b: SharedArrayBuffer): void {
  const next = waiting.shift();
  if (next) next(b);
  else free.push(b);
}

/**
 * Reads [offset, offset + length) of the file behind `fh` (opened by openDirect(file, 'read')) into
 * `dst`. Returns false, having copied nothing usable, when a read is refused (EINVAL: the
 * caller reads buffered instead); throws IntegrityError when the file ends before the range.
 */
export async function readDirect(fh: FileHandle, key: string, offset: number, length: number, dst: Uint8Array): Promise<boolean> {
  const bounce = await acquire();
  try {
    for (let done = 0; done < length; ) {
      const want = Math.min(WINDOW, length - done);
      const at = offset + done;
      const start = at - (at % DIRECT_ALIGN);
      const span = Math.ceil((at + want - start) / DIRECT_ALIGN) * DIRECT_ALIGN;
      const got = await readSpan(fh, bounce, start, span);
      if (got === null) return false;
      if (got < at + want - start) throw new IntegrityError(`object ${key} is shorter than ${offset + length} bytes`);
      copyBytes(dst, done, new Uint8Array(bounce, at - start, want));
      done += want;
    }
    return true;
  } finally {
    release(bounce);
  }
}

/** Bytes read into the bounce buffer from the aligned `start` (fewer than `span` only at the end of the file); null when refused. */
async function readSpan(fh: FileHandle, bounce: SharedArrayBuffer, start: number, span: number): Promise<number | null> {
  let got = 0;
  while (got < span) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(new Uint8Array(bounce, got, span - got), 0, span - got, start + got));
    } catch (e) {
      if (isDirectRefused(e)) return null;
      throw e;
    }
    if (n === 0) break;
    got += n;
    if (got % DIRECT_ALIGN !== 0) break; // a short, unaligned read is the end of the file
  }
  return got;
}
