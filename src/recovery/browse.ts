import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { NotFoundError, ValidationError } from '../lib/errors.js';

/**
 * Reading a mounted snapshot's files on behalf of an API caller. Every path is resolved
 * component by component inside the mount root with lstat: `..`, `.`, empty or NUL-bearing
 * components are refused, and symbolic links are never followed (listed as links, refused as
 * a directory or a download), so nothing outside the mounted file systems can be reached.
 * Error messages carry the caller's path only, never the host path of the mount.
 */

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface FileEntry {
  name: string;
  /** Path inside the snapshot mount, `/`-separated, starting with `/`. */
  path: string;
  type: EntryType;
  size: number;
  /** Modification time, ISO 8601 UTC. */
  mtime: string;
  /** Permission bits, octal text (`0644`). */
  mode: string;
}

/** Most entries one listing returns (the rest are cut, `truncated` says so). */
export const MAX_LISTING = 10_000;

function typeOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'file';
  return 'other';
}

/** The caller's path as checked components (`/` → []). */
export function pathComponents(userPath: string): string[] {
  if (typeof userPath !== 'string' || !userPath.startsWith('/')) throw new ValidationError('path must be an absolute path inside the snapshot (starting with /)');
  if (userPath.length > 4096 || userPath.includes('\0')) throw new ValidationError('path is too long or contains NUL');
  const parts = userPath.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '..' || p === '.')) throw new ValidationError('path must not contain . or .. components');
  return parts;
}

/** Host path of `userPath` under `root` and its lstat; every parent must be a real directory. */
async function resolveInside(root: string, userPath: string): Promise<{ host: string; st: Awaited<ReturnType<typeof lstat>>; parts: string[] }> {
  const parts = pathComponents(userPath);
  let host = root;
  let st = await lstat(root);
  for (const [i, p] of parts.entries()) {
    host = join(host, p);
    try {
      st = await lstat(host);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`${userPath} does not exist in the snapshot`);
      throw e;
    }
    if (i < parts.length - 1 && !st.isDirectory()) {
      throw st.isSymbolicLink() ? new ValidationError(`${userPath} passes through a symbolic link (links are not followed)`) : new NotFoundError(`${userPath} does not exist in the snapshot`);
    }
  }
  return { host, st, parts };
}

function entry(name: string, path: string, st: Awaited<ReturnType<typeof lstat>>): FileEntry {
  return { name, path, type: typeOf(st), size: Number(st.size), mtime: new Date(Number(st.mtimeMs)).toISOString(), mode: (Number(st.mode) & 0o7777).toString(8).padStart(4, '0') };
}

/** A directory's entries (sorted by name), without following links. */
export async function listDirectory(root: string, userPath: string): Promise<{ path: string; entries: FileEntry[]; truncated: boolean }> {
  const { host, st, parts } = await resolveInside(root, userPath);
  const path = `/${parts.join('/')}`;
  if (!st.isDirectory()) throw new ValidationError(`${path} is not a directory`);
  const names = (await readdir(host)).sort();
  const entries: FileEntry[] = [];
  for (const name of names.slice(0, MAX_LISTING)) {
    const child = await lstat(join(host, name)).catch(() => null);
    if (child) entries.push(entry(name, `${path === '/' ? '' : path}/${name}`, child));
  }
  return { path, entries, truncated: names.length > MAX_LISTING };
}

export interface OpenedFile {
  name: string;
  size: number;
  /** Inclusive byte range served; `partial` when a Range header chose it. */
  start: number;
  end: number;
  partial: boolean;
  /** Null when the range cannot be satisfied (HTTP 416). */
  stream: Readable | null;
}

/**
 * One `bytes=` range of a Range header against `size`: null = serve the whole file (no header,
 * another unit, several ranges); 'unsatisfiable' when it lies outside the file.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** A regular file's bytes, the range of `rangeHeader` or all of them. */
export async function openFile(root: string, userPath: string, rangeHeader?: string): Promise<OpenedFile> {
  const { host, st, parts } = await resolveInside(root, userPath);
  if (!st.isFile()) throw new ValidationError(`${userPath} is not a regular file${st.isSymbolicLink() ? ' (symbolic links are not followed)' : ''}`);
  const size = Number(st.size);
  const name = parts[parts.length - 1] ?? 'file';
  const range = parseRange(rangeHeader, size);
  if (range === 'unsatisfiable') return { name, size, start: 0, end: -1, partial: true, stream: null };
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const stream = size === 0 ? Readable.from([]) : createReadStream(host, { start, end, highWaterMark: 1 << 20 });
  return { name, size, start, end, partial: range !== null, stream };
}

/** A tar stream of a directory (links archived as links, never followed). */
export async function tarDirectory(root: string, userPath: string): Promise<{ name: string; stream: Readable }> {
  const { host, st, parts } = await resolveInside(root, userPath);
  if (!st.isDirectory()) throw new ValidationError(`${userPath} is not a directory`);
  const child = spawn('tar', ['--create', '--file=-', '--one-file-system', '--directory', host, '.'], { stdio: ['ignore', 'pipe', 'ignore'] });
  return { name: parts[parts.length - 1] ?? 'snapshot', stream: child.stdout };
}
