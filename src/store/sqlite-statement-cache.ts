import type { SqliteDatabase as KyselySqliteDatabase } from 'kysely';
import type BetterSqlite3 from 'better-sqlite3';

/** Statements kept per connection; the service issues ~100 distinct SQL texts in all. */
export const STATEMENT_CACHE_SIZE = 200;

/**
 * The better-sqlite3 connection as kysely's SqliteDialect sees it, with `prepare` answered from
 * a bounded LRU of prepared statements keyed by the SQL text. Kysely's SQLite driver calls
 * `db.prepare(sql)` for every query; a CPU profile of `GET /v1/{tenant}/snapshots/{id}` (three
 * queries) showed that preparing was ~8 % of the service's CPU, so repeated queries now reuse
 * their statement.
 *
 * Contract:
 * - Same SQL text, same statement object, as long as it is in the cache. Parameters are bound
 *   per call (`all(params)`, `run(params)`), and `stmt.reader` still picks `all()` or `run()`.
 * - A cached statement that is busy (an `iterate()` still open, i.e. kysely's `stream()`) is
 *   not handed out again: that caller gets a fresh, uncached statement, exactly as before.
 * - Schema changes on this connection (migrations run through it) need no invalidation:
 *   SQLite re-prepares a statement whose schema changed on its next step (tested).
 * - `close()` drops every cached statement, then closes the connection (kysely's destroy).
 */
export class StatementCache implements KyselySqliteDatabase {
  readonly #db: BetterSqlite3.Database;
  readonly #max: number;
  /** Map iteration order is insertion order: first key = least recently used. */
  readonly #stmts = new Map<string, BetterSqlite3.Statement>();

  constructor(db: BetterSqlite3.Database, max = STATEMENT_CACHE_SIZE) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`statement cache size must be a positive integer, got ${max}`);
    this.#db = db;
    this.#max = max;
  }

  /** Statements currently cached. */
  get size(): number {
    return this.#stmts.size;
  }

  prepare(sql: string): BetterSqlite3.Statement {
    const hit = this.#stmts.get(sql);
    if (hit !== undefined) {
      if (hit.busy) return this.#db.prepare(sql);
      this.#stmts.delete(sql);
      this.#stmts.set(sql, hit);
      return hit;
    }
    const stmt = this.#db.prepare(sql);
    this.#stmts.set(sql, stmt);
    if (this.#stmts.size > this.#max) {
      const oldest = this.#stmts.keys().next().value;
      if (oldest !== undefined) this.#stmts.delete(oldest);
    }
    return stmt;
  }

  close(): void {
    this.#stmts.clear();
    this.#db.close();
  }
}
