/**
 * Validation of the dashboard's workload form, matching what the v1 API accepts
 * (src/domain/jobschedule.ts: interval between 1 minute and 366 days, retention an integer
 * ≥ 1, full-backup interval an integer ≥ -1, both ≤ 1 000 000; start time HH:MM AM/PM).
 * Pure functions without imports, so the node tests run them and compare with the API's own
 * parser (test/dashboard-validation.test.ts).
 */

export const INTERVAL_UNITS = ['min', 'hr', 'days', 'weeks'] as const;
export type IntervalUnit = (typeof INTERVAL_UNITS)[number];

export const RETENTION_TYPES = ['Number of Snapshots to Keep', 'Number of days to retain Snapshots'] as const;

const UNIT_MS: Record<IntervalUnit, number> = { min: 60_000, hr: 3_600_000, days: 86_400_000, weeks: 7 * 86_400_000 };
const MIN_INTERVAL_MS = 60_000;
const MAX_INTERVAL_MS = 366 * 86_400_000;
const MAX_COUNT = 1_000_000;
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** The form as the user filled it: every field is the raw text of its input. */
export interface WorkloadForm {
  name: string;
  description: string;
  /** Instance ids, separated by commas, spaces or new lines. */
  instanceIds: string;
  scheduleEnabled: boolean;
  /** From <input type="time">: "HH:MM" (24 h). */
  startTime: string;
  intervalValue: string;
  intervalUnit: string;
  retentionType: string;
  retentionValue: string;
  /** -1: never a scheduled full; 0: always full; n: a full after n incrementals. */
  fullBackupInterval: string;
}

export type FormErrors = Partial<Record<keyof WorkloadForm, string>>;

export interface WorkloadCreateBody {
  workload: {
    name: string;
    description: string;
    instances: { 'instance-id': string }[];
    jobschedule: Record<string, string | boolean>;
    metadata: Record<string, string>;
  };
}

function isInteger(text: string): boolean {
  return /^-?\d+$/.test(text.trim());
}

/** "12" + "hr" → "12 hr", or an error message. */
export function validateInterval(value: string, unit: string): { interval: string } | { error: string } {
  if (!(INTERVAL_UNITS as readonly string[]).includes(unit)) return { error: 'Choose a unit.' };
  if (!/^\d{1,9}$/.test(value.trim()) || Number(value) <= 0) return { error: 'Enter a whole number greater than 0.' };
  const ms = Number(value) * UNIT_MS[unit as IntervalUnit];
  if (ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS) return { error: 'The interval must be from 1 minute to 366 days.' };
  return { interval: `${Number(value)} ${unit}` };
}

/** An integer text within [min, 1 000 000], or an error message. */
export function validateCount(text: string, min: number): string | null {
  if (!isInteger(text)) return 'Enter a whole number.';
  const n = Number(text.trim());
  if (n < min) return `Enter ${min} or more.`;
  if (n > MAX_COUNT) return `Enter at most ${MAX_COUNT}.`;
  return null;
}

/** "21:05" → "09:05 PM" (the API's canonical start time), or null if not HH:MM. */
export function toApiStartTime(hhmm: string): string | null {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm.trim());
  if (!m) return null;
  const h = Number(m[1]);
  const mi = Number(m[2]);
  if (h > 23 || mi > 59) return null;
  const h12 = h % 12 === 0 ? 12 : h % 12;
  return `${String(h12).padStart(2, '0')}:${m[2]} ${h < 12 ? 'AM' : 'PM'}`;
}

/** Instance ids from free text; duplicates dropped, order kept. */
export function parseInstanceIds(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((s) => s !== ''))];
}

function validateInstances(text: string): string | null {
  const ids = parseInstanceIds(text);
  if (ids.length === 0) return 'Enter at least one instance id.';
  const bad = ids.find((id) => !UUID.test(id));
  return bad === undefined ? null : `Not an instance id: ${bad.slice(0, 40)}`;
}

function scheduleErrors(f: WorkloadForm, errors: FormErrors): void {
  const iv = validateInterval(f.intervalValue, f.intervalUnit);
  if ('error' in iv) errors.intervalValue = iv.error;
  if (toApiStartTime(f.startTime) === null) errors.startTime = 'Enter a time as HH:MM.';
  if (!(RETENTION_TYPES as readonly string[]).includes(f.retentionType)) errors.retentionType = 'Choose a retention policy.';
  const rv = validateCount(f.retentionValue, 1);
  if (rv) errors.retentionValue = rv;
  const fb = validateCount(f.fullBackupInterval, -1);
  if (fb) errors.fullBackupInterval = fb;
}

/** Every field's error (empty when the form is valid). */
export function validateWorkloadForm(f: WorkloadForm): FormErrors {
  const errors: FormErrors = {};
  const name = f.name.trim();
  if (name === '') errors.name = 'Enter a name.';
  else if (name.length > 255) errors.name = 'Use at most 255 characters.';
  if (f.description.length > 1024) errors.description = 'Use at most 1024 characters.';
  const inst = validateInstances(f.instanceIds);
  if (inst) errors.instanceIds = inst;
  scheduleErrors(f, errors);
  return errors;
}

/** The POST /workloads body of a valid form (call validateWorkloadForm first). */
export function workloadCreateBody(f: WorkloadForm, timeZone: string): WorkloadCreateBody {
  const iv = validateInterval(f.intervalValue, f.intervalUnit);
  return {
    workload: {
      name: f.name.trim(),
      description: f.description,
      instances: parseInstanceIds(f.instanceIds).map((id) => ({ 'instance-id': id })),
      jobschedule: {
        enabled: f.scheduleEnabled,
        start_time: toApiStartTime(f.startTime) ?? '',
        interval: 'interval' in iv ? iv.interval : '',
        retention_policy_type: f.retentionType,
        retention_policy_value: String(Number(f.retentionValue.trim())),
        fullbackup_interval: String(Number(f.fullBackupInterval.trim())),
        timezone: timeZone,
      },
      metadata: {},
    },
  };
}
