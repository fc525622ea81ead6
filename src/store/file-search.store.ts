import type { FileSearch, FileSearchStatus } from '../domain/file-search.js';
import { inTransaction, type Db, type DbOrTx } from './db.js';
import type { FileSearchesTable } from './schema.js';

function toSearch(r: FileSearchesTable): FileSearch {
  return { ...r, id: Number(r.id), progress_percent: Number(r.progress_percent), snapshot_ids: JSON.parse(r.snapshot_ids) as string[], status: r.status as FileSearchStatus, created_at: Number(r.created_at), updated_at: r.updated_at === null ? null : Number(r.updated_at), deleted_at: r.deleted_at === null ? null : Number(r.deleted_at) };
}

/**
 * Inserts a search with the next integer id (max + 1) and runs `then` in the same transaction
 * (the job enqueue); a concurrent insert that took the id makes the primary key fail, and the
 * insert is retried.
 */
export async function insertFileSearch(db: Db, s: Omit<FileSearch, 'id'>, then: (tx: DbOrTx, id: number) => Promise<void>): Promise<FileSearch> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await inTransaction(db, async (tx) => {
        const max = await tx.selectFrom('file_searches').select((eb) => eb.fn.max('id').as('m')).executeTakeFirst();
        const id = Number(max?.m ?? 0) + 1;
        await tx.insertInto('file_searches').values({ ...s, id, snapshot_ids: JSON.stringify(s.snapshot_ids) }).execute();
        await then(tx, id);
        return { ...s, id };
      });
    } catch (e) {
      if (attempt >= 4) throw e;
    }
  }
}

export async function getFileSearch(db: DbOrTx, projectId: string | null, id: number): Promise<FileSearch | null> {
  let q = db.selectFrom('file_searches').selectAll().where('id', '=', id).where('deleted_at', 'is', null);
  if (projectId !== null) q = q.where('project_id', '=', projectId);
  const r = await q.executeTakeFirst();
  return r ? toSearch(r) : null;
}

/** Searches of a VM still running (one at a time per VM). */
export async function runningSearchesOfVm(db: DbOrTx, projectId: string, vmId: string): Promise<number[]> {
  const rows = await db.selectFrom('file_searches').select('id').where('project_id', '=', projectId).where('vm_id', '=', vmId).where('status', 'in', ['executing', 'searching', 'cancelling']).execute();
  return rows.map((r) => Number(r.id));
}

/** Conditional state change; false when the search is not in one of `from`. */
export async function transitionFileSearch(db: DbOrTx, id: number, from: FileSearchStatus[], to: FileSearchStatus, now: number, extra: Partial<Pick<FileSearchesTable, 'error_msg' | 'json_resp' | 'progress_percent'>> = {}): Promise<boolean> {
  const r = await db.updateTable('file_searches').set({ status: to, updated_at: now, ...extra }).where('id', '=', id).where('status', 'in', from).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function setFileSearchProgress(db: DbOrTx, id: number, percent: number, now: number): Promise<void> {
  await db.updateTable('file_searches').set({ progress_percent: percent, updated_at: now }).where('id', '=', id).where('status', 'in', ['executing', 'searching']).execute();
}
