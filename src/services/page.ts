import type { PageRequest, PageWindow } from '../domain/page.js';
import { ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';
import type { DbOrTx } from '../store/db.js';
import { pagePosition, type PagedTable } from '../store/page.js';
import type { Scope } from '../store/workload.store.js';

/**
 * The store window of a page request on `table`, seen with `scope` (the list's own). A marker
 * that is no item of that scope is a 400 "marker [<id>] not found", as in Nova, whether it
 * never existed, was deleted or belongs to another project; it is echoed only when it is a UUID.
 */
export async function pageWindow(db: DbOrTx, table: PagedTable, scope: Scope, page: PageRequest = {}): Promise<PageWindow> {
  const w: PageWindow = {};
  if (page.limit) w.limit = page.limit;
  if (page.offset) w.offset = page.offset;
  if (page.marker !== undefined) {
    const uuid = isUuid(page.marker);
    const at = uuid ? await pagePosition(db, table, scope, page.marker.toLowerCase()) : null;
    if (!at) throw new ValidationError(uuid ? `marker [${page.marker}] not found` : 'marker not found');
    w.after = at;
  }
  return w;
}
