import { usageError } from './exit-codes.js';

/**
 * Output of the client commands, shaped like the python clients' (prettytable, cliff -f):
 *   table: `| Property | Value |` for one object, one column per field for lists, left-aligned;
 *          nested values are printed as Python literals on ONE line, because tempest reads
 *          `| instances | [...] |` and eval()s it;
 *   json:  the raw values (show: an object; list: an array of objects keyed by column header);
 *   value: bare values, one per line (show) or space-separated per row (list).
 */
export type OutputFormat = 'table' | 'json' | 'value';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'value'];

export interface OutputOptions {
  format?: OutputFormat;
  /** `-c` selections: property names (show) or column headers (list). */
  columns?: string[];
}

/** A Python literal for any JSON value: `{'id': 'x', 'ok': True, 'n': None}`. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'None';
  if (typeof v === 'string') return pyStr(v);
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${pyStr(k)}: ${pyRepr(x)}`)
      .join(', ')}}`;
  }
  return pyStr(String(v));
}

/** Python's str repr: single quotes unless the text has a ' and no ", escapes as Python does. */
function pyStr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += `\\${q}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + q;
}

/** Text of one table cell: scalars plain (null → None, booleans True/False), the rest pyRepr. */
export function cellText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null) return pyRepr(v);
  return pyRepr(v);
}

/** A prettytable: left-aligned, one space padding, `+---+` rules, multi-line cells. */
export function renderTable(headers: string[], rows: string[][]): string {
  const split = (s: string) => s.split(/\r?\n/);
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.max(...split(r[i] ?? '').map((l) => l.length)))));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (cells: string[]) => {
    const parts = cells.map(split);
    const height = Math.max(1, ...parts.map((p) => p.length));
    const out: string[] = [];
    for (let k = 0; k < height; k++) out.push(`| ${widths.map((w, i) => (parts[i]?.[k] ?? '').padEnd(w)).join(' | ')} |`);
    return out.join('\n');
  };
  return [rule, line(headers), rule, ...rows.map(line), ...(rows.length > 0 ? [rule] : [])].join('\n') + '\n';
}

function selectColumns(available: string[], wanted: string[] | undefined): string[] {
  if (!wanted || wanted.length === 0) return available;
  return wanted.map((w) => {
    const hit = available.find((a) => a === w) ?? available.find((a) => a.toLowerCase() === w.toLowerCase());
    if (!hit) throw usageError(`No column named '${w}'; available: ${available.join(', ')}`);
    return hit;
  });
}

/** One object as `| Property | Value |` (keys sorted, `links` dropped), or json/value. */
export function formatShow(obj: Record<string, unknown>, opts: OutputOptions = {}): string {
  const keys = Object.keys(obj)
    .filter((k) => k !== 'links')
    .sort();
  const cols = selectColumns(keys, opts.columns);
  switch (opts.format ?? 'table') {
    case 'json':
      return JSON.stringify(Object.fromEntries(cols.map((k) => [k, obj[k] ?? null])), null, 4) + '\n';
    case 'value':
      return cols.map((k) => cellText(obj[k]) + '\n').join('');
    default:
      return renderTable(
        ['Property', 'Value'],
        cols.map((k) => [k, cellText(obj[k])]),
      );
  }
}

export interface Column<T> {
  header: string;
  get(item: T): unknown;
}

/** A list as a column table (prettytable prints only the header for an empty list), or json/value. */
export function formatList<T>(items: T[], columns: Column<T>[], opts: OutputOptions = {}): string {
  const names = selectColumns(
    columns.map((c) => c.header),
    opts.columns,
  );
  const cols = names.map((n) => columns.find((c) => c.header === n)!);
  switch (opts.format ?? 'table') {
    case 'json':
      return JSON.stringify(items.map((it) => Object.fromEntries(cols.map((c) => [c.header, c.get(it) ?? null]))), null, 4) + '\n';
    case 'value':
      return items.map((it) => cols.map((c) => cellText(c.get(it))).join(' ') + '\n').join('');
    default:
      return renderTable(
        names,
        items.map((it) => cols.map((c) => cellText(c.get(it)))),
      );
  }
}

/** 1536 → `1.5 KiB` (binary units, as restore sizes are disk sizes). */
export function humanBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** 75 → `1m15s`; a short ETA/elapsed text. */
export function humanDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
