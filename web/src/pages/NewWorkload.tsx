import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { V1 } from '../api';
import { ErrorBox, Page } from '../components';
import { navigate } from '../router';
import { INTERVAL_UNITS, RETENTION_TYPES, validateWorkloadForm, workloadCreateBody, type FormErrors, type WorkloadForm } from '../validation';

const INITIAL: WorkloadForm = {
  name: '',
  description: '',
  instanceIds: '',
  scheduleEnabled: true,
  startTime: '21:00',
  intervalValue: '24',
  intervalUnit: 'hr',
  retentionType: RETENTION_TYPES[0],
  retentionValue: '30',
  fullBackupInterval: '-1',
};

/** A label, the input, and the field's error tied to it for screen readers. */
function Field(props: { id: keyof WorkloadForm; label: string; errors: FormErrors; hint?: string; children: (a: Record<string, unknown>) => ComponentChildren }) {
  const err = props.errors[props.id];
  const describedBy = [err ? `${props.id}-error` : '', props.hint ? `${props.id}-hint` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      {props.children({ id: props.id, name: props.id, 'aria-invalid': err ? 'true' : undefined, 'aria-describedby': describedBy })}
      {props.hint ? (
        <small id={`${props.id}-hint`} class="muted">
          {props.hint}
        </small>
      ) : null}
      {err ? (
        <small id={`${props.id}-error`} class="field-error">
          {err}
        </small>
      ) : null}
    </div>
  );
}

export function NewWorkload({ api }: { api: V1 }) {
  const [form, setForm] = useState<WorkloadForm>(INITIAL);
  const [errors, setErrors] = useState<FormErrors>({});
  const [apiError, setApiError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof WorkloadForm) => (e: Event) => {
    const t = e.currentTarget as HTMLInputElement;
    setForm({ ...form, [k]: t.type === 'checkbox' ? t.checked : t.value });
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs = validateWorkloadForm(form);
    setErrors(errs);
    setApiError(null);
    if (Object.keys(errs).length > 0) {
      document.getElementById(Object.keys(errs)[0] ?? '')?.focus();
      return;
    }
    setBusy(true);
    try {
      const w = await api.createWorkload(workloadCreateBody(form, Intl.DateTimeFormat().resolvedOptions().timeZone));
      navigate(`/workloads/${w.id}`);
    } catch (err) {
      setApiError(err);
      setBusy(false);
    }
  };
  return (
    <Page title="New workload">
      <form onSubmit={submit} noValidate aria-label="New workload">
        <Field id="name" label="Name" errors={errors}>
          {(a) => <input {...a} value={form.name} onInput={set('name')} />}
        </Field>
        <Field id="description" label="Description" errors={errors}>
          {(a) => <input {...a} value={form.description} onInput={set('description')} />}
        </Field>
        <Field id="instanceIds" label="Instance ids" errors={errors} hint="The platform's instance UUIDs, one per line (the v1 API has no instance list to pick from yet).">
          {(a) => <textarea {...a} rows={3} value={form.instanceIds} onInput={set('instanceIds')} />}
        </Field>
        <fieldset>
          <legend>Schedule and retention</legend>
          <div class="field check">
            <input id="scheduleEnabled" type="checkbox" checked={form.scheduleEnabled} onChange={set('scheduleEnabled')} />
            <label for="scheduleEnabled">Take snapshots on a schedule</label>
          </div>
          <Field id="startTime" label="Start time (your time zone)" errors={errors}>
            {(a) => <input {...a} type="time" value={form.startTime} onInput={set('startTime')} />}
          </Field>
          <Field id="intervalValue" label="Every" errors={errors}>
            {(a) => (
              <span class="inline">
                <input {...a} inputMode="numeric" size={6} value={form.intervalValue} onInput={set('intervalValue')} />
                <select aria-label="Interval unit" value={form.intervalUnit} onChange={set('intervalUnit')}>
                  {INTERVAL_UNITS.map((u) => (
                    <option key={u} value={u}>
                      {u}
                    </option>
                  ))}
                </select>
              </span>
            )}
          </Field>
          <Field id="retentionType" label="Retention policy" errors={errors}>
            {(a) => (
              <select {...a} value={form.retentionType} onChange={set('retentionType')}>
                {RETENTION_TYPES.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field id="retentionValue" label="Keep" errors={errors}>
            {(a) => <input {...a} inputMode="numeric" size={6} value={form.retentionValue} onInput={set('retentionValue')} />}
          </Field>
          <Field id="fullBackupInterval" label="Full snapshot after this many incrementals" errors={errors} hint="-1: never scheduled; 0: every snapshot is full.">
            {(a) => <input {...a} inputMode="numeric" size={6} value={form.fullBackupInterval} onInput={set('fullBackupInterval')} />}
          </Field>
        </fieldset>
        <ErrorBox error={apiError} />
        <button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create workload'}
        </button>
      </form>
    </Page>
  );
}
