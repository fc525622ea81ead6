import { useState } from 'preact/hooks';
import type { V1, WorkloadPolicyDetail } from '../api';
import { DataTable, ErrorBox, Field, Section, useAction, useLoad } from '../components';
import { EMPTY_POLICY_FORM, formFromPolicy, INTERVAL_UNITS, policyBody, RETENTION_TYPES, validatePolicyForm, type PolicyErrors, type PolicyForm } from '../validation';

type Project = { id: string; name: string };

const fieldText = (p: WorkloadPolicyDetail, k: string) => p.field_values.find((f) => f.policy_field_name === k)?.value ?? '–';

/** Create (no `policy`) or edit a policy; validation as the API's parser (validatePolicyForm). */
function PolicyEditor({ api, policy, onDone }: { api: V1; policy?: WorkloadPolicyDetail; onDone: (saved: boolean) => void }) {
  const [f, setF] = useState<PolicyForm>(policy ? formFromPolicy(policy) : EMPTY_POLICY_FORM);
  const [errors, setErrors] = useState<PolicyErrors>({});
  const action = useAction();
  const set = (k: keyof PolicyForm) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const save = async (e: Event) => {
    e.preventDefault();
    const errs = validatePolicyForm(f);
    setErrors(errs);
    const first = Object.keys(errs)[0];
    if (first) return document.getElementById(`policy-${first}`)?.focus();
    const ok = await action.run(() => (policy ? api.updatePolicy(policy.id, policyBody(f, 'policy')) : api.createPolicy(policyBody(f, 'workload_policy'))));
    if (ok) onDone(true);
  };
  const title = policy ? `Edit policy ${policy.name}` : 'New policy';
  return (
    <form onSubmit={save} noValidate aria-label={title} class="policy-editor">
      <h3>{title}</h3>
      <Field id="policy-name" label="Policy name" error={errors.name}>
        {(a) => <input {...a} value={f.name} onInput={set('name')} autocomplete="off" />}
      </Field>
      <Field id="policy-description" label="Policy description" error={errors.description}>
        {(a) => <input {...a} value={f.description} onInput={set('description')} autocomplete="off" />}
      </Field>
      <Field id="policy-intervalValue" label="Snapshot every" error={errors.intervalValue}>
        {(a) => (
          <span class="inline">
            <input {...a} inputMode="numeric" size={6} value={f.intervalValue} onInput={set('intervalValue')} />
            <select aria-label="Policy interval unit" value={f.intervalUnit} onChange={set('intervalUnit')}>
              {INTERVAL_UNITS.map((u) => (
                <option key={u} value={u}>
                  {u}
                </option>
              ))}
            </select>
          </span>
        )}
      </Field>
      <Field id="policy-retentionType" label="Policy retention" error={errors.retentionType}>
        {(a) => (
          <select {...a} value={f.retentionType} onChange={set('retentionType')}>
            {RETENTION_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field id="policy-retentionValue" label="Keep (snapshots or days)" error={errors.retentionValue}>
        {(a) => <input {...a} inputMode="numeric" size={6} value={f.retentionValue} onInput={set('retentionValue')} />}
      </Field>
      <Field id="policy-fullBackupInterval" label="Full snapshot after this many incrementals" error={errors.fullBackupInterval} hint="-1: never scheduled; 0: every snapshot is full; at most 999.">
        {(a) => <input {...a} inputMode="numeric" size={6} value={f.fullBackupInterval} onInput={set('fullBackupInterval')} />}
      </Field>
      <ErrorBox error={action.error} />
      <div class="actions">
        <button type="submit" disabled={action.busy}>
          {policy ? 'Save policy' : 'Create policy'}
        </button>
        <button type="button" class="secondary" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Which projects a policy is assigned to: ticks, saved as one assign call (adds and removals). */
function PolicyAssign({ api, policy, projects, onDone }: { api: V1; policy: WorkloadPolicyDetail; projects: Project[]; onDone: (saved: boolean) => void }) {
  const before = new Set(policy.policy_assignments.map((a) => a.project_id));
  const [chosen, setChosen] = useState(new Set(before));
  const [err, setErr] = useState<string | null>(null);
  const action = useAction();
  const save = async (e: Event) => {
    e.preventDefault();
    const add = [...chosen].filter((p) => !before.has(p));
    const remove = [...before].filter((p) => !chosen.has(p));
    if (add.length + remove.length === 0) return setErr('Tick or untick at least one project.');
    setErr(null);
    let failed: string[] = [];
    const ok = await action.run(async () => (failed = (await api.assignPolicy(policy.id, add, remove)).failed_ids));
    if (ok && failed.length > 0) setErr(`These projects could not be assigned: ${failed.join(', ')}`);
    else if (ok) onDone(true);
  };
  return (
    <form onSubmit={save} noValidate aria-label={`Projects of policy ${policy.name}`} class="policy-editor">
      <fieldset>
        <legend>Projects of policy {policy.name}</legend>
        {projects.map((p) => (
          <div class="field check" key={p.id}>
            <input
              id={`assign-${p.id}`}
              type="checkbox"
              checked={chosen.has(p.id)}
              onChange={(e) => {
                const next = new Set(chosen);
                if (e.currentTarget.checked) next.add(p.id);
                else next.delete(p.id);
                setChosen(next);
              }}
            />
            <label for={`assign-${p.id}`}>{p.name}</label>
          </div>
        ))}
      </fieldset>
      {err ? (
        <p class="field-error" role="alert">
          {err}
        </p>
      ) : null}
      <ErrorBox error={action.error} />
      <div class="actions">
        <button type="submit" disabled={action.busy}>
          Save projects
        </button>
        <button type="button" class="secondary" onClick={() => onDone(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

type Mode = { kind: 'none' } | { kind: 'new' } | { kind: 'edit' | 'assign' | 'delete'; id: string };

/** The workload policies: list with their schedule and projects; create, edit, assign, delete. */
export function Policies({ api, projects }: { api: V1; projects: Project[] }) {
  const { data, error, reload } = useLoad(async () => Promise.all((await api.policies()).map((p) => api.policy(p.id))), []);
  const [mode, setMode] = useState<Mode>({ kind: 'none' });
  const [status, setStatus] = useState<string | null>(null);
  const del = useAction();
  const done = (what: string) => (saved: boolean) => {
    setMode({ kind: 'none' });
    if (saved) {
      setStatus(what);
      reload();
    }
  };
  const current = mode.kind !== 'none' && mode.kind !== 'new' ? data?.find((p) => p.id === mode.id) : undefined;
  const nameOf = (id: string, fallback: string | null) => projects.find((p) => p.id === id)?.name ?? fallback ?? id;
  return (
    <Section title="Workload policies" id="policies-h">
      <ErrorBox error={error} />
      {status ? (
        <p role="status" class="ok-text">
          {status}
        </p>
      ) : null}
      {data && data.length === 0 ? <p>No policies defined yet.</p> : null}
      {data && data.length > 0 ? (
        <DataTable heads={['Policy', 'Every', 'Retention', 'Full after', 'Projects', '']} testId="policies">
          {data.map((p) => (
            <tr key={p.id}>
              <td>
                <strong>{p.name}</strong>
                <div class="muted">{p.description}</div>
              </td>
              <td>{fieldText(p, 'interval')}</td>
              <td>
                {fieldText(p, 'retention_policy_value')} ({fieldText(p, 'retention_policy_type')})
              </td>
              <td>{fieldText(p, 'fullbackup_interval')}</td>
              <td>{p.policy_assignments.length === 0 ? 'none' : p.policy_assignments.map((a) => nameOf(a.project_id, a.project_name)).join(', ')}</td>
              <td class="row-actions">
                <button type="button" class="secondary" aria-label={`Edit ${p.name}`} onClick={() => (setStatus(null), setMode({ kind: 'edit', id: p.id }))}>
                  Edit
                </button>
                <button type="button" class="secondary" aria-label={`Projects of ${p.name}`} onClick={() => (setStatus(null), setMode({ kind: 'assign', id: p.id }))}>
                  Projects
                </button>
                <button type="button" class="secondary danger" aria-label={`Delete ${p.name}`} onClick={() => (setStatus(null), setMode({ kind: 'delete', id: p.id }))}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </DataTable>
      ) : null}
      {mode.kind === 'delete' && current ? (
        <div class="warning-box" role="group" aria-label={`Delete policy ${current.name}`}>
          <p>
            Delete policy <strong>{current.name}</strong>? The projects it is assigned to lose it; a policy that workloads use cannot be deleted.
          </p>
          <ErrorBox error={del.error} />
          <div class="actions">
            <button type="button" class="danger" disabled={del.busy} onClick={() => void del.run(() => api.deletePolicy(current.id)).then((ok) => ok && done(`Policy ${current.name} deleted.`)(true))}>
              Delete policy {current.name}
            </button>
            <button type="button" class="secondary" onClick={() => (del.clear(), setMode({ kind: 'none' }))}>
              Keep it
            </button>
          </div>
        </div>
      ) : null}
      {mode.kind === 'edit' && current ? <PolicyEditor key={current.id} api={api} policy={current} onDone={done(`Policy ${current.name} saved.`)} /> : null}
      {mode.kind === 'assign' && current ? <PolicyAssign key={current.id} api={api} policy={current} projects={projects} onDone={done(`Projects of policy ${current.name} saved.`)} /> : null}
      {mode.kind === 'new' ? <PolicyEditor api={api} onDone={done('Policy created.')} /> : null}
      {mode.kind === 'none' && data ? (
        <p>
          <button type="button" onClick={() => (setStatus(null), setMode({ kind: 'new' }))}>
            New policy
          </button>
        </p>
      ) : null}
    </Section>
  );
}
