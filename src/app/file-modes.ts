import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../config/config.js';

/**
 * Owner-only files for what Lifeboat keeps on disk: LIFEBOAT_HOME is created 0700; the store
 * database, the inventory, the identity file, the settings key and the first-start credentials
 * are created 0600 (each by the code that creates it; the database file here, before SQLite
 * creates it 0644). Files that already exist are never chmod-ed behind the operator's back:
 * start-up logs a warning for each one others may read instead.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** The file a `sqlite:<path>` store url names; null for PostgreSQL and `sqlite::memory:`. */
export function sqliteFile(dbUrl: string): string | null {
  if (!dbUrl.startsWith('sqlite:')) return null;
  const path = dbUrl.slice('sqlite:'.length);
  return path === ':memory:' ? null : path;
}

/**
 * Creates LIFEBOAT_HOME (0700) and, for a SQLite store, its database file empty with mode 0600
 * when missing: SQLite opens an empty file as a new database and creates its -wal and -shm
 * files with the database file's mode.
 */
export function preparePrivateFiles(config: Pick<Config, 'home' | 'db'>): void {
  mkdirSync(config.home, { recursive: true, mode: PRIVATE_DIR_MODE });
  const db = sqliteFile(config.db);
  if (db === null) return;
  mkdirSync(dirname(db), { recursive: true, mode: PRIVATE_DIR_MODE });
  try {
    closeSync(openSync(db, 'wx', PRIVATE_FILE_MODE));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/** Writes `text` to `path` (replacing it) so that no other user can ever read it, not even briefly. */
export function writePrivateFile(path: string, text: string): void {
  const fd = openSync(path, 'w', PRIVATE_FILE_MODE);
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE); // an older file keeps its mode on open: tighten before writing
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

interface PrivatePath {
  what: string;
  path: string;
  /** Mode to suggest in the warning (what Lifeboat itself would have created). */
  mode: number;
}

/**
 * One warning per private path that group or others may access (missing paths are skipped: the
 * inventory, for one, may come later). The identity file is checked where it is loaded
 * (identity-file.ts) and not repeated here.
 */
export function loosePermissionWarnings(config: Pick<Config, 'home' | 'db' | 'inventory'>): string[] {
  const paths: PrivatePath[] = [{ what: 'LIFEBOAT_HOME', path: config.home, mode: PRIVATE_DIR_MODE }];
  const db = sqliteFile(config.db);
  if (db !== null) paths.push({ what: 'database file', path: db, mode: PRIVATE_FILE_MODE });
  paths.push({ what: 'inventory file', path: config.inventory, mode: PRIVATE_FILE_MODE });
  const warnings: string[] = [];
  for (const p of paths) {
    let mode: number;
    try {
      mode = statSync(p.path).mode & 0o777;
    } catch {
      continue;
    }
    if (mode & 0o077) warnings.push(`${p.what} ${p.path} is open to other users (mode 0${mode.toString(8)}); run chmod ${p.mode.toString(8)} on it`);
  }
  return warnings;
}
