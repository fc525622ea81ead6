import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { inTransaction, type Db } from '../store/db.js';
import {
  deleteSetting,
  getSetting,
  isSecretSettingName,
  listSettings,
  readSmtpSettings,
  sealSecret,
  secretAad,
  settingsKeyFrom,
  upsertSetting,
  type SettingRow,
  type SmtpSettings,
} from '../store/setting.store.js';
import type { Clock } from '../lib/clock.js';
import type { RequestContext } from '../domain/context.js';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { toSecond } from '../lib/time.js';

export type { SettingRow, SmtpSettings } from '../store/setting.store.js';

/** What a secret setting's value looks like in every answer. */
export const MASKED_VALUE = '********';

export interface MailMessage {
  to: string[];
  subject: string;
  text: string;
}

/** Sends one message through the given SMTP settings (jobs/notify.ts `createSmtpMailer`). */
export interface Mailer {
  /** Whether this server may connect to host:port at all (LIFEBOAT_SMTP_ALLOW). */
  permits(host: string, port: number): boolean;
  send(smtp: SmtpSettings, msg: MailMessage): Promise<void>;
}

/**
 * Settings that decide where the server opens connections (the SSRF surface of settings):
 * changing them needs the policy action `workload:settings_smtp_update` (admin_api by
 * default) on top of the usual one, and the target must pass the mailer's allowlist.
 */
export const SMTP_TARGET_SETTINGS: readonly string[] = ['smtp_server_name', 'smtp_port'];

/** One setting to save, checked for shape by http/ (setting.commands.ts); names are unique. */
export interface SettingInput {
  name: string;
  /** As given (scalars as text); settingValue checks and canonicalizes the e-mail settings. */
  value: string;
  description: string;
  category: string;
  type: string;
  isPublic: boolean;
  isHidden: boolean;
  metadata: Record<string, unknown>;
}

/**
 * Whether settings set an SMTP target setting to a non-empty value. Clearing one is harmless
 * and needs no extra right.
 */
export function touchesSmtpTarget(settings: readonly SettingInput[]): boolean {
  return settings.some((i) => SMTP_TARGET_SETTINGS.includes(i.name) && i.value.trim() !== '');
}

export interface SettingServiceDeps {
  db: Db;
  clock: Clock;
  /** 32-byte key that seals secret settings (loadOrCreateSettingsKey). */
  secretKey: Buffer;
  mailer: Mailer;
}

/**
 * The settings key: the file's content (created with 32 random bytes, mode 0600, when missing)
 * hashed to an AES-256 key. Every process that sends mail (api and worker roles) must read the
 * same file, or sealed passwords cannot be opened (mail is then skipped and logged).
 */
export function loadOrCreateSettingsKey(path: string, opts: { create: boolean } = { create: true }): Buffer {
  let material: string;
  try {
    material = readFileSync(path, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    if (!opts.create) throw new Error(`settings key file ${path} (LIFEBOAT_SETTINGS_KEY_FILE) does not exist; every host needs a copy of the same file (e.g. 64 random hex characters, mode 0600)`);
    mkdirSync(dirname(path), { recursive: true });
    material = randomBytes(32).toString('hex');
    try {
      writeFileSync(path, `${material}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e2) {
      // Another process created it first: use theirs.
      if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw e2;
      material = readFileSync(path, 'utf8').trim();
    }
    chmodSync(path, 0o600);
  }
  if (material.length < 32) throw new Error(`settings key file ${path} holds fewer than 32 characters`);
  return settingsKeyFrom(material);
}

/** The wire form of a setting (§2.9) with secrets masked; views format the timestamps. */
export interface SettingView {
  row: SettingRow;
  value: string;
}

const EMAIL_RE = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+$/;
const HOST_RE = /^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$|^[0-9A-Fa-f:]+$/;

function intIn(v: string, field: string, min: number, max: number): string {
  if (!/^\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max) throw new ValidationError(`Invalid ${field}: expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return String(Number(v));
}

/** Checks and canonicalizes the values of the e-mail settings; other names are free text. */
export function settingValue(name: string, v: string): string {
  if (v === '' && name !== 'smtp_email_enable') return v;
  switch (name) {
    case 'smtp_port':
      return intIn(v, name, 1, 65535);
    case 'smtp_timeout':
      return intIn(v, name, 1, 10);
    case 'smtp_email_enable': {
      const s = v.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return '1';
      if (['0', 'false', 'no', 'off', ''].includes(s)) return '0';
      throw new ValidationError(`Invalid smtp_email_enable: expected "1" or "0", got ${JSON.stringify(v)}`);
    }
    case 'smtp_default_sender':
      if (!EMAIL_RE.test(v.trim())) throw new ValidationError(`Invalid smtp_default_sender: ${JSON.stringify(v)} is not an e-mail address`);
      return v.trim();
    case 'smtp_default_recipient': {
      const list = v.split(/[,;]/).map((s) => s.trim()).filter((s) => s !== '');
      if (list.length === 0 || list.some((a) => !EMAIL_RE.test(a))) throw new ValidationError(`Invalid smtp_default_recipient: expected e-mail addresses separated by commas`);
      return list.join(',');
    }
    case 'smtp_server_name':
      if (!HOST_RE.test(v.trim())) throw new ValidationError(`Invalid smtp_server_name: ${JSON.stringify(v)} is not a host name`);
      return v.trim();
    default:
      return v;
  }
}

/**
 * Project settings and the e-mail test. Secret values (names matching /password|secret/) are
 * sealed before storage and come back masked from every read; nothing here logs them.
 */
export class SettingService {
  constructor(private readonly deps: SettingServiceDeps) {}

  private now(): number {
    return toSecond(this.deps.clock.now());
  }

  private view(row: SettingRow): SettingView {
    return { row, value: row.secret && row.value !== '' ? MASKED_VALUE : row.value };
  }

  private rowOf(ctx: RequestContext, item: SettingInput, now: number): SettingRow {
    const { name } = item;
    const value = settingValue(name, item.value);
    const secret = isSecretSettingName(name) && value !== '';
    return {
      project_id: ctx.projectId,
      name,
      value: secret ? sealSecret(this.deps.secretKey, secretAad(ctx.projectId, name), value) : value,
      secret: secret ? 1 : 0,
      description: item.description,
      category: item.category,
      type: item.type,
      is_public: item.isPublic ? 1 : 0,
      is_hidden: item.isHidden ? 1 : 0,
      metadata: JSON.stringify(item.metadata),
      user_id: ctx.userId,
      created_at: now,
      updated_at: now,
    };
  }

  /** Creates or replaces each setting; the answer lists them in request order. */
  async save(ctx: RequestContext, items: readonly SettingInput[]): Promise<SettingView[]> {
    const now = this.now();
    const rows = items.map((i) => this.rowOf(ctx, i, now));
    await this.checkSmtpTarget(ctx, rows);
    const saved = await inTransaction(this.deps.db, async (tx) => {
      const out: SettingRow[] = [];
      for (const r of rows) out.push(await upsertSetting(tx, r));
      return out;
    });
    return saved.map((r) => this.view(r));
  }

  /**
   * When `rows` set the SMTP server or port, the resulting target (new values over the stored
   * ones; port 25 by default, as readSmtpSettings) must pass the mailer's allowlist.
   */
  private async checkSmtpTarget(ctx: RequestContext, rows: SettingRow[]): Promise<void> {
    const given = (name: string) => rows.find((r) => r.name === name)?.value;
    if (given('smtp_server_name') === undefined && given('smtp_port') === undefined) return;
    const stored = async (name: string) => (await getSetting(this.deps.db, ctx.projectId, name))?.value ?? '';
    const host = given('smtp_server_name') ?? (await stored('smtp_server_name'));
    const port = Number((given('smtp_port') ?? (await stored('smtp_port'))) || '25');
    if (host !== '' && !this.deps.mailer.permits(host, port)) {
      throw new ValidationError(`SMTP server ${host}:${port} is not allowed on this server (LIFEBOAT_SMTP_ALLOW).`);
    }
  }

  /** `{"name": value}` form of POST /workloads/settings: saves (possibly nothing), answers the map. */
  async saveMap(ctx: RequestContext, items: readonly SettingInput[]): Promise<Record<string, string>> {
    if (items.length > 0) await this.save(ctx, items);
    return this.map(ctx);
  }

  async list(ctx: RequestContext, opts: { hidden: boolean }): Promise<SettingView[]> {
    return (await listSettings(this.deps.db, ctx.projectId, opts)).map((r) => this.view(r));
  }

  /** Every stored setting of the project as name → value (secrets masked); all deletable. */
  async map(ctx: RequestContext): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const v of await this.list(ctx, { hidden: true })) out[v.row.name] = v.value;
    return out;
  }

  async get(ctx: RequestContext, name: string): Promise<SettingView> {
    const r = await getSetting(this.deps.db, ctx.projectId, name);
    if (!r) throw NotFoundError.of('Setting', name);
    return this.view(r);
  }

  async delete(ctx: RequestContext, name: string): Promise<void> {
    if (!(await deleteSetting(this.deps.db, ctx.projectId, name))) throw NotFoundError.of('Setting', name);
  }

  /**
   * Sends a test message to the project's recipients with its saved settings (whether or not
   * notifications are enabled). Errors name the cause, never the password nor anything the
   * remote server said: 400 for missing settings, a target outside the allowlist or a refusal
   * of credentials/addresses, 502 when the server cannot be reached or is no SMTP server.
   */
  async sendTestEmail(ctx: RequestContext): Promise<void> {
    const r = await readSmtpSettings(this.deps.db, ctx.projectId, this.deps.secretKey);
    if (!r.ok) {
      throw new ValidationError(
        r.reason === 'missing'
          ? 'Required e-mail settings not found. Save them first.'
          : 'The saved smtp_server_password cannot be read with this server\'s settings key. Save it again.',
      );
    }
    await this.deps.mailer.send(r.smtp, {
      to: r.smtp.recipients,
      subject: 'Lifeboat test e-mail',
      text: `This is a test message from Lifeboat for project ${ctx.projectName} (${ctx.projectId}).\nE-mail notifications are ${r.smtp.enabled ? 'enabled' : 'disabled'} (smtp_email_enable).\n`,
    });
  }
}
