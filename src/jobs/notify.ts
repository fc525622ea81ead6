import { createTransport } from 'nodemailer';
import type { Db } from '../store/db.js';
import { getSnapshot } from '../store/snapshot.store.js';
import { getRestore } from '../store/restore.store.js';
import { getWorkload } from '../store/workload.store.js';
import { readSmtpSettings, type SmtpSettings } from '../store/setting.store.js';
import { silentLogger, type Logger } from '../lib/logger.js';
import { UpstreamError, ValidationError, errorMessage } from '../lib/errors.js';
import { formatWireTime } from '../lib/time.js';
import { redactPathsOrNull } from '../lib/redact.js';

/**
 * E-mail notifications at the end of snapshots and restores (workloadmgr-api §4.8): when the
 * project saved its SMTP settings and `smtp_email_enable` is "1", its recipients get one
 * message per finished snapshot or restore, success or failure. Best effort: these functions
 * never throw, a mail failure is logged (without the password) and the job is unaffected.
 */

export interface MailMessage {
  to: string[];
  subject: string;
  text: string;
}

/** Every form the password could take on the wire or in an error text, blanked out. */
function scrub(text: string, smtp: SmtpSettings): string {
  if (smtp.password === '') return text;
  const forms = [
    smtp.password,
    Buffer.from(smtp.password).toString('base64'),
    Buffer.from(`\0${smtp.username}\0${smtp.password}`).toString('base64'),
    Buffer.from(`${smtp.username}\0${smtp.username}\0${smtp.password}`).toString('base64'),
  ];
  let out = text;
  for (const f of forms) if (f.length >= 3) out = out.split(f).join('[redacted]');
  return out;
}

const UNREACHABLE = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNRESET', 'EPROXY']);

/** One LIFEBOAT_SMTP_ALLOW entry: a host name or IP literal (lower case), any port when null. */
export interface SmtpAllowEntry {
  host: string;
  port: number | null;
}

function normalHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
}

/**
 * Whether the server may open an SMTP connection to host:port. `allow` null (LIFEBOAT_SMTP_ALLOW
 * unset): any target, since only callers allowed `workload:settings_smtp_update` (admins by
 * default) can save one. Otherwise the host must equal an entry's host (case-insensitive,
 * no DNS lookup, no wildcards) and the port the entry's port when it names one.
 */
export function smtpTargetAllowed(allow: readonly SmtpAllowEntry[] | null, host: string, port: number): boolean {
  if (allow === null) return true;
  const h = normalHost(host);
  return allow.some((e) => normalHost(e.host) === h && (e.port === null || e.port === port));
}

/**
 * The failure of one SMTP exchange as an AppError whose message names our side of it only:
 * never the remote server's banner or reply text (the target may be any TCP service), never
 * the password. Unreachable, TLS and protocol failures are 502; refusals of what the project
 * configured (credentials, addresses, message) are 400.
 */
function smtpFailure(e: unknown, where: string): Error {
  const code = (e as { code?: string }).code ?? '';
  if (UNREACHABLE.has(code)) return new UpstreamError(`SMTP server ${where} cannot be reached.`);
  if (code === 'ETLS') return new UpstreamError(`TLS with SMTP server ${where} failed.`);
  if (code === 'EAUTH') return new ValidationError('SMTP authentication failed: check smtp_server_username and smtp_server_password');
  if (code === 'EENVELOPE') return new ValidationError('The SMTP server refused the sender or a recipient address: check smtp_default_sender and smtp_default_recipient');
  if (code === 'EMESSAGE') return new ValidationError('The SMTP server refused the message.');
  return new UpstreamError(`SMTP server ${where} did not answer as an SMTP server.`);
}

export interface SmtpMailerOptions {
  /** LIFEBOAT_SMTP_ALLOW (config.ts): null = no allowlist. */
  allow: readonly SmtpAllowEntry[] | null;
  /** Failure details (scrubbed of the password) go here, for the operator; never to the caller. */
  log?: Logger;
}

/**
 * Sends over SMTP (nodemailer; STARTTLS when the server offers it, implicit TLS on port 465;
 * every phase bounded by smtp_timeout), only to targets the allowlist permits (else a 400
 * naming LIFEBOAT_SMTP_ALLOW, before any connection). Failures: see smtpFailure.
 */
export function createSmtpMailer(o: SmtpMailerOptions) {
  const log = o.log ?? silentLogger;
  return {
    permits(host: string, port: number): boolean {
      return smtpTargetAllowed(o.allow, host, port);
    },
    async send(smtp: SmtpSettings, msg: MailMessage): Promise<void> {
      const where = `${smtp.host}:${smtp.port}`;
      if (!smtpTargetAllowed(o.allow, smtp.host, smtp.port)) {
        throw new ValidationError(`SMTP server ${where} is not allowed on this server (LIFEBOAT_SMTP_ALLOW).`);
      }
      const ms = smtp.timeoutSeconds * 1000;
      const transport = createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: smtp.port === 465,
        connectionTimeout: ms,
        greetingTimeout: ms,
        socketTimeout: ms,
        dnsTimeout: ms,
        logger: false,
        debug: false,
        ...(smtp.username !== '' ? { auth: { user: smtp.username, pass: smtp.password } } : {}),
      });
      try {
        await transport.sendMail({ from: smtp.sender, to: msg.to, subject: msg.subject, text: msg.text });
      } catch (e) {
        log.warn({ smtp: where, code: (e as { code?: string }).code, err: scrub(errorMessage(e), smtp).slice(0, 300) }, 'SMTP exchange failed');
        throw smtpFailure(e, where);
      } finally {
        transport.close();
      }
    },
  };
}

/** A mailer without an allowlist (tools and tests); the service builds its own from config. */
export const smtpMailer = createSmtpMailer({ allow: null });

export interface NotifyDeps {
  db: Db;
  /** The settings key (services/setting.service.ts loadOrCreateSettingsKey). */
  secretKey: Buffer;
  log: Logger;
  /** Defaults to smtpMailer; tests may pass another. */
  mailer?: { send(smtp: SmtpSettings, msg: MailMessage): Promise<void> };
}

async function deliver(d: NotifyDeps, projectId: string, what: string, build: () => MailMessage | null): Promise<boolean> {
  const r = await readSmtpSettings(d.db, projectId, d.secretKey);
  if (!r.ok) {
    if (r.reason === 'undecryptable') d.log.warn({ projectId, what }, 'e-mail notification skipped: smtp_server_password cannot be opened with this node\'s settings key');
    return false;
  }
  if (!r.smtp.enabled) return false;
  const msg = build();
  if (!msg) return false;
  try {
    await (d.mailer ?? smtpMailer).send(r.smtp, { ...msg, to: r.smtp.recipients });
    d.log.info({ projectId, what, recipients: r.smtp.recipients.length }, 'e-mail notification sent');
    return true;
  } catch (e) {
    d.log.warn({ projectId, what, err: scrub(errorMessage(e), r.smtp) }, 'e-mail notification failed');
    return false;
  }
}

function lines(rows: [string, string | number | null | undefined][]): string {
  return `${rows.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
}

/**
 * Mails the outcome of a snapshot that reached `available` or `error` (other states: nothing).
 * Resolves to true when a message was sent. Never throws.
 */
export async function notifySnapshotFinished(d: NotifyDeps, snapshotId: string): Promise<boolean> {
  try {
    const s = await getSnapshot(d.db, { admin: true }, snapshotId);
    if (!s || (s.status !== 'available' && s.status !== 'error')) return false;
    const w = await getWorkload(d.db, { admin: true }, s.workload_id);
    const ok = s.status === 'available';
    return await deliver(d, s.project_id, `snapshot ${s.id}`, () => ({
      to: [],
      subject: `Lifeboat: snapshot "${s.name}" of workload "${w?.name ?? s.workload_id}" ${ok ? 'succeeded' : 'failed'}`,
      text: lines([
        ['Status', ok ? 'Snapshot succeeded' : 'Snapshot failed'],
        ['Workload', `${w?.name ?? ''} (${s.workload_id})`],
        ['Snapshot', `${s.name} (${s.id})`],
        ['Type', s.snapshot_type],
        ['Started', formatWireTime(s.created_at)],
        ['Finished', formatWireTime(s.finished_at)],
        ['Time taken (s)', s.time_taken],
        ['Stored bytes', ok ? s.size : null],
        ['Error', redactPathsOrNull(s.error_msg)],
        ['Project', s.project_id],
      ]),
    }));
  } catch (e) {
    d.log.warn({ snapshotId, err: errorMessage(e) }, 'e-mail notification failed');
    return false;
  }
}

/** Mails the outcome of a restore that reached `available` or `error`. Never throws. */
export async function notifyRestoreFinished(d: NotifyDeps, restoreId: string): Promise<boolean> {
  try {
    const r = await getRestore(d.db, { admin: true }, restoreId);
    if (!r || (r.status !== 'available' && r.status !== 'error')) return false;
    const w = await getWorkload(d.db, { admin: true }, r.workload_id);
    const ok = r.status === 'available';
    return await deliver(d, r.project_id, `restore ${r.id}`, () => ({
      to: [],
      subject: `Lifeboat: restore "${r.name}" of workload "${w?.name ?? r.workload_id}" ${ok ? 'succeeded' : 'failed'}`,
      text: lines([
        ['Status', ok ? 'Restore succeeded' : 'Restore failed'],
        ['Workload', `${w?.name ?? ''} (${r.workload_id})`],
        ['Snapshot', r.snapshot_id],
        ['Restore', `${r.name} (${r.id})`],
        ['Kind', r.kind],
        ['Started', formatWireTime(r.created_at)],
        ['Finished', formatWireTime(r.finished_at)],
        ['Time taken (s)', r.time_taken],
        ['Restored VMs', r.instances.map((i) => `${i.name} (${i.id})`).join(', ')],
        ['Error', redactPathsOrNull(r.error_msg)],
        ['Project', r.project_id],
      ]),
    }));
  } catch (e) {
    d.log.warn({ restoreId, err: errorMessage(e) }, 'e-mail notification failed');
    return false;
  }
}
