import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Database } from './schema.js';
import { migrationProvider } from './migrations/index.js';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
export type DbOrTx = Db | Tx;
export type DialectName = 'sqlite' | 'postgres';

// PostgreSQL returns int8 as strings; every bigint we store is epoch ms or a byte count,
// well inside Number.MAX_SAFE_INTEGER.
pg.types.setTypeParser(20, (v) => Number(v));

export interface StoreHandle {
  db: Db;
  dialect: DialectName;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** PostgreSQL only: schema to use (created if missing); tests isolate themselves this way. */
  schema?: string;
}

/**
 * Opens the store named by a LIFEBOAT_DB url (`sqlite:<path>`, `sqlite::memory:` or
 * `postgres://...`) and applies pending migrations. On PostgreSQL the migrator takes an
 * advisory lock, so several processes starting at once are safe.
 */
export async function openStore(url: string, opts: OpenOptions = {}): Promise<StoreHandle> {
  let db: Db;
  let dialect: DialectName;
  let migrationSchema: string | undefined;
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const sqlite = new SqliteDatabase(path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    dialect = 'sqlite';
  } else if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    if (opts.schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(opts.schema)) throw new Error(`invalid schema name ${opts.schema}`);
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      ...(opts.schema ? { options: `-c search_path=${opts.schema}` } : {}),
    });
    const c = await pool.connect().catch(async (e: unknown) => {
      await pool.end();
      throw e;
    });
    try {
      if (opts.schema) {
        // CREATE SCHEMA IF NOT EXISTS is not atomic: two processes starting at once can both
        // pass the check and one fails on pg_namespace's unique index. The schema exists then.
        try {
          await c.query(`CREATE SCHEMA IF NOT EXISTS ${opts.schema}`);
        } catch (e) {
          const r = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [opts.schema]);
          if (r.rowCount !== 1) throw e;
        }
        migrationSchema = opts.schema;
      } else {
        // Kysely's migrator, given no schema, takes a kysely_migration table in ANY schema of
        // the database for its own; pin it to the schema this connection actually uses.
        const r = await c.query<{ s: string | null }>('SELECT current_schema() AS s');
        const s = r.rows[0]?.s;
        if (!s) throw new Error('database has no current schema (check search_path)');
        migrationSchema = s;
      }
    } catch (e) {
      c.release();
      await pool.end();
      throw e;
    }
    c.release();
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    dialect = 'postgres';
  } else {
    throw new Error(`unsupported database url ${JSON.stringify(url)}: expected sqlite:<path> or postgres://...`);
  }
  const migrator = new Migrator({ db, provider: migrationProvider, ...(migrationSchema ? { migrationTableSchema: migrationSchema } : {}) });
  // Kysely creates its migration tables before taking its own lock, so processes starting
  // together on a fresh schema could interleave there. A session advisory lock per schema,
  // held on one connection across the whole migration, makes them take turns.
  try {
    if (dialect === 'postgres' && migrationSchema) {
      const key = `lifeboat-migrate:${migrationSchema}`;
      await db.connection().execute(async (conn) => {
        await sql`SELECT pg_advisory_lock(hashtext(${key}))`.execute(conn);
        try {
          await migrate(dialect, migrator);
        } finally {
          await sql`SELECT pg_advisory_unlock(hashtext(${key}))`.execute(conn).catch(() => undefined);
        }
      });
    } else {
      await migrate(dialect, migrator);
    }
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return { db, dialect, close: () => db.destroy() };
}

async function migrate(dialect: DialectName, migrator: Migrator): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const { error } = await migrator.migrateToLatest();
    if (!error) break;
    // Kysely's PostgreSQL introspection looks up every schema of the database by name, so a
    // schema that another process drops meanwhile fails it with 3F000. Migrations run in one
    // transaction there, so trying again is safe.
    if (dialect === 'postgres' && (error as { code?: unknown }).code === '3F000' && attempt < 5) {
      await new Promise((r) => setTimeout(r, 10 * attempt));
      continue;
    }
    throw new Error(`database migration failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** Runs `fn` in a transaction; state change and job rows commit together or not at all. */
export function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}
