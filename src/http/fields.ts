import { ValidationError } from '../lib/errors.js';
import { isUuid } from '../lib/ids.js';

/** Shared checks of request-body fields for the command parsers; every failure is a 400 naming the field. */

const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

export function optionalText(v: unknown, field: string, max = 255): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ValidationError(`Invalid ${field}: expected a string`);
  if (v.length > max) throw new ValidationError(`Invalid ${field}: longer than ${max} characters`);
  if (CONTROL.test(v)) throw new ValidationError(`Invalid ${field}: contains control characters`);
  return v;
}

/** Text with a default for missing or blank values, as workloadmgr did. */
export function textOrDefault(v: unknown, field: string, dflt: string, max = 255): string {
  const s = optionalText(v, field, max);
  return s === undefined || s.trim() === '' ? dflt : s;
}

export function requireObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(`Invalid ${what}: expected an object`);
  return v as Record<string, unknown>;
}

export function stringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = requireObject(v, field);
  const out: Record<string, string> = {};
  const keys = Object.keys(o);
  if (keys.length > 100) throw new ValidationError(`Invalid ${field}: more than 100 keys`);
  for (const k of keys) {
    optionalText(k, `${field} key`);
    const val = o[k];
    if (typeof val === 'string') out[k] = optionalText(val, `${field}.${k}`, 4096) ?? '';
    else if (typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
    else throw new ValidationError(`Invalid ${field}.${k}: expected a string`);
  }
  return out;
}

export function uuidField(v: unknown, field: string): string {
  if (!isUuid(v)) throw new ValidationError(`Invalid ${field}: expected a UUID, got ${JSON.stringify(v)}`);
  return v.toLowerCase();
}

/** `[{"instance-id": "<uuid>"}, ...]` → unique ids in order. */
export function instanceIdList(v: unknown, field = 'instances'): string[] {
  if (!Array.isArray(v)) throw new ValidationError(`Invalid ${field}: expected a list of {"instance-id": "<uuid>"}`);
  if (v.length > 256) throw new ValidationError(`Invalid ${field}: more than 256 instances`);
  const ids: string[] = [];
  for (const item of v) {
    const o = requireObject(item, `${field} item`);
    const id = uuidField(o['instance-id'], 'instance-id');
    if (ids.includes(id)) throw new ValidationError(`Invalid ${field}: instance ${id} is listed twice`);
    ids.push(id);
  }
  return ids;
}
