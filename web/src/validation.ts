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
  /** Ids of the instances picked from the platform's list. */
  instanceIds: string[];
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

function validateInstances(picked: string[]): string | null {
  const ids = [...new Set(picked)];
  if (ids.length === 0) return 'Choose at least one VM.';
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
      instances: [...new Set(f.instanceIds)].map((id) => ({ 'instance-id': id })),
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

/** "09:30 PM" (the API's start time) → "21:30" for <input type="time">; "" when unreadable. */
export function fromApiStartTime(t: string): string {
  const m = /^(\d{1,2}):(\d{2})\s*(AM|PM)$/i.exec(t.trim());
  if (!m) return '';
  const h12 = Number(m[1]) % 12;
  const h = m[3]!.toUpperCase() === 'PM' ? h12 + 12 : h12;
  return `${String(h).padStart(2, '0')}:${m[2]}`;
}

/** The form filled with a workload's current values (the edit page). */
export function formFromWorkload(w: {
  name: string;
  description: string;
  instances: { id: string }[];
  jobschedule: { enabled: boolean; interval: string; start_time: string; retention_policy_type: string; retention_policy_value: string; fullbackup_interval: string };
}): WorkloadForm {
  const j = w.jobschedule;
  const iv = /^(\d+)\s*(\w+)$/.exec(j.interval.trim());
  return {
    name: w.name,
    description: w.description,
    instanceIds: w.instances.map((i) => i.id),
    scheduleEnabled: j.enabled,
    startTime: fromApiStartTime(j.start_time),
    intervalValue: iv ? iv[1]! : '',
    intervalUnit: iv ? iv[2]! : 'hr',
    retentionType: j.retention_policy_type,
    retentionValue: String(j.retention_policy_value),
    fullBackupInterval: String(j.fullbackup_interval),
  };
}

/** The policy form (admin): a named schedule template, its four fields as the user typed them. */
export interface PolicyForm {
  name: string;
  description: string;
  intervalValue: string;
  intervalUnit: string;
  retentionType: string;
  retentionValue: string;
  fullBackupInterval: string;
}

export type PolicyErrors = Partial<Record<keyof PolicyForm, string>>;

export const EMPTY_POLICY_FORM: PolicyForm = { name: '', description: '', intervalValue: '24', intervalUnit: 'hr', retentionType: RETENTION_TYPES[0], retentionValue: '7', fullBackupInterval: '-1' };

/**
 * Every field's error, as the policy API judges them (src/http/policy.commands.ts: a name, a
 * description of at most 255 characters, the interval and retention as for workloads, a
 * full-backup interval from -1 to 999).
 */
export function validatePolicyForm(f: PolicyForm): PolicyErrors {
  const e: PolicyErrors = {};
  if (f.name.trim() === '') e.name = 'Enter a name.';
  else if (f.name.length > 255) e.name = 'Use at most 255 characters.';
  if (f.description.length > 255) e.description = 'Use at most 255 characters.';
  const iv = validateInterval(f.intervalValue, f.intervalUnit);
  if ('error' in iv) e.intervalValue = iv.error;
  if (!(RETENTION_TYPES as readonly string[]).includes(f.retentionType)) e.retentionType = 'Choose a retention policy.';
  const rv = validateCount(f.retentionValue, 1);
  if (rv) e.retentionValue = rv;
  const fb = f.fullBackupInterval.trim();
  if (!/^-?\d+$/.test(fb) || Number(fb) < -1 || Number(fb) > 999) e.fullBackupInterval = 'Enter a whole number from -1 to 999.';
  return e;
}

/** The four policy fields of a valid form, as the API stores them. */
export function policyFieldValues(f: PolicyForm): Record<string, string> {
  const iv = validateInterval(f.intervalValue, f.intervalUnit);
  return {
    interval: 'interval' in iv ? iv.interval : '',
    retention_policy_type: f.retentionType,
    retention_policy_value: String(Number(f.retentionValue.trim())),
    fullbackup_interval: String(Number(f.fullBackupInterval.trim())),
  };
}

/** POST /workload_policy (`key` workload_policy) and PUT /workload_policy/{id} (`key` policy) bodies of a valid form. */
export function policyBody<K extends 'workload_policy' | 'policy'>(f: PolicyForm, key: K) {
  return { [key]: { display_name: f.name.trim(), display_description: f.description.trim(), field_values: policyFieldValues(f) } } as Record<K, { display_name: string; display_description: string; field_values: Record<string, string> }>;
}

/** The form filled with a policy's values (edit). An interval in another spelling ("24hr", "1 hrs") becomes value + unit. */
export function formFromPolicy(p: { name: string; description: string; field_values: { policy_field_name: string; value: string }[] }): PolicyForm {
  const v = (k: string) => p.field_values.find((x) => x.policy_field_name === k)?.value ?? '';
  const m = /^(\d+)\s*([a-z]*)$/i.exec(v('interval').trim());
  const unit = (m?.[2] || 'hr').toLowerCase();
  const canonical = /^(m|min|mins|minute|minutes)$/.test(unit) ? 'min' : /^(d|day|days)$/.test(unit) ? 'days' : /^(w|week|weeks)$/.test(unit) ? 'weeks' : 'hr';
  return {
    name: p.name,
    description: p.description === 'No description' ? '' : p.description,
    intervalValue: m ? m[1]! : '',
    intervalUnit: canonical,
    retentionType: v('retention_policy_type') || RETENTION_TYPES[0],
    retentionValue: v('retention_policy_value'),
    fullBackupInterval: v('fullbackup_interval'),
  };
}
