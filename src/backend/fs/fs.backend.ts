import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { EarlyWriteback } from '../../lib/early-writeback.js';
import { openDirect } from '../../lib/direct-io.js';
import { DIRECT_READ_MIN, readDirect } from './direct-read.js';
import { DirectStream, STAGE } from './direct-stream.js';
import { errnoText, IntegrityError, isErrno, MissingObjectError } from '../../lib/errors.js';
import { assertValidKey, assertValidPrefix, TransientError, type Backend, type ObjectWriter } from '../backend.js';

/** statfs f_type of network filesystems (linux/magic.h): NFS, SMB/CIFS, Ceph, FUSE (sshfs, s3fs...), 9p, AFS. */
const NETWORK_FS = new Set([0x6969, 0xff534d42, 0xfe534d42, 0x517b, 0x00c36400, 0x65735546, 0x01021997, 0x5346414f]);

/** Temp files live beside their final name and start with this; listings never show them. */
const TMP_PREFIX = '.tmp-';

/**
 * A streamed object's writer starts writing back what it was given (an fdatasync in the
 * background, one at a time) every this many bytes, so the disk works while the caller still
 * produces data and the commit's fsync finds only the tail dirty. Without it a pack of an
 * incremental (tens of MB written within ~0.1 s) reached the disk only at the commit, after
 * the last chunk, and the snapshot waited for all of it. Measured here (30 MiB written in 1 MiB
 * parts over ~110 ms, then committed; 6 runs each, twice): commit 17–25 ms without, 4.6–7.5 ms
 * every 8 MiB, 2.1–8.0 ms every 4 MiB; the bench's file-path full (936 MB of packs) unchanged
 * within its noise (2.20–2.83 s without, 2.24–2.31 s with 4 MiB).
 */
const WRITEBACK_EVERY = 4 * 1024 * 1024;

/**
 * Errors a second try may not see: a busy or interrupted call, descriptor exhaustion, and what
 * an NFS mount reports for a server that did not answer in time (soft mounts give EIO or
 * ETIMEDOUT, a handle invalidated by the server ESTALE). Each try of a put writes a new temp
 * file from the caller's bytes, so retrying after a failed fsync re-sends the data rather than
 * trusting the page cache (the fd that failed is never used again).
 */
const TRANSIENT_CODES = new Set(['EAGAIN', 'EBUSY', 'EINTR', 'EMFILE', 'ENFILE', 'ETIMEDOUT', 'ESTALE', 'EIO']);

/**
 * Turns a system error into one that names the object key, the errno and what it means ("No
 * space left on device (ENOSPC)"), never the file path (messages reach job records a tenant can
 * read): TransientError for TRANSIENT_CODES, a plain Error otherwise. Errors without an errno
 * (key checks, integrity) pass unchanged.
 */
function classify(e: unknown, op: string, key: string): unknown {
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  if (typeof code !== 'string') return e;
  const text = errnoText(code);
  const message = `fs backend: ${op} ${key || '/'} failed${text ? `: ${text}` : ''} (${code})`;
  if (TRANSIENT_CODES.has(code)) return new TransientError(message, { cause: e });
  return new Error(message, { cause: e });
}

/**
 * A directory as object store (local disk or an NFS mount). Object `a/b/c` is the file
 * `<root>/a/b/c`. Publishing follows the PostgreSQL rules (reliability.md §1.5): write a temp
 * file in the target directory, fsync it, rename over the final name, fsync the directory
 * (and the parents of any directory created on the way). Any fsync/close failure fails the put;
 * the same fd is never retried.
 */
export class FsBackend implements Backend {
  /** Large range reads go O_DIRECT until the filesystem refuses it once (direct-read.ts). */
  private directReads = true;
  /** Whether the root is on a local filesystem (O_DIRECT used at all); asked once. */
  private localFs: Promise<boolean> | null = null;

  constructor(readonly root: string) {}

  private path(key: string): string {
    assertValidKey(key);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    let w: ObjectWriter | null = null;
    try {
      const parts = data instanceof Uint8Array ? [data] : data;
      w = await this.openStream(key, parts.reduce((n, p) => n + p.length, 0) >= STAGE);
      await w.write(parts);
      await w.commit();
    } catch (e) {
      await w?.abort();
      throw classify(e, 'put', key);
    }
  }

  /** Streams an object into a temp file; commit = fsync, rename, fsync the directory (as put). */
  openWriter(key: string): Promise<ObjectWriter> {
    return this.openStream(key, true);
  }

  private async openStream(key: string, useDirect: boolean): Promise<ObjectWriter> {
    const final = this.path(key);
    const dir = dirname(final);
    const tmp = join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
    let created: string | undefined;
    let fh: FileHandle;
    try {
      created = await mkdir(dir, { recursive: true });
      fh = await open(tmp, 'wx', 0o640);
    } catch (e) {
      throw classify(e, 'put', key);
    }
    // Whole stages go with O_DIRECT (direct-stream.ts) where the filesystem offers it; the
    // tail, and a put smaller than a stage, are written buffered as before.
    const direct = useDirect && (await this.onLocalFs()) ? new DirectStream(tmp, fh) : null;
    let state: 'open' | 'committed' | 'aborted' = 'open';
    let closed = false;
    const root = this.root;
    const writeback = new EarlyWriteback(fh, WRITEBACK_EVERY);
    return {
      async write(parts: readonly Uint8Array[]): Promise<void> {
        if (state !== 'open') throw new Error(`write to a ${state} object writer (${key})`);
        await (direct ? direct.write(parts) : writeAll(fh, parts)).catch((e: unknown) => {
          throw classify(e, 'put', key);
        });
        if (!direct) writeback.wrote(parts.reduce((n, p) => n + p.length, 0));
      },
      async commit(): Promise<void> {
        if (state !== 'open') throw new Error(`commit of a ${state} object writer (${key})`);
        await publish().catch((e: unknown) => {
          throw classify(e, 'put', key);
        });
      },
      async abort(): Promise<void> {
        if (state !== 'open') return;
        state = 'aborted';
        await direct?.abandon();
        await writeback.idle();
        if (!closed) await fh.close().catch(() => {});
        await rm(tmp, { force: true }).catch(() => {});
      },
    };
    /** fsync, rename over the final name, fsync the directory (and any directory created). */
    async function publish(): Promise<void> {
      // Any fsync/close failure fails the put; the same fd is never retried.
      if (direct) await direct.finish().catch(async (e: unknown) => {
        await direct.abandon();
        throw e;
      });
      await writeback.settle();
      await fh.sync();
      closed = true;
      await fh.close();
      await rename(tmp, final);
      state = 'committed';
      await fsyncDir(dir);
      if (created !== undefined) {
        // New directories must be made durable in their parents too, up to the root.
        let d = dir;
        while (d !== root && relative(root, d) !== '' && !relative(root, d).startsWith('..')) {
          d = dirname(d);
          await fsyncDir(d);
        }
      }
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await readFile(this.path(key));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new MissingObjectError(`object ${key} not found`);
      throw classify(e, 'get', key);
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    await this.getRangeInto(key, offset, length, buf);
    return buf;
  }

  async getRangeInto(key: string, offset: number, length: number, dst: Uint8Array): Promise<void> {
    if (dst.length < length) throw new RangeError(`buffer of ${dst.length} bytes cannot hold ${length}`);
    if (length >= DIRECT_READ_MIN && this.directReads && (await this.onLocalFs()) && (await this.getRangeDirect(key, offset, length, dst))) return;
    const fh = (await this.openToRead(key, 'buffered'))!;
    try {
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(dst, got, length - got, offset + got).catch((e: unknown) => {
          throw classify(e, 'get', key);
        });
        if (bytesRead === 0) throw new IntegrityError(`object ${key} is shorter than ${offset + length} bytes`);
        got += bytesRead;
      }
    } finally {
      await fh.close();
    }
  }

  /** The object's file opened for reading; null only when O_DIRECT was asked for and refused. */
  private async openToRead(key: string, how: 'buffered' | 'direct'): Promise<FileHandle | null> {
    try {
      return how === 'direct' ? await openDirect(this.path(key), 'read') : await open(this.path(key), 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new MissingObjectError(`object ${key} not found`);
      throw classify(e, 'get', key);
    }
  }

  /**
   * O_DIRECT only on local filesystems: on NFS (and other network filesystems) a direct write
   * waits for the server's stable storage every call, where buffered writes are sent in the
   * background and committed once at the fsync.
   */
  private onLocalFs(): Promise<boolean> {
    this.localFs ??= statfs(this.root).then(
      (st) => !NETWORK_FS.has(st.type),
      () => {
        this.localFs = null; // the root may not exist yet: ask again next time
        return false;
      },
    );
    return this.localFs;
  }

  /** getRangeInto through direct-read.ts; false when O_DIRECT is refused (the caller reads buffered). */
  private async getRangeDirect(key: string, offset: number, length: number, dst: Uint8Array): Promise<boolean> {
    const fh = await this.openToRead(key, 'direct');
    if (!fh) {
      this.directReads = false; // this filesystem has no O_DIRECT
      return false;
    }
    try {
      return await readDirect(fh, key, offset, length, dst).catch((e: unknown) => {
        throw classify(e, 'get', key);
      });
    } finally {
      await fh.close();
    }
  }

  async stat(key: string): Promise<number | null> {
    try {
      return (await stat(this.path(key))).size;
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return null;
      throw classify(e, 'stat', key);
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    assertValidPrefix(prefix);
    const base = prefix === '' ? this.root : join(this.root, ...prefix.slice(0, -1).split('/'));
    // Only a missing prefix folder means "nothing there"; every other error propagates.
    const stack: string[] = [base];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isErrno(e, 'ENOENT') && dir === base) return;
        throw classify(e, 'list', prefix);
      }
      for (const ent of entries) {
        if (ent.name.startsWith('.')) continue; // temp files and foreign dotfiles
        const p = join(dir, ent.name);
        if (ent.isDirectory()) stack.push(p);
        else if (ent.isFile()) yield relative(this.root, p).split(sep).join('/');
      }
    }
  }

  async delete(key: string): Promise<void> {
    const p = this.path(key);
    try {
      await unlink(p);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      throw classify(e, 'delete', key);
    }
    // A deletion that is lost on power failure could resurrect a deleted manifest after GC
    // freed its chunks, so deletions are made durable too.
    await fsyncDir(dirname(p)).catch((e: unknown) => {
      throw classify(e, 'delete', key);
    });
  }

  /**
   * Removes `.tmp-*` files whose last write is older than `olderThanMs`: what a put or a pack
   * stream leaves when its process is killed before commit or abort. A live writer touches its
   * temp file with every write, so only a writer stalled for longer than the grace period can
   * lose its file — its commit then fails loudly (rename of a missing file), never silently.
   * Objects and foreign dotfiles are never touched. Returns the number of files removed.
   */
  async sweepLeftovers(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const stack: string[] = [this.root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      for (const ent of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, ent.name);
        if (ent.isDirectory() && !ent.name.startsWith('.')) stack.push(p);
        else if (ent.isFile() && ent.name.startsWith(TMP_PREFIX)) {
          const st = await lstat(p).catch(() => null); // committed or aborted meanwhile
          if (st && st.mtimeMs < cutoff) {
            await rm(p, { force: true });
            removed++;
          }
        }
      }
    }
    return removed;
  }
}

/** writev may write partially; loops until every part is out. */
async function writeAll(fh: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  let pending = parts.filter((p) => p.length > 0).map((p) => Buffer.from(p.buffer, p.byteOffset, p.length));
  while (pending.length > 0) {
    // IOV_MAX is 1024 on Linux; Node splits nothing for us.
    const batch = pending.length > 1024 ? pending.slice(0, 1024) : pending;
    const { bytesWritten } = await fh.writev(batch);
    let left = bytesWritten;
    const next: Buffer[] = [];
    for (const p of pending) {
      if (left >= p.length) left -= p.length;
      else {
        next.push(left > 0 ? p.subarray(left) : p);
        left = 0;
      }
    }
    pending = next;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
