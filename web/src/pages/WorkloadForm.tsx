import { useEffect, useState } from 'preact/hooks';
import type { PlatformInstance, V1, WorkloadDetail } from '../api';
import { ErrorBox, Field, Page, useAction, useLoad } from '../components';
import { Link, navigate } from '../router';
import { formFromWorkload, INTERVAL_UNITS, RETENTION_TYPES, validateWorkloadForm, workloadCreateBody, type FormErrors, type WorkloadForm } from '../validation';

const INITIAL: WorkloadForm = {
  name: '',
  description: '',
  instanceIds: [],
  scheduleEnabled: true,
  startTime: '21:00',
  intervalValue: '24',
  intervalUnit: 'hr',
  retentionType: RETENTION_TYPES[0],
  retentionValue: '30',
  fullBackupInterval: '-1',
};

/** VMs of the project (the platform's list) as checkboxes; VMs of other workloads are named and disabled. */
function VmPicker(props: { vms: PlatformInstance[] | undefined; owners: Map<string, string>; picked: string[]; error?: string | undefined; onChange: (ids: string[]) => void }) {
  const { vms, picked } = props;
  const toggle = (id: string, on: boolean) => props.onChange(on ? [...picked, id] : picked.filter((x) => x !== id));
  return (
    <fieldset id="instanceIds" tabIndex={-1} aria-describedby={props.error ? 'instanceIds-error' : undefined} aria-invalid={props.error ? 'true' : undefined}>
      <legend>VMs to protect</legend>
      {!vms ? <p aria-busy="true">Loading the project's VMs…</p> : null}
      {vms && vms.length === 0 ? <p>This project has no VMs.</p> : null}
      <ul class="picker">
        {(vms ?? []).map((v) => {
          const owner = props.owners.get(v.id);
          const reason = owner ? `in workload ${owner}` : v.unprotectable_reason;
          return (
            <li key={v.id}>
              <input type="checkbox" id={`vm-${v.id}`} checked={picked.includes(v.id)} disabled={reason !== null && reason !== undefined} onChange={(e) => toggle(v.id, e.currentTarget.checked)} />
              <label for={`vm-${v.id}`}>
                <strong>{v.name}</strong> <span class="muted">{v.status} · {v.disks.length} disk{v.disks.length === 1 ? '' : 's'} · {v.networks.map((n) => `${n.name} ${n.ip_address}`).join(', ')}</span>
                {reason ? <span class="muted"> — {reason}</span> : null}
              </label>
            </li>
          );
        })}
      </ul>
      {props.error ? (
        <small id="instanceIds-error" class="field-error">
          {props.error}
        </small>
      ) : null}
    </fieldset>
  );
}

function ScheduleFields({ form, errors, set }: { form: WorkloadForm; errors: FormErrors; set: (k: keyof WorkloadForm) => (e: Event) => void }) {
  return (
    <fieldset>
      <legend>Schedule and retention</legend>
      <div class="field check">
        <input id="scheduleEnabled" type="checkbox" checked={form.scheduleEnabled} onChange={set('scheduleEnabled')} />
        <label for="scheduleEnabled">Take snapshots on a schedule</label>
      </div>
      <Field id="startTime" label="Start time (your time zone)" error={errors.startTime}>
        {(a) => <input {...a} type="time" value={form.startTime} onInput={set('startTime')} />}
      </Field>
      <Field id="intervalValue" label="Every" error={errors.intervalValue}>
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
      <Field id="retentionType" label="Retention policy" error={errors.retentionType}>
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
      <Field id="retentionValue" label="Keep" error={errors.retentionValue}>
        {(a) => <input {...a} inputMode="numeric" size={6} value={form.retentionValue} onInput={set('retentionValue')} />}
      </Field>
      <Field id="fullBackupInterval" label="Full snapshot after this many incrementals" error={errors.fullBackupInterval} hint="-1: never scheduled; 0: every snapshot is full.">
        {(a) => <input {...a} inputMode="numeric" size={6} value={form.fullBackupInterval} onInput={set('fullBackupInterval')} />}
      </Field>
    </fieldset>
  );
}

/**
 * Create a workload (no `id`) or edit one: VMs from the platform's list, schedule and retention.
 * An edit form mounts only once the workload is loaded, with its values as the form's first
 * state: it never shows (or submits) the defaults of a new workload in between.
 */
export function WorkloadFormPage({ api, id }: { api: V1; id?: string }) {
  const { data, error } = useLoad(async () => {
    const [vms, workloads] = await Promise.all([api.instances(), api.workloads()]);
    return { vms, workloads };
  }, []);
  const editing: WorkloadDetail | undefined = id ? data?.workloads.find((w) => w.id === id) : undefined;
  const title = id ? `Edit workload ${editing?.name ?? ''}`.trim() : 'New workload';
  const owners = new Map<string, string>();
  for (const w of data?.workloads ?? []) if (w.id !== id) for (const i of w.instances) owners.set(i.id, w.name);
  return (
    <Page title={title}>
      <ErrorBox error={error} />
      {id && data && !editing ? <p>This workload does not exist. <Link href="/">Back to the workloads.</Link></p> : null}
      {id && !data && !error ? <p aria-busy="true">Loading the workload…</p> : null}
      {!id || editing ? <WorkloadFormFields key={editing?.id ?? 'new'} api={api} id={id} title={title} initial={editing ? formFromWorkload(editing) : INITIAL} vms={data?.vms} owners={owners} /> : null}
    </Page>
  );
}

/** The form itself; `initial` is read once, when it mounts. */
function WorkloadFormFields(props: { api: V1; id: string | undefined; title: string; initial: WorkloadForm; vms: PlatformInstance[] | undefined; owners: Map<string, string> }) {
  const { api, id, title } = props;
  const [form, setForm] = useState<WorkloadForm>(props.initial);
  const [errors, setErrors] = useState<FormErrors>({});
  const [tried, setTried] = useState(false);
  const action = useAction();
  // After a first submit, errors follow the form as it is corrected.
  useEffect(() => {
    if (tried) setErrors(validateWorkloadForm(form));
  }, [form]);
  const set = (k: keyof WorkloadForm) => (e: Event) => {
    const t = e.currentTarget as HTMLInputElement;
    setForm({ ...form, [k]: t.type === 'checkbox' ? t.checked : t.value });
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    const errs = validateWorkloadForm(form);
    setErrors(errs);
    setTried(true);
    action.clear();
    if (Object.keys(errs).length > 0) {
      document.getElementById(Object.keys(errs)[0] ?? '')?.focus();
      return;
    }
    const body = workloadCreateBody(form, Intl.DateTimeFormat().resolvedOptions().timeZone);
    await action.run(async () => {
      const wid = id ? (await api.modifyWorkload(id, body), id) : (await api.createWorkload(body)).id;
      navigate(`/workloads/${wid}`);
    });
  };
  return (
    <form onSubmit={submit} noValidate aria-label={title}>
      <Field id="name" label="Name" error={errors.name}>
        {(a) => <input {...a} value={form.name} onInput={set('name')} />}
      </Field>
      <Field id="description" label="Description" error={errors.description}>
        {(a) => <input {...a} value={form.description} onInput={set('description')} />}
      </Field>
      <VmPicker vms={props.vms} owners={props.owners} picked={form.instanceIds} error={errors.instanceIds} onChange={(ids) => setForm({ ...form, instanceIds: ids })} />
      <ScheduleFields form={form} errors={errors} set={set} />
      <ErrorBox error={action.error} />
      <button type="submit" disabled={action.busy}>
        {action.busy ? 'Saving…' : id ? 'Save changes' : 'Create workload'}
      </button>
    </form>
  );
}
