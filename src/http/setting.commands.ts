import { ValidationError } from '../lib/errors.js';
import type { SettingInput } from '../services/setting.service.js';
import { optionalText, requireObject } from './fields.js';

const NAME_RE = /^[A-Za-z0-9_.:-]{1,255}$/;

function scalarText(v: unknown, field: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return optionalText(v, field, 4096) ?? '';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new ValidationError(`Invalid ${field}: expected a string`);
}

function flag(v: unknown, field: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number' && (v === 0 || v === 1)) return v === 1;
  if (typeof v === 'string' && ['true', '1', 'false', '0', ''].includes(v.trim().toLowerCase())) return ['true', '1'].includes(v.trim().toLowerCase());
  throw new ValidationError(`Invalid ${field}: expected true or false`);
}

function metadataObject(v: unknown): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  // Trust metadata arrives as a dict; a list of {key, value} records is accepted too.
  if (Array.isArray(v)) {
    const out: Record<string, unknown> = {};
    for (const r of v) {
      const o = requireObject(r, 'metadata item');
      if (typeof o.key !== 'string') throw new ValidationError('Invalid metadata: expected {"key": ..., "value": ...} records');
      out[o.key] = o.value;
    }
    return out;
  }
  const o = requireObject(v, 'metadata');
  if (JSON.stringify(o).length > 16384) throw new ValidationError('Invalid metadata: too large');
  return o;
}

function settingInput(item: unknown): SettingInput {
  const o = requireObject(item, 'settings item');
  const name = typeof o.name === 'string' ? o.name.trim() : '';
  if (!NAME_RE.test(name)) throw new ValidationError(`Invalid setting name: ${JSON.stringify(o.name)} (letters, digits, "_", ".", ":" and "-", at most 255)`);
  return {
    name,
    value: scalarText(o.value, name),
    description: scalarText(o.description, 'description'),
    category: scalarText(o.category, 'category'),
    type: scalarText(o.type, 'type'),
    isPublic: flag(o.is_public, 'is_public'),
    isHidden: flag(o.is_hidden, 'is_hidden'),
    metadata: metadataObject(o.metadata),
  };
}

function unique(items: SettingInput[]): SettingInput[] {
  const names = items.map((r) => r.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new ValidationError(`Invalid settings: ${dup} is listed twice`);
  return items;
}

/** `{"settings": ...}` → its value; anything else is the legacy 400. */
function settingsOf(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !('settings' in body)) throw new ValidationError('Incorrect request body format');
  return (body as { settings: unknown }).settings;
}

/** `{"settings": [{"name", "value", ...}, ...]}` of POST/PUT /settings → 1 to 100 settings, each name once. */
export function parseSettingsList(body: unknown): SettingInput[] {
  const items = settingsOf(body);
  if (!Array.isArray(items)) throw new ValidationError('Invalid settings: expected a list of {"name": ..., "value": ...}');
  if (items.length === 0 || items.length > 100) throw new ValidationError('Invalid settings: expected 1 to 100 items');
  return unique(items.map(settingInput));
}

/** `{"settings": {"<name>": value, ...}}` of POST /workloads/settings → the settings (possibly none). */
export function parseSettingsMap(body: unknown): SettingInput[] {
  const map = requireObject(settingsOf(body), 'settings');
  const entries = Object.entries(map);
  if (entries.length > 100) throw new ValidationError('Invalid settings: expected 1 to 100 items');
  return unique(entries.map(([name, value]) => settingInput({ name, value })));
}
