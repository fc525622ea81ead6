/**
 * Validation of the admin forms, matching the API's checks (src/services/setting.service.ts
 * settingValue for the e-mail settings; whole numbers ≥ 0 for quotas). Pure, without imports,
 * so the node tests compare it with the API's own functions.
 */

export const EMAIL_FIELDS = ['smtp_server_name', 'smtp_port', 'smtp_server_username', 'smtp_server_password', 'smtp_default_sender', 'smtp_default_recipient', 'smtp_timeout', 'smtp_email_enable'] as const;
export type EmailField = (typeof EMAIL_FIELDS)[number];
export type EmailForm = Record<EmailField, string>;

const EMAIL_RE = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+$/;
const HOST_RE = /^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$|^[0-9A-Fa-f:]+$/;

function intIn(v: string, min: number, max: number): string | null {
  return /^\d+$/.test(v.trim()) && Number(v) >= min && Number(v) <= max ? null : `Enter a whole number from ${min} to ${max}.`;
}

/** Every field's error; an empty field is allowed (not set), like the API. */
export function validateEmailForm(f: EmailForm): Partial<Record<EmailField, string>> {
  const e: Partial<Record<EmailField, string>> = {};
  const v = (k: EmailField) => f[k].trim();
  if (v('smtp_server_name') && !HOST_RE.test(v('smtp_server_name'))) e.smtp_server_name = 'Enter a host name or IP address.';
  if (v('smtp_port')) e.smtp_port = intIn(f.smtp_port, 1, 65535) ?? undefined;
  if (v('smtp_timeout')) e.smtp_timeout = intIn(f.smtp_timeout, 1, 10) ?? undefined;
  if (v('smtp_default_sender') && !EMAIL_RE.test(v('smtp_default_sender'))) e.smtp_default_sender = 'Enter an e-mail address.';
  if (v('smtp_default_recipient')) {
    const list = f.smtp_default_recipient.split(/[,;]/).map((s) => s.trim()).filter((s) => s !== '');
    if (list.length === 0 || list.some((a) => !EMAIL_RE.test(a))) e.smtp_default_recipient = 'Enter e-mail addresses separated by commas.';
  }
  for (const k of Object.keys(e) as EmailField[]) if (e[k] === undefined) delete e[k];
  return e;
}

/** The settings map to save: every field but an empty password (left empty = unchanged, the stored one is masked). */
export function emailSettings(f: EmailForm): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of EMAIL_FIELDS) if (k !== 'smtp_server_password' || f[k] !== '') out[k] = f[k].trim();
  return out;
}

/** A quota limit and its warning level: whole numbers, the watermark not above the limit. */
export function validateQuota(allowed: string, high: string): string | null {
  if (!/^\d{1,15}$/.test(allowed.trim())) return 'Enter the limit as a whole number.';
  if (!/^\d{1,15}$/.test(high.trim())) return 'Enter the warning level as a whole number.';
  if (Number(high) > Number(allowed)) return 'The warning level cannot be above the limit.';
  return null;
}

/**
 * The share of packs a verify reads, as the API's parser takes it (http/repo-verify.routes.ts
 * parseStartVerify: a percentage in (0, 100], up to three integer digits).
 */
export function validateVerifyPercent(text: string): string | null {
  const m = /^\s*(\d{1,3}(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const n = m ? Number(m[1]) : NaN;
  return n > 0 && n <= 100 ? null : 'Enter a percentage greater than 0 and at most 100.';
}
