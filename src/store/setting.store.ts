import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { DbOrTx } from './db.js';
import type { SettingsTable } from './schema.js';

/**
 * Per-project settings (workloadmgr-api §2.9): e-mail configuration, the notification switch
 * and anything else a client stores. Secret values (names matching /password|secret/) are
 * sealed with AES-256-GCM under the service's settings key before they reach the database,
 * and only `openSecret` (the mail sender) ever turns them back into text.
 */
export type SettingRow = SettingsTable;

export function isSecretSettingName(name: string): boolean {
  return /password|secret/i.test(name);
}

// ---- sealing -----------------------------------------------------------------------------

const SEAL_PREFIX_V1 = 'enc:v1:';
const SEAL_PREFIX = 'enc:v2:';

/**
 * A key's public id: 16 hex digits of a hash of the key, stored beside every value it seals
 * and in the node registry, so hosts with different keys are told apart without showing one.
 */
export function settingsKeyId(key: Buffer): string {
  return createHash('sha256').update('lifeboat-settings-key-id\0').update(key).digest('hex').slice(0, 16);
}

/** The key id a sealed value names (null: a v1 value, sealed before key ids, or not sealed). */
export function sealedKeyId(sealed: string): string | null {
  const m = /^enc:v2:([0-9a-f]{16}):/.exec(sealed);
  return m ? m[1]! : null;
}

/** A 32-byte AES key from any key material (a key file's text, an env value). */
export function settingsKeyFrom(material: string | Buffer): Buffer {
  return createHash('sha256').update('lifeboat-settings-v1\0').update(material).digest();
}

/** `enc:v2:<key id>:<base64(iv12 | tag16 | ciphertext)>`; the project and name are authenticated too. */
export function sealSecret(key: Buffer, aad: string, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
  return `${SEAL_PREFIX}${settingsKeyId(key)}:${Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64')}`;
}

/** The plaintext, or null when the value was sealed under another key or was tampered with. */
export function openSecret(key: Buffer, aad: string, sealed: string): string | null {
  let body: string;
  if (sealed.startsWith(SEAL_PREFIX_V1)) body = sealed.slice(SEAL_PREFIX_V1.length);
  else if (sealedKeyId(sealed) === settingsKeyId(key)) body = sealed.slice(SEAL_PREFIX.length + 17);
  else return null; // another key sealed it (or not sealed at all)
  const raw = Buffer.from(body, 'base64');
  if (raw.length < 28) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  } catch {
    return null;
  }
}

export function secretAad(projectId: string, name: string): string {
  return `${projectId}\0${name}`;
}

// ---- rows --------------------------------------------------------------------------------

export async function getSetting(db: DbOrTx, projectId: string, name: string): Promise<SettingRow | null> {
  return (await db.selectFrom('settings').selectAll().where('project_id', '=', projectId).where('name', '=', name).executeTakeFirst()) ?? null;
}

export async function listSettings(db: DbOrTx, projectId: string, opts: { hidden: boolean }): Promise<SettingRow[]> {
  let q = db.selectFrom('settings').selectAll().where('project_id', '=', projectId);
  if (!opts.hidden) q = q.where('is_hidden', '=', 0);
  return q.orderBy('name').execute();
}

/** Inserts or replaces the setting (keeps created_at of an existing one). */
export async function upsertSetting(db: DbOrTx, row: SettingRow): Promise<SettingRow> {
  const existing = await getSetting(db, row.project_id, row.name);
  if (existing) {
    const { project_id: _p, name: _n, created_at: _c, ...rest } = row;
    await db.updateTable('settings').set(rest).where('project_id', '=', row.project_id).where('name', '=', row.name).execute();
    return { ...row, created_at: existing.created_at };
  }
  await db.insertInto('settings').values({ ...row, updated_at: null }).execute();
  return { ...row, updated_at: null };
}

/** The distinct key ids the stored secret settings were sealed with (v1 values name none). */
export async function sealedSecretKeyIds(db: DbOrTx): Promise<string[]> {
  const rows = await db.selectFrom('settings').select('value').where('secret', '=', 1).where('value', 'like', `${SEAL_PREFIX}%`).execute();
  return [...new Set(rows.map((r) => sealedKeyId(r.value)).filter((x): x is string => x !== null))];
}

export async function deleteSetting(db: DbOrTx, projectId: string, name: string): Promise<boolean> {
  const r = await db.deleteFrom('settings').where('project_id', '=', projectId).where('name', '=', name).executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

// ---- e-mail ------------------------------------------------------------------------------

export const SMTP_KEYS = ['smtp_server_name', 'smtp_port', 'smtp_server_username', 'smtp_server_password', 'smtp_default_sender', 'smtp_default_recipient', 'smtp_timeout', 'smtp_email_enable'] as const;

/** What a mail sender needs; `password` is plaintext and must never be logged or returned. */
export interface SmtpSettings {
  host: string;
  port: number;
  username: string;
  password: string;
  sender: string;
  recipients: string[];
  timeoutSeconds: number;
  enabled: boolean;
}

export type SmtpReadResult = { ok: true; smtp: SmtpSettings } | { ok: false; reason: 'missing' | 'undecryptable' };

/**
 * The project's SMTP settings, password opened. `missing` when the server name, sender or
 * recipient is not set; `undecryptable` when the stored password was sealed under another key.
 */
export async function readSmtpSettings(db: DbOrTx, projectId: string, key: Buffer): Promise<SmtpReadResult> {
  const rows = await db.selectFrom('settings').selectAll().where('project_id', '=', projectId).where('name', 'in', [...SMTP_KEYS]).execute();
  const v = new Map(rows.map((r) => [r.name, r]));
  const text = (n: string) => (v.get(n)?.secret ? '' : (v.get(n)?.value ?? '').trim());
  const host = text('smtp_server_name');
  const sender = text('smtp_default_sender');
  const recipients = text('smtp_default_recipient')
    .split(/[,;]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (host === '' || sender === '' || recipients.length === 0) return { ok: false, reason: 'missing' };
  let password = '';
  const pw = v.get('smtp_server_password');
  if (pw && pw.value !== '') {
    if (pw.secret) {
      const open = openSecret(key, secretAad(projectId, pw.name), pw.value);
      if (open === null) return { ok: false, reason: 'undecryptable' };
      password = open;
    } else {
      password = pw.value;
    }
  }
  const port = Number(text('smtp_port') || '25');
  const timeout = Number(text('smtp_timeout') || '10');
  return {
    ok: true,
    smtp: {
      host,
      port: Number.isInteger(port) && port > 0 && port < 65536 ? port : 25,
      username: text('smtp_server_username'),
      password,
      sender,
      recipients,
      timeoutSeconds: Number.isFinite(timeout) && timeout > 0 ? Math.min(timeout, 60) : 10,
      enabled: ['1', 'true'].includes(text('smtp_email_enable').toLowerCase()),
    },
  };
}
