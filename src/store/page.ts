import { sql, type SelectQueryBuilder } from 'kysely';
import type { PageWindow } from '../domain/page.js';
import type { DbOrTx } from './db.js';
import type { Database } from './schema.js';
import type { Scope } from './workload.store.js';

/** The tables whose lists are paged; each is ordered by `created_at`, then `id` ascending. */
export type PagedTable = 'workloads' | 'snapshots' | 'restores';

/**
 * Where the row `id` of `table` sits in its list order, or null when no live row of `scope` has
 * that id (another project's row is "not there", so a marker never reveals it exists).
 */
export async function pagePosition(db: DbOrTx, table: PagedTable, scope: Scope, id: string): Promise<{ created_at: number; id: string } | null> {
  let q = db.selectFrom(table).select(['created_at', 'id']).where('id', '=', id).where('deleted', '=', 0);
  if ('projectId' in scope) q = q.where('project_id', '=', scope.projectId);
  const r = await q.executeTakeFirst();
  return r ? { created_at: Number(r.created_at), id: r.id } : null;
}

/**
 * `q` (a select from one paged table) in list order, `created_at` `dir` then `id` ascending,
 * cut to the window: a keyset condition for `after` (so a page does not shift when rows are
 * added before it), then OFFSET and LIMIT. SQLite accepts OFFSET only after a LIMIT, hence the
 * largest safe integer as "no limit".
 */
export function inWindow<TB extends PagedTable, O>(q: SelectQueryBuilder<Database, TB, O>, w: PageWindow, dir: 'asc' | 'desc'): SelectQueryBuilder<Database, TB, O> {
  const createdAt = sql.ref('created_at');
  const id = sql.ref('id');
  if (w.after) {
    const beyond = dir === 'asc' ? sql.raw('>') : sql.raw('<');
    q = q.where(sql<boolean>`(${createdAt} ${beyond} ${w.after.created_at} or (${createdAt} = ${w.after.created_at} and ${id} > ${w.after.id}))`);
  }
  q = q.orderBy(createdAt, dir).orderBy(id, 'asc');
  if (w.limit !== undefined || w.offset !== undefined) q = q.limit(w.limit ?? Number.MAX_SAFE_INTEGER);
  if (w.offset !== undefined) q = q.offset(w.offset);
  return q;
}
