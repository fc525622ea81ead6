import { ValidationError } from '../lib/errors.js';
import { queryString } from './query.js';

/** The legacy default window of `workload-get-auditlog`: the last day. */
const DEFAULT_MINUTES = 1440;
/** 100 years: bounds the arithmetic, far beyond any retention. */
const MAX_MINUTES = 100 * 366 * 1440;
const DAY_MS = 86_400_000;
const RANGE_DATE = /^(\d{2})-(\d{2})-(\d{4})$/;

/** `MM-DD-YYYY` → UTC midnight of that day; 400 naming the parameter when it is not a real date. */
function rangeDate(v: string, name: string): number {
  const m = RANGE_DATE.exec(v);
  const [mo, d, y] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  const ms = Date.UTC(y, mo - 1, d);
  const back = new Date(ms);
  if (!m || back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) {
    throw new ValidationError(`Invalid ${name}: expected a date MM-DD-YYYY, got ${JSON.stringify(v.slice(0, 40))}`);
  }
  return ms;
}

/**
 * The time window of GET /workloads/audit/auditlog (workloadmgr-api §4.11), as `from <= at < to`:
 * - `time_in_minutes=N`: the last N minutes (N a positive integer);
 * - `start_range=MM-DD-YYYY[&end_range=MM-DD-YYYY]`: whole UTC days, both ends included
 *   (without end_range: up to now);
 * - nothing: the last 1440 minutes.
 * Mixing the two forms, end_range alone, or an end before the start is a 400.
 */
export function parseAuditRange(query: unknown, now: number): { from: number; to: number } {
  const q = (query ?? {}) as Record<string, unknown>;
  const minutes = queryString(q.time_in_minutes);
  const start = queryString(q.start_range);
  const end = queryString(q.end_range);
  if (minutes !== undefined && (start !== undefined || end !== undefined)) {
    throw new ValidationError('Invalid query: give either time_in_minutes or start_range/end_range, not both');
  }
  if (start === undefined && end !== undefined) throw new ValidationError('Invalid query: end_range needs start_range');
  if (start !== undefined) {
    const from = rangeDate(start, 'start_range');
    const to = end !== undefined ? rangeDate(end, 'end_range') + DAY_MS : now + 1;
    if (to <= from) throw new ValidationError('Invalid query: end_range is before start_range');
    return { from, to };
  }
  if (minutes !== undefined && (!/^\d{1,9}$/.test(minutes) || Number(minutes) < 1 || Number(minutes) > MAX_MINUTES)) {
    throw new ValidationError(`Invalid time_in_minutes: expected a whole number of minutes from 1 to ${MAX_MINUTES}`);
  }
  return { from: now - Number(minutes ?? DEFAULT_MINUTES) * 60_000, to: now + 1 };
}
