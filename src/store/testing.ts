import { randomBytes } from 'node:crypto';
import { openStore, type StoreHandle } from './db.js';

/**
 * Stores for tests: SQLite always, PostgreSQL when LIFEBOAT_TEST_PG is set (each test store in
 * its own schema, dropped afterwards). Use as:
 *   for (const kind of storeKinds()) describe(`x (${kind.name})`, { skip: kind.skip }, ...)
 */
export interface StoreKind {
  name: 'sqlite' | 'postgres';
  skip: string | false;
  open(): Promise<StoreHandle>;
}

export function storeKinds(): StoreKind[] {
  const pgUrl = process.env.LIFEBOAT_TEST_PG;
  return [
    { name: 'sqlite', skip: false, open: () => openStore('sqlite::memory:') },
    {
      name: 'postgres',
      skip: pgUrl ? false : 'LIFEBOAT_TEST_PG is not set: PostgreSQL store tests skipped',
      open: () => openTestPg(pgUrl ?? ''),
    },
  ];
}

export async function openTestPg(url: string): Promise<StoreHandle> {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const h = await openStore(url, { schema });
  return {
    ...h,
    async close() {
      const { sql } = await import('kysely');
      await sql.raw(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).execute(h.db);
      await h.close();
    },
  };
}
