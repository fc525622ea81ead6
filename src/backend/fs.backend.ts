import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { IntegrityError, NotFoundError } from '../lib/errors.js';
import { assertValidKey, assertValidPrefix, type Backend } from './backend.js';

/** Temp files live beside their final name and start with this; listings never show them. */
const TMP_PREFIX = '.tmp-';

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: string }).code === code;
}

/**
 * A directory as object store (local disk or an NFS mount). Object `a/b/c` is the file
 * `<root>/a/b/c`. Publishing follows the PostgreSQL rules (reliability.md §1.5): write a temp
 * file in the target directory, fsync it, rename over the final name, fsync the directory
 * (and the parents of any directory created on the way). Any fsync/close failure fails the put;
 * the same fd is never retried.
 */
export class FsBackend implements Backend {
  constructor(readonly root: string) {}

  private path(key: string): string {
    assertValidKey(key);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const final = this.path(key);
    const dir = dirname(final);
    const created = await mkdir(dir, { recursive: true });
    const tmp = join(dir, `${TMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const parts = data instanceof Uint8Array ? [data] : data;
    let published = false;
    try {
      const fh = await open(tmp, 'wx', 0o640);
      try {
        // writev may write partially; loop until every part is out.
        let pending = parts.filter((p) => p.length > 0).map((p) => Buffer.from(p.buffer, p.byteOffset, p.length));
        while (pending.length > 0) {
          const { bytesWritten } = await fh.writev(pending);
          let left = bytesWritten;
          const next: Buffer[] = [];
          for (const p of pending) {
            if (left >= p.length) left -= p.length;
            else {
              next.push(p.subarray(left));
              left = 0;
            }
          }
          pending = next;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, final);
      published = true;
      await fsyncDir(dir);
      if (created !== undefined) {
        // New directories must be made durable in their parents too, up to the root.
        let d = dir;
        while (d !== this.root && relative(this.root, d) !== '' && !relative(this.root, d).startsWith('..')) {
          d = dirname(d);
          await fsyncDir(d);
        }
      }
    } catch (e) {
      if (!published) await rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
  }

  async get(key: string): Promise<Buffer> {
    try {
      return await readFile(this.path(key));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new NotFoundError(`object ${key} not found`);
      throw e;
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    let fh;
    try {
      fh = await open(this.path(key), 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) throw new NotFoundError(`object ${key} not found`);
      throw e;
    }
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) throw new IntegrityError(`object ${key} is shorter than ${offset + length} bytes`);
        got += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  async stat(key: string): Promise<number | null> {
    try {
      return (await stat(this.path(key))).size;
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return null;
      throw e;
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
        throw e;
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
      throw e;
    }
    // A deletion that is lost on power failure could resurrect a deleted manifest after GC
    // freed its chunks, so deletions are made durable too.
    await fsyncDir(dirname(p));
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
