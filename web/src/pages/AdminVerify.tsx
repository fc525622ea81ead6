import { useState } from 'preact/hooks';
import type { RepoVerification, V1 } from '../api';
import { validateVerifyPercent } from '../admin-forms';
import { DataTable, ErrorBox, Field, ProgressBar, Section, Status, Time, useAction, useLoad, usePoll } from '../components';
import { bytesText } from '../time';

const TONE: Record<RepoVerification['status'], string> = { queued: 'locked', running: 'locked', ok: 'available', damaged: 'error', error: 'error' };
const running = (v: RepoVerification) => v.status === 'queued' || v.status === 'running';

function Outcome({ v }: { v: RepoVerification }) {
  if (running(v)) return <ProgressBar label={`Verify of ${v.target}`} percent={v.progress_percent} />;
  if (v.status === 'error') return <span class="error-text">{v.error_msg}</span>;
  if (v.problem_count === 0) return <span>No problems</span>;
  return (
    <details>
      <summary>
        {v.problem_count} problem(s); {v.failed_snapshots.length} snapshot(s) affected
      </summary>
      <ul class="problems">
        {v.problems.map((p, i) => (
          <li key={i}>
            <code>{p}</code>
          </li>
        ))}
      </ul>
    </details>
  );
}

/**
 * `repo verify` runs of the backup targets (the admin API's history: runs started here and by
 * `lifeboat repo verify`), with a form to start one; polls while one is running.
 */
export function Verifications({ api }: { api: V1 }) {
  const { data, error, reload } = useLoad(() => api.verifications(), []);
  const [target, setTarget] = useState('');
  const [percent, setPercent] = useState('100');
  const [err, setErr] = useState<string | null>(null);
  const action = useAction();
  const busy = data?.repo_verifications.some(running) ?? false;
  usePoll(busy, 1000, async () => (reload(), false));
  const start = async (e: Event) => {
    e.preventDefault();
    const v = validateVerifyPercent(percent);
    setErr(v);
    if (v) return document.getElementById('verify-percent')?.focus();
    await action.run(async () => (await api.startVerification(target || data?.targets[0] || 'default', Number(percent.replace('%', '').trim())), reload()));
  };
  return (
    <Section title="Repository verification" id="verify-h">
      <ErrorBox error={error} />
      {data ? (
        <>
          <form class="inline-form fields-row" onSubmit={start} noValidate aria-label="Verify a backup target">
            <Field id="verify-target" label="Backup target">
              {(a) => (
                <select {...a} value={target || data.targets[0]} onChange={(e) => setTarget(e.currentTarget.value)}>
                  {data.targets.map((t) => (
                    <option key={t} value={t}>
                      {t}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field id="verify-percent" label="Read the data of (% of packs)" error={err ?? undefined}>
              {(a) => <input {...a} inputMode="decimal" size={6} value={percent} onInput={(e) => setPercent(e.currentTarget.value)} />}
            </Field>
            <button type="submit" disabled={action.busy}>
              Verify now
            </button>
          </form>
          <ErrorBox error={action.error} />
          {data.repo_verifications.length === 0 ? <p>No verify has run yet.</p> : null}
          <DataTable heads={['Started', 'Target', 'Scope', 'By', 'Status', 'Checked', 'Result']} testId="verifications">
            {data.repo_verifications.map((v) => (
              <tr key={v.id}>
                <td>
                  <Time value={v.created_at} />
                </td>
                <td>{v.target}</td>
                <td>{v.scope === 'full' ? 'complete' : `${v.read_data_subset_percent} % of packs`}</td>
                <td>{v.source === 'cli' ? 'command line' : 'API'}</td>
                <td>
                  <Status value={v.status} tone={TONE[v.status]} />
                </td>
                <td>
                  {v.snapshots} snapshots, {v.disks} disks, {v.chunks_checked} chunks ({bytesText(v.bytes_read)} read)
                </td>
                <td>
                  <Outcome v={v} />
                </td>
              </tr>
            ))}
          </DataTable>
        </>
      ) : null}
    </Section>
  );
}
