import { Kysely, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Database } from './schema.js';
import { migrationNames, migrations } from './migrations/index.js';
import { StatementCache } from './sqlite-statement-cache.js';

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
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new StatementCache(sqlite) }) });
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
        // The schema this connection's unqualified names land in: the migration lock's key.
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
  // Processes starting together on one fresh PostgreSQL schema take turns: a session advisory
  // lock per schema, held on one connection across the whole migration.
  try {
    if (dialect === 'postgres' && migrationSchema) {
      const key = `lifeboat-migrate:${migrationSchema}`;
      await db.connection().execute(async (conn) => {
        await sql`SELECT pg_advisory_lock(hashtext(${key}))`.execute(conn);
        try {
          await migrate(db);
        } finally {
          await sql`SELECT pg_advisory_unlock(hashtext(${key}))`.execute(conn).catch(() => undefined);
        }
      });
    } else {
      await migrate(db);
    }
  } catch (e) {
    await db.destroy();
    throw new Error(`database migration failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return { db, dialect, close: () => db.destroy() };
}

/**
 * Applies pending migrations, each in its own transaction with its bookkeeping row. A small
 * migrator of our own: unqualified table names follow the connection's schema, and nothing
 * introspects other schemas of the database (which another process may be dropping).
 */
async function migrate(db: Db): Promise<void> {
  await sql`CREATE TABLE IF NOT EXISTS lifeboat_migrations (name text PRIMARY KEY, applied_at bigint NOT NULL)`.execute(db);
  const applied = new Set((await sql<{ name: string }>`SELECT name FROM lifeboat_migrations`.execute(db)).rows.map((r) => r.name));
  for (const name of migrationNames()) {
    if (applied.has(name)) continue;
    await db.transaction().execute(async (tx) => {
      await migrations[name]!.up(tx as unknown as Kysely<unknown>);
      await sql`INSERT INTO lifeboat_migrations (name, applied_at) VALUES (${name}, ${Date.now()})`.execute(tx);
    });
  }
}

/** Runs `fn` in a transaction; state change and job rows commit together or not at all. */
export function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}
