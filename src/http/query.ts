import { ValidationError } from '../lib/errors.js';

/** Query-string helpers: OpenStack-style booleans (not the legacy "any non-empty string"). */
export function queryBool(v: unknown, name: string): boolean {
  if (v === undefined) return false;
  const s = String(Array.isArray(v) ? v[v.length - 1] : v).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  throw new ValidationError(`Invalid value for ${name}: expected true or false`);
}

export function queryString(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  const s = Array.isArray(v) ? v[v.length - 1] : v;
  return typeof s === 'string' ? s : String(s);
}

/** `{"<key>": {...}}` → the inner object, else 400 "Incorrect request body format". */
export function unwrap(body: unknown, key: string, optional = false): Record<string, unknown> {
  if (body === undefined && optional) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationError('Incorrect request body format');
  const inner = (body as Record<string, unknown>)[key];
  if (inner === undefined && optional) return {};
  if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) throw new ValidationError('Incorrect request body format');
  return inner as Record<string, unknown>;
}
