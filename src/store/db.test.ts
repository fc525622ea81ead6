import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { openStore, inTransaction, type StoreHandle } from './db.js';
import { storeKinds } from './testing.js';
import { enqueueJob, getJob } from './job.store.js';
import { migrationNames } from './migrations/index.js';

const pgUrl = process.env.LIFEBOAT_TEST_PG;
const pgSkip = pgUrl ? false : 'LIFEBOAT_TEST_PG is not set: PostgreSQL store tests skipped';
const TABLES = ['jobs', 'snapshot_metadata', 'snapshots', 'tasks', 'tokens', 'workload_instances', 'workloads'];

function schemaName(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

async function withAdmin<T>(fn: (h: { q(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }> }) => Promise<T>): Promise<T> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    return await fn({ q: (text, params) => c.query(text, params as unknown[]) });
  } finally {
    await c.end();
  }
}

async function allMigrations(): Promise<string[]> {
  return migrationNames();
}

async function appliedMigrations(h: StoreHandle): Promise<string[]> {
  const r = await sql<{ name: string }>`SELECT name FROM lifeboat_migrations ORDER BY name`.execute(h.db);
  return r.rows.map((x) => x.name);
}

/**
 * The tables of this store's own schema only. Kysely's introspector reads every schema of the
 * database, which races with other test files dropping theirs (`schema "t_…" does not exist`).
 */
async function ownTables(h: StoreHandle): Promise<string[]> {
  const r =
    h.dialect === 'sqlite'
      ? await sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`.execute(h.db)
      : await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()`.execute(h.db);
  return r.rows.map((x) => x.name).sort();
}

for (const kind of storeKinds()) {
  describe(`db (${kind.name})`, { skip: kind.skip }, () => {
    it('applies every migration: all core tables exist and are recorded', async () => {
      const h = await kind.open();
      try {
        const tables = await ownTables(h);
        for (const t of TABLES) assert.ok(tables.includes(t), `table ${t} missing (have ${tables.join(',')})`);
        const applied = await appliedMigrations(h);
        assert.deepEqual(applied, await allMigrations());
        assert.ok(applied.includes('0001-core'));
        assert.equal(h.dialect, kind.name);
      } finally {
        await h.close();
      }
    });

    it('inTransaction commits on success and rolls back on a throw', async () => {
      const h = await kind.open();
      try {
        const kept = await inTransaction(h.db, (tx) => enqueueJob(tx, { kind: 'k', payload: {}, resourceId: 'r', now: 1 }));
        let lost = '';
        await assert.rejects(
          inTransaction(h.db, async (tx) => {
            lost = await enqueueJob(tx, { kind: 'k', payload: {}, resourceId: 'r', now: 1 });
            throw new Error('boom');
          }),
          /boom/,
        );
        assert.ok(await getJob(h.db, kept));
        assert.equal(await getJob(h.db, lost), null);
      } finally {
        await h.close();
      }
    });
  });
}

describe('db (sqlite file)', () => {
  it('reopening an existing file is idempotent and keeps the data', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-db-'));
    try {
      const url = `sqlite:${join(dir, 'nested', 'lifeboat.db')}`;
      const a = await openStore(url);
      const id = await enqueueJob(a.db, { kind: 'k', payload: { n: 1 }, resourceId: 'r', now: 5 });
      await a.close();
      const b = await openStore(url);
      try {
        assert.deepEqual((await getJob(b.db, id))?.payload, { n: 1 });
        assert.deepEqual(await appliedMigrations(b), await allMigrations());
      } finally {
        await b.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects an unsupported url with a message naming the accepted forms', async () => {
    await assert.rejects(openStore('mysql://localhost/x'), /unsupported database url "mysql:\/\/localhost\/x": expected sqlite:<path> or postgres:\/\//);
    await assert.rejects(openStore('/var/lib/lifeboat.db'), /unsupported database url/);
  });
});

describe('db (postgres only)', { skip: pgSkip }, () => {
  const url = pgUrl ?? '';

  it('reopening the same schema is idempotent and keeps the data', async () => {
    const schema = schemaName();
    try {
      const a = await openStore(url, { schema });
      const id = await enqueueJob(a.db, { kind: 'k', payload: {}, resourceId: 'r', now: 5 });
      await a.close();
      const b = await openStore(url, { schema });
      try {
        assert.ok(await getJob(b.db, id));
        assert.deepEqual(await appliedMigrations(b), await allMigrations());
      } finally {
        await b.close();
      }
    } finally {
      await withAdmin((c) => c.q(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
    }
  });

  it('returns bigint columns and counts as numbers', async () => {
    const h = await kind('postgres').open();
    try {
      const big = 9_007_199_254_740_000; // above 2^53 - 1000: still exact, far above int4
      const id = await enqueueJob(h.db, { kind: 'k', payload: {}, resourceId: 'r', now: big });
      const row = await h.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(typeof row.created_at, 'number');
      assert.equal(row.created_at, big);
      assert.equal(row.lease_expires_at, null);
      const c = await h.db.selectFrom('jobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(c.n, 1);
    } finally {
      await h.close();
    }
  });

  it('several processes opening one fresh schema at once all succeed (no create/migrate race)', async () => {
    for (let round = 0; round < 4; round++) {
      const schema = schemaName();
      try {
        const opened = await Promise.allSettled([0, 1, 2, 3].map(() => openStore(url, { schema })));
        const errors = opened.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
        for (const r of opened) if (r.status === 'fulfilled') await r.value.close();
        assert.deepEqual(errors, []);
      } finally {
        await withAdmin((c) => c.q(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
      }
    }
  });

  it('without a schema option, migrates the connection schema even when another schema has a migrated store', async () => {
    const other = schemaName();
    const target = schemaName();
    try {
      const o = await openStore(url, { schema: other });
      await o.close();
      await withAdmin((c) => c.q(`CREATE SCHEMA ${target}`));
      const u = new URL(url);
      u.searchParams.set('options', `-c search_path=${target}`);
      const h = await openStore(u.toString());
      try {
        const r = await sql<{ s: string }>`SELECT current_schema() AS s`.execute(h.db);
        assert.equal(r.rows[0]?.s, target);
        assert.deepEqual(await appliedMigrations(h), await allMigrations());
        const tables = await withAdmin((c) => c.q('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [target]));
        assert.ok(tables.rows.some((t) => t.table_name === 'jobs'));
      } finally {
        await h.close();
      }
    } finally {
      await withAdmin(async (c) => {
        await c.q(`DROP SCHEMA IF EXISTS ${other} CASCADE`);
        await c.q(`DROP SCHEMA IF EXISTS ${target} CASCADE`);
      });
    }
  });

  it('opens while other schemas of the database are being dropped (parallel test runs, tenants)', async () => {
    const pg = (await import('pg')).default;
    const churner = new pg.Client({ connectionString: url });
    await churner.connect();
    let stop = false;
    const churn = (async () => {
      while (!stop) {
        const s = schemaName();
        await churner.query(`CREATE SCHEMA ${s}`);
        await churner.query(`CREATE TABLE ${s}.x (a integer)`);
        await churner.query(`DROP SCHEMA ${s} CASCADE`);
      }
    })();
    const mine: string[] = [];
    try {
      for (let round = 0; round < 4; round++) {
        const schema = schemaName();
        mine.push(schema);
        const opened = await Promise.allSettled([openStore(url, { schema }), openStore(url, { schema })]);
        const errors = opened.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
        for (const r of opened) if (r.status === 'fulfilled') await r.value.close();
        assert.deepEqual(errors, []);
      }
    } finally {
      stop = true;
      await churn;
      await churner.end();
      await withAdmin(async (c) => {
        for (const s of mine) await c.q(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
      });
    }
  });

  it('rejects a schema name that is not a plain identifier', async () => {
    await assert.rejects(openStore(url, { schema: 'x; DROP TABLE jobs' }), /invalid schema name/);
  });
});

function kind(name: 'sqlite' | 'postgres') {
  const k = storeKinds().find((x) => x.name === name);
  if (!k) throw new Error(name);
  return k;
}
