/**
 * One page of a list, as OpenStack pages them (Nova's `limit`, `marker`, `offset`): the items
 * after `marker` (the id of an item of the same list), of those `offset` skipped, then at most
 * `limit` (0: no limit, as in Nova). Nothing set: the whole list, which is all workloadmgr
 * ever answered (workloadmgr-api open question 7), so a caller that sends none sees no change.
 */
export interface PageRequest {
  limit?: number;
  offset?: number;
  marker?: string;
}

/**
 * Where a page lies in a store's order (every paged list orders by `created_at`, then `id`):
 * strictly after the row `after`, skipping `offset` rows, at most `limit` rows.
 */
export interface PageWindow {
  after?: { created_at: number; id: string };
  limit?: number;
  offset?: number;
}
