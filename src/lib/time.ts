/**
 * Time formats of the workloadmgr wire contract. Stored timestamps are UTC epoch milliseconds
 * truncated to whole seconds (the legacy DB had second precision, so every GET prints
 * `.000000`).
 */

/** `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC, no zone suffix; null stays null. */
export function formatWireTime(ms: number | null | undefined): string | null {
  if (ms === null || ms === undefined) return null;
  const d = new Date(ms);
  const iso = d.toISOString(); // 2020-11-04T13:58:37.694Z
  return `${iso.slice(0, 19)}.${String(d.getUTCMilliseconds() * 1000).padStart(6, '0')}`;
}

/** Whole-second epoch ms, the precision stored in the DB. */
export function toSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

const QUERY_DATE_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})$/;

/**
 * Parses a query-string date `YYYY-MM-DDTHH:MM:SS` (UTC). Returns null when the text is not
 * exactly that format or names an impossible date (2024-02-30).
 */
export function parseQueryDate(s: string): number | null {
  const m = QUERY_DATE_RE.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const ms = Date.UTC(y, mo - 1, d, h, mi, se);
  const back = new Date(ms);
  if (
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    back.getUTCHours() !== h ||
    back.getUTCMinutes() !== mi ||
    back.getUTCSeconds() !== se
  ) {
    return null;
  }
  return ms;
}

/** ISO-8601 with microseconds and `Z`, as Keystone writes expires_at / issued_at. */
export function formatKeystoneTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
