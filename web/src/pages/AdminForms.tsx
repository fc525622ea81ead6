import { useEffect, useState } from 'preact/hooks';
import type { V1 } from '../api';
import { EMAIL_FIELDS, emailSettings, validateEmailForm, validateQuota, type EmailField, type EmailForm } from '../admin-forms';
import { DataTable, ErrorBox, Field, Page, Section, useAction, useLoad } from '../components';
import { AdminNav } from './Admin';
import { Policies } from './AdminPolicies';

function QuotaRow({ api, projectId, type, current, onSaved }: { api: V1; projectId: string; type: { id: string; display_name: string; display_description: string }; current?: { allowed_value: number; high_watermark: number }; onSaved: () => void }) {
  const [allowed, setAllowed] = useState(current ? String(current.allowed_value) : '');
  const [high, setHigh] = useState(current ? String(current.high_watermark) : '');
  const [err, setErr] = useState<string | null>(null);
  const action = useAction();
  useEffect(() => {
    setAllowed(current ? String(current.allowed_value) : '');
    setHigh(current ? String(current.high_watermark) : '');
  }, [projectId, current?.allowed_value, current?.high_watermark]);
  const save = async (e: Event) => {
    e.preventDefault();
    const v = validateQuota(allowed, high === '' ? allowed : high);
    setErr(v);
    if (v) return;
    await action.run(async () => (await api.setQuota(projectId, type.id, Number(allowed), Number(high === '' ? allowed : high)), onSaved()));
  };
  const id = `quota-${type.id}`;
  return (
    <tr>
      <th scope="row">
        {type.display_name}
        <div class="muted">{type.display_description}</div>
      </th>
      <td>{current ? `${current.allowed_value} (warn at ${current.high_watermark})` : 'no limit'}</td>
      <td>
        <form class="inline-form" onSubmit={save} noValidate aria-label={`Quota ${type.display_name}`}>
          <label for={`${id}-allowed`}>Limit</label>
          <input id={`${id}-allowed`} inputMode="numeric" size={8} value={allowed} onInput={(e) => setAllowed(e.currentTarget.value)} aria-invalid={err ? 'true' : undefined} />
          <label for={`${id}-high`}>Warn at</label>
          <input id={`${id}-high`} inputMode="numeric" size={8} value={high} onInput={(e) => setHigh(e.currentTarget.value)} />
          <button type="submit" disabled={action.busy}>
            Save
          </button>
        </form>
        {err ? <small class="field-error">{err}</small> : null}
        <ErrorBox error={action.error} />
      </td>
    </tr>
  );
}

/** Quotas per project (choose a project) and the workload policies. */
export function AdminQuotas({ api }: { api: V1 }) {
  const { data, error } = useLoad(async () => {
    const [projects, types] = await Promise.all([api.tenantsUsage(), api.quotaTypes()]);
    return { projects: Object.entries(projects).map(([id, p]) => ({ id, name: p.tenant_name })), types };
  }, []);
  const [project, setProject] = useState('');
  const pid = project || data?.projects[0]?.id || '';
  const quotas = useLoad(async () => (pid ? api.quotas(pid) : []), [pid]);
  return (
    <Page title="Quotas and policies">
      <AdminNav />
      <ErrorBox error={error} />
      {data ? (
        <Section title="Quotas" id="quotas-h">
          <Field id="quota-project" label="Project">
            {(a) => (
              <select {...a} value={pid} onChange={(e) => setProject(e.currentTarget.value)}>
                {data.projects.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <ErrorBox error={quotas.error} />
          <DataTable heads={['Quota', 'Now', 'Change']} testId="quotas">
                {data.types.map((t) => (
                  <QuotaRow key={t.id} api={api} projectId={pid} type={t} current={quotas.data?.find((q) => q.quota_type_id === t.id)} onSaved={quotas.reload} />
                ))}
          </DataTable>
        </Section>
      ) : null}
      {data ? <Policies api={api} projects={data.projects} /> : null}
    </Page>
  );
}

const EMAIL_LABELS: Record<EmailField, string> = {
  smtp_server_name: 'SMTP server',
  smtp_port: 'SMTP port',
  smtp_server_username: 'SMTP user name',
  smtp_server_password: 'SMTP password (empty: unchanged)',
  smtp_default_sender: 'Sender address',
  smtp_default_recipient: 'Recipients (comma separated)',
  smtp_timeout: 'Timeout (seconds, 1–10)',
  smtp_email_enable: 'Send e-mail notifications',
};

/** The settings' e-mail fields as the form's values (the password is never shown). */
function emailFormFrom(settings: { name: string; value: unknown }[]): EmailForm {
  const f = Object.fromEntries(EMAIL_FIELDS.map((k) => [k, ''])) as EmailForm;
  for (const s of settings) if ((EMAIL_FIELDS as readonly string[]).includes(s.name) && s.name !== 'smtp_server_password') f[s.name as EmailField] = typeof s.value === 'string' ? s.value : String(s.value ?? '');
  return f;
}

/**
 * The e-mail settings of notifications, with a test message. The form mounts once the
 * settings are loaded, with them as its first state, so nothing typed is overwritten by the load.
 */
export function AdminEmail({ api }: { api: V1 }) {
  const { data, error } = useLoad(() => api.settings(), []);
  return (
    <Page title="E-mail settings">
      <AdminNav />
      <ErrorBox error={error} />
      {data ? <EmailSettingsForm api={api} initial={emailFormFrom(data)} /> : error ? null : <p aria-busy="true">Loading the settings…</p>}
    </Page>
  );
}

function EmailSettingsForm({ api, initial }: { api: V1; initial: EmailForm }) {
  const [f, setF] = useState<EmailForm>(initial);
  const [errors, setErrors] = useState<Partial<Record<EmailField, string>>>({});
  const [saved, setSaved] = useState<string | null>(null);
  const action = useAction();
  const save = async (e: Event) => {
    e.preventDefault();
    setSaved(null);
    const errs = validateEmailForm(f);
    setErrors(errs);
    if (Object.keys(errs).length > 0) {
      document.getElementById(Object.keys(errs)[0] ?? '')?.focus();
      return;
    }
    if (await action.run(() => api.saveSettings(emailSettings(f)))) setSaved('Saved.');
  };
  const test = async () => {
    setSaved(null);
    if (await action.run(() => api.testEmail())) setSaved('A test message was sent.');
  };
  return (
    <form onSubmit={save} noValidate aria-label="E-mail settings">
        {EMAIL_FIELDS.map((k) =>
          k === 'smtp_email_enable' ? (
            <div key={k} class="field check">
              <input id={k} type="checkbox" checked={f[k] === '1'} onChange={(e) => setF({ ...f, [k]: e.currentTarget.checked ? '1' : '0' })} />
              <label for={k}>{EMAIL_LABELS[k]}</label>
            </div>
          ) : (
            <Field key={k} id={k} label={EMAIL_LABELS[k]} error={errors[k]}>
              {(a) =>
                k === 'smtp_server_password' ? (
                  <input {...a} type="password" autocomplete="new-password" value={f[k]} onInput={(e) => setF({ ...f, [k]: e.currentTarget.value })} />
                ) : (
                  <input {...a} autocomplete="off" value={f[k]} onInput={(e) => setF({ ...f, [k]: e.currentTarget.value })} />
                )
              }
            </Field>
          ),
        )}
        <ErrorBox error={action.error} />
        {saved ? (
          <p role="status" class="ok-text">
            {saved}
          </p>
        ) : null}
        <div class="actions">
          <button type="submit" disabled={action.busy}>
            Save e-mail settings
          </button>
          <button type="button" class="secondary" disabled={action.busy} onClick={() => void test()}>
            Send a test e-mail
          </button>
        </div>
      </form>
  );
}
