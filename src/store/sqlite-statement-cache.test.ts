import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import { openStore } from './db.js';
import { StatementCache } from './sqlite-statement-cache.js';

/** Counts `prepare` calls on every better-sqlite3 connection while `fn` runs. */
async function countingPrepares<T>(fn: (count: (sqlText?: string) => number) => Promise<T>): Promise<T> {
  const proto = SqliteDatabase.prototype as { prepare(this: SqliteDatabase.Database, s: string): SqliteDatabase.Statement };
  const orig = proto.prepare;
  const calls: string[] = [];
  proto.prepare = function (this: SqliteDatabase.Database, s: string) {
    calls.push(s);
    return orig.call(this, s);
  };
  try {
    return await fn((t) => (t === undefined ? calls.length : calls.filter((c) => c === t).length));
  } finally {
    proto.prepare = orig;
  }
}

describe('sqlite statement cache', () => {
  it('openStore: a repeated query is prepared once and its statement reused', async () => {
    await countingPrepares(async (count) => {
      const h = await openStore('sqlite::memory:');
      try {
        const q = () => h.db.selectFrom('workloads').selectAll().where('id', '=', 'w-missing').compile();
        const text = q().sql;
        for (let i = 0; i < 5; i++) assert.deepEqual((await h.db.executeQuery(q())).rows, []);
        assert.equal(count(text), 1, 'prepared once for five executions');
        const before = count();
        for (let i = 0; i < 5; i++) await h.db.selectFrom('workloads').select('id').where('id', '=', `w-${i}`).execute();
        assert.equal(count() - before, 1, 'different parameters, same SQL text: one prepare');
      } finally {
        await h.close();
      }
    });
  });

  it('hands out the same Statement object; writes and reads (stmt.reader) both work through it', async () => {
    const raw = new SqliteDatabase(':memory:');
    const cache = new StatementCache(raw);
    const db = new Kysely<{ t: { id: number; v: string } }>({ dialect: new SqliteDialect({ database: cache }) });
    try {
      await sql`CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL)`.execute(db);
      for (let i = 1; i <= 3; i++) {
        const r = await db.insertInto('t').values({ id: i, v: `v${i}` }).executeTakeFirst();
        assert.equal(r.insertId, BigInt(i));
      }
      const u = await db.updateTable('t').set({ v: 'x' }).where('id', '>', 1).executeTakeFirst();
      assert.equal(u.numUpdatedRows, 2n);
      assert.deepEqual(await db.selectFrom('t').selectAll().orderBy('id').execute(), [
        { id: 1, v: 'v1' },
        { id: 2, v: 'x' },
        { id: 3, v: 'x' },
      ]);
      const s = 'SELECT v FROM t WHERE id = ?';
      assert.equal(cache.prepare(s), cache.prepare(s));
    } finally {
      await db.destroy();
    }
  });

  it('is an LRU bounded to its size: the least recently used statement is dropped', () => {
    const raw = new SqliteDatabase(':memory:');
    const cache = new StatementCache(raw, 3);
    try {
      const a = cache.prepare('SELECT 1');
      const b = cache.prepare('SELECT 2');
      cache.prepare('SELECT 3');
      assert.equal(cache.prepare('SELECT 1'), a, 'a is now the most recently used');
      cache.prepare('SELECT 4'); // evicts b, the least recently used
      assert.equal(cache.size, 3);
      assert.equal(cache.prepare('SELECT 1'), a);
      const b2 = cache.prepare('SELECT 2'); // re-prepared, evicts 3
      assert.notEqual(b2, b);
      assert.equal(cache.size, 3);
      assert.deepEqual(b2.get(), { '2': 2 });
      for (let i = 0; i < 1000; i++) cache.prepare(`SELECT ${i + 10}`);
      assert.equal(cache.size, 3);
      assert.throws(() => new StatementCache(raw, 0), RangeError);
    } finally {
      cache.close();
    }
  });

  it('does not hand out a statement that is still iterating', async () => {
    const raw = new SqliteDatabase(':memory:');
    const cache = new StatementCache(raw);
    const db = new Kysely<{ t: { id: number } }>({ dialect: new SqliteDialect({ database: cache }) });
    let it: IterableIterator<unknown> | undefined;
    try {
      await sql`CREATE TABLE t (id integer PRIMARY KEY)`.execute(db);
      await db.insertInto('t').values([{ id: 1 }, { id: 2 }, { id: 3 }]).execute();
      const q = db.selectFrom('t').select('id').orderBy('id');
      const text = q.compile().sql;
      await q.execute(); // now cached
      const cached = cache.prepare(text);
      it = cached.iterate();
      assert.deepEqual(it.next().value, { id: 1 });
      assert.equal(cached.busy, true);
      // The same SQL during the iteration gets a fresh statement, which reads as it did without
      // the cache (the busy one would throw "This statement is busy executing a query").
      const fresh = cache.prepare(text);
      assert.notEqual(fresh, cached);
      assert.deepEqual(fresh.all(), [{ id: 1 }, { id: 2 }, { id: 3 }]);
      assert.notEqual(cache.prepare(text), fresh, 'the fresh statement is not cached either');
      it.return?.();
      assert.equal(cache.prepare(text), cached, 'reused once the iteration ended');
      // kysely's stream() works, and twice in a row (the statement is released in between)
      for (let round = 0; round < 2; round++) {
        const ids: number[] = [];
        for await (const r of q.stream()) ids.push(r.id);
        assert.deepEqual(ids, [1, 2, 3]);
      }
      // a stream abandoned midway releases the statement
      for await (const r of q.stream()) if (r.id === 1) break;
      assert.deepEqual(await q.execute(), [{ id: 1 }, { id: 2 }, { id: 3 }]);
    } finally {
      it?.return?.();
      await db.destroy();
    }
  });

  it('cached statements stay correct after schema changes on the same connection (ALTER, DROP + CREATE)', async () => {
    await countingPrepares(async (count) => {
      const h = await openStore('sqlite::memory:');
      try {
        await sql`CREATE TABLE ddl_t (id integer PRIMARY KEY)`.execute(h.db);
        await sql`INSERT INTO ddl_t (id) VALUES (1)`.execute(h.db);
        const sel = sql<Record<string, unknown>>`SELECT * FROM ddl_t WHERE id = ${1}`;
        const text = sel.compile(h.db).sql;
        assert.deepEqual((await sel.execute(h.db)).rows, [{ id: 1 }]);
        await sql`ALTER TABLE ddl_t ADD COLUMN name text NOT NULL DEFAULT 'n'`.execute(h.db);
        assert.deepEqual((await sel.execute(h.db)).rows, [{ id: 1, name: 'n' }], 'SELECT * sees the new column');
        await sql`DROP TABLE ddl_t`.execute(h.db);
        await assert.rejects(sel.execute(h.db), /no such table/);
        await sql`CREATE TABLE ddl_t (id integer PRIMARY KEY, other integer)`.execute(h.db);
        await sql`INSERT INTO ddl_t (id, other) VALUES (1, 7)`.execute(h.db);
        assert.deepEqual((await sel.execute(h.db)).rows, [{ id: 1, other: 7 }]);
        assert.equal(count(text), 1, 'the same cached statement served every execution');
      } finally {
        await h.close();
      }
    });
  });

  it('close() drops the cached statements and closes the connection', () => {
    const raw = new SqliteDatabase(':memory:');
    const cache = new StatementCache(raw);
    cache.prepare('SELECT 1');
    assert.equal(cache.size, 1);
    cache.close();
    assert.equal(cache.size, 0);
    assert.equal(raw.open, false);
  });
});
