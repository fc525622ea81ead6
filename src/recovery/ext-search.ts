import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ApplianceError } from './guestfish.js';
import { unmountFuse } from './fuse.js';
import type { DiskExport } from './disk-export.js';
import type { SnapshotDisk } from './filesystems.js';
import { probeFileSystem, readPartitions } from './partitions.js';
import type { FileSystemMatches, StatRecord } from './search.js';

/**
 * Search of ext2/3/4 file systems without the appliance: the disk's NBD export is made a
 * local file by `nbdfuse -r` (read-only FUSE, one file) and `debugfs -c` (read-only,
 * catastrophic mode: no bitmaps, no journal replay — like the appliance's `noload`) reads the
 * file system at its partition offset (`file?offset=N`). The glob is expanded one path
 * component at a time with `ls -p`; matches get a `stat`. Milliseconds per file system instead
 * of an appliance launch (20–120 s under TCG).
 *
 * Same rules as the appliance's glob(3): `*`, `?`, `[…]` within one component, a leading dot
 * matched only by a leading dot, results sorted, directories with a trailing `/`. Symbolic
 * links are not followed (an intermediate component must be a real directory).
 */

/** One debugfs run: each command's output lines (commands are echoed as `debugfs: <cmd>`). */
export async function debugfs(image: string, commands: string[]): Promise<string[][]> {
  const child = spawn('debugfs', ['-c', '-f', '-', image], { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s: string) => (out += s));
  child.stdin.on('error', () => undefined);
  child.stdin.end(commands.map((c) => `${c}\n`).join(''));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new ApplianceError(`debugfs ended with status ${code}`);
  const sections: string[][] = [];
  for (const line of out.split('\n')) {
    if (line.startsWith('debugfs: ')) sections.push([]);
    else if (sections.length > 0 && line !== '') sections[sections.length - 1]!.push(line);
  }
  if (sections.length !== commands.length) throw new ApplianceError('debugfs answered an unexpected number of commands');
  return sections;
}

/** A debugfs argument: double-quoted; names with a quote, backslash or newline cannot be passed. */
export function debugfsArg(path: string): string | null {
  return /["\\\n\r]/.test(path) ? null : `"${path}"`;
}

export interface ListedEntry {
  name: string;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
}

/** `ls -p` lines (`/ino/mode/uid/gid/name/size/`) → entries, without `.`, `..` and unused slots. */
export function parseLsP(lines: string[]): ListedEntry[] {
  const out: ListedEntry[] = [];
  for (const l of lines) {
    const m = /^\/(\d+)\/([0-7]+)\/(\d+)\/(\d+)\/(.*)\/\d*\/$/.exec(l);
    if (!m || m[1] === '0' || m[5] === '' || m[5] === '.' || m[5] === '..') continue; // inode 0: an unused slot (lost+found has many)
    out.push({ ino: Number(m[1]), mode: parseInt(m[2]!, 8), uid: Number(m[3]), gid: Number(m[4]), name: m[5]! });
  }
  return out;
}

/** One glob component (`*`, `?`, `[…]`, `[!…]`) → an anchored regular expression. */
export function componentMatcher(component: string): (name: string) => boolean {
  let re = '';
  for (let i = 0; i < component.length; i++) {
    const c = component[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[' && component.indexOf(']', i + 2) > 0) {
      const end = component.indexOf(']', i + 2);
      let body = component.slice(i + 1, end);
      if (body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  const rx = new RegExp(`^${re}$`, 's');
  const dotOk = component.startsWith('.');
  return (name) => (dotOk || !name.startsWith('.')) && rx.test(name);
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** debugfs `stat` lines + the listed entry → the vendor's stat record. */
export function parseDebugfsStat(lines: string[], e: ListedEntry, blockSize: number): StatRecord {
  const text = lines.join('\n');
  const num = (rx: RegExp) => Number(rx.exec(text)?.[1] ?? 0);
  const time = (name: string) => parseInt(new RegExp(`^\\s*${name}: 0x([0-9a-f]+)`, 'm').exec(text)?.[1] ?? '0', 16);
  return {
    dev: 0, // the appliance's device number would be as meaningless to the caller
    ino: e.ino,
    mode: e.mode,
    nlink: num(/Links: (\d+)/),
    uid: e.uid,
    gid: e.gid,
    rdev: 0,
    size: num(/Size: (\d+)/),
    blksize: blockSize,
    blocks: num(/Blockcount: (\d+)/),
    atime: time('atime'),
    mtime: time('mtime'),
    ctime: time('ctime'),
  };
}

/** Expands `pattern` in the ext file system at `image` (`file?offset=N`); `device` names it in the result. */
export async function searchExtFileSystem(image: string, device: string, pattern: string): Promise<FileSystemMatches> {
  let current: { path: string; entry: ListedEntry | null }[] = [{ path: '/', entry: null }];
  for (const component of pattern.split('/').filter((c) => c !== '')) {
    const dirs = current.filter((c) => c.entry === null || (c.entry.mode & S_IFMT) === S_IFDIR).filter((c) => debugfsArg(c.path) !== null);
    if (dirs.length === 0) return { device, matches: [] };
    const listings = await debugfs(image, dirs.map((d) => `ls -p ${debugfsArg(d.path)}`));
    const match = componentMatcher(component);
    current = dirs.flatMap((d, k) => parseLsP(listings[k]!).filter((e) => match(e.name)).map((e) => ({ path: `${d.path === '/' ? '' : d.path}/${e.name}`, entry: e })));
  }
  const found = current.filter((c): c is { path: string; entry: ListedEntry } => c.entry !== null && debugfsArg(c.path) !== null).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  if (found.length === 0) return { device, matches: [] };
  const [sb, ...stats] = await debugfs(image, ['stats -h', ...found.map((f) => `stat ${debugfsArg(f.path)}`)]);
  const blockSize = Number(/Block size:\s+(\d+)/.exec(sb!.join('\n'))?.[1] ?? 4096);
  return {
    device,
    matches: found.map((f, k) => ({ path: (f.entry.mode & S_IFMT) === S_IFDIR ? `${f.path}/` : f.path, stat: parseDebugfsStat(stats[k]!, f.entry, blockSize) })),
  };
}

/**
 * An NBD export as a local read-only file: `nbdfuse -r <dir> --unix <socket>`, the file at
 * `<dir>/nbd`. The directory must be under the service's mount root (restart reconciliation
 * unmounts what a killed service left there); the process carries the appliance tag.
 */
export class NbdFile {
  private constructor(
    private readonly dir: string,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  get path(): string {
    return join(this.dir, 'nbd');
  }

  static async attach(o: { dir: string; socketPath: string; tag: string; timeoutMs?: number }): Promise<NbdFile> {
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    const child = spawn('nbdfuse', ['-r', o.dir, '--unix', o.socketPath], { stdio: 'ignore', env: { ...process.env, LIFEBOAT_APPLIANCE: o.tag } });
    let ended = false;
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    void exited.then(() => (ended = true));
    child.once('error', () => (ended = true));
    const f = new NbdFile(o.dir, child, exited);
    const deadline = Date.now() + (o.timeoutMs ?? 60_000);
    // The file exists only once the FUSE mount is up. Async polling only: nbdfuse's reads are
    // served by the NBD server on this event loop.
    while (!(await stat(f.path).then((s) => s.isFile(), () => false))) {
      if (ended || Date.now() > deadline) {
        await f.detach();
        throw new ApplianceError('the disk could not be opened for the search (nbdfuse)');
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return f;
  }

  /** Unmounts (lazily: a hung FUSE server cannot block it) and waits for nbdfuse to end. */
  async detach(): Promise<void> {
    unmountFuse(this.dir);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    if (this.child.exitCode === null && this.child.signalCode === null) await this.exited;
    clearTimeout(t);
    try {
      rmdirSync(this.dir);
    } catch {
      /* still busy: reconcile removes it at the next start */
    }
  }
}

/** An ext file system of a snapshot disk: the export it is read through and where it starts. */
export interface ExtFileSystem {
  source: DiskExport;
  /** The instance whose disk holds it. */
  instanceId: string;
  /** The VM's name for it (`/dev/vda1`, or `/dev/vdb` for a file system on the whole disk). */
  device: string;
  offset: number;
}

/**
 * The file systems of a snapshot's disks when every one is ext2/3/4 (BIOS boot partitions,
 * swap and empty partitions are skipped); null when any disk holds something else (LVM, XFS,
 * vfat, …) or a layout not read here: then the appliance searches the snapshot.
 */
export async function extOnlyLayout(disks: SnapshotDisk[], exports: DiskExport[]): Promise<ExtFileSystem[] | null> {
  const out: ExtFileSystem[] = [];
  for (const [k, disk] of disks.entries()) {
    const source = exports[k]!;
    const read = (offset: number, length: number) => source.read(offset, length);
    const parts = await readPartitions(read);
    if (!parts) return null;
    for (const p of parts) {
      if (p.biosBoot) continue;
      const kind = await probeFileSystem(read, p.offset);
      if (kind === 'other') return null;
      if (kind === 'ext') out.push({ source, instanceId: disk.instanceId, device: p.number === null ? disk.device : `${disk.device}${p.number}`, offset: p.offset });
    }
  }
  return out;
}

/** Searches ext file systems of a search run; each export is attached (nbdfuse) once, when first needed. */
export class ExtSearcher {
  private readonly files = new Map<DiskExport, Promise<NbdFile>>();

  constructor(private readonly o: { mountRoot: string; run: string; tag: string }) {}

  private file(source: DiskExport): Promise<NbdFile> {
    let f = this.files.get(source);
    if (!f) {
      mkdirSync(this.o.mountRoot, { recursive: true, mode: 0o700 });
      f = NbdFile.attach({ dir: join(this.o.mountRoot, `search-${this.o.run}-${this.files.size}`), socketPath: source.socketPath, tag: this.o.tag });
      this.files.set(source, f);
    }
    return f;
  }

  async search(layout: ExtFileSystem[], pattern: string, signal?: AbortSignal): Promise<FileSystemMatches[]> {
    const out: FileSystemMatches[] = [];
    for (const fs of layout) {
      signal?.throwIfAborted();
      const file = await this.file(fs.source);
      out.push(await searchExtFileSystem(`${file.path}?offset=${fs.offset}`, fs.device, pattern));
    }
    return out;
  }

  async close(): Promise<void> {
    const files = [...this.files.values()];
    this.files.clear();
    await Promise.all(files.map((f) => f.then((x) => x.detach(), () => undefined)));
  }
}
