import type { FastifyRequest } from 'fastify';
import type { PageRequest } from '../domain/page.js';
import { ValidationError } from '../lib/errors.js';
import { queryString } from './query.js';

/**
 * `limit`, `offset` and `marker` of a list request, checked as Nova checks them and refused in
 * its words (reliability.md F22): "limit param must be an integer", "... must be positive".
 */
export function parsePage(q: Record<string, unknown>): PageRequest {
  const page: PageRequest = {};
  const limit = countParam(q.limit, 'limit');
  if (limit !== undefined) page.limit = limit;
  const offset = countParam(q.offset, 'offset');
  if (offset !== undefined) page.offset = offset;
  const marker = queryString(q.marker);
  if (marker !== undefined) page.marker = marker.trim();
  return page;
}

/** A whole number ≥ 0 (Python's `int()` forms: surrounding blanks and a sign allowed). */
function countParam(v: unknown, name: string): number | undefined {
  const s = queryString(v);
  if (s === undefined) return undefined;
  const n = /^\s*[+-]?\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw new ValidationError(`${name} param must be an integer`);
  if (n < 0) throw new ValidationError(`${name} param must be positive`);
  return n === 0 ? 0 : n;
}

/**
 * The `<key>_links` sibling of a list (workloadmgr-api §2.1, Nova's `_get_collection_links`):
 * when a limit was asked and the page holds that many items, a `next` link repeating the
 * request with `marker` set to the last item's id (and no `offset`: the marker already places
 * the next page). Otherwise nothing, so a list asked without `limit` is exactly as before.
 */
export function nextPageLinks(publicUrl: string, req: FastifyRequest, key: string, page: PageRequest, ids: string[]): Record<string, unknown> {
  const last = ids[ids.length - 1];
  if (!page.limit || ids.length < page.limit || last === undefined) return {};
  const url = new URL(req.url, 'http://lifeboat.invalid');
  url.searchParams.delete('offset');
  url.searchParams.set('marker', last);
  return { [`${key}_links`]: [{ rel: 'next', href: `${publicUrl}${url.pathname}${url.search}` }] };
}
