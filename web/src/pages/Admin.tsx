import { useState } from 'preact/hooks';
import type { V1 } from '../api';
import { ErrorBox, Page, useLoad } from '../components';

/** Admin only (the nav hides it from members, and the API refuses them anyway). */
export function Admin({ api }: { api: V1 }) {
  const { data, error, reload } = useLoad(async () => {
    const [scheduler, settings] = await Promise.all([api.globalScheduler(), api.settings()]);
    return { scheduler, settings };
  }, []);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toggle = async () => {
    if (!data) return;
    setBusy(true);
    setActionError(null);
    try {
      await api.setGlobalScheduler(!data.scheduler);
      reload();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Page title="Administration">
      <ErrorBox error={error} />
      <h2>Global job scheduler</h2>
      {data ? (
        <p>
          Scheduled snapshots are <strong data-testid="scheduler-state">{data.scheduler ? 'enabled' : 'disabled'}</strong> for every project.{' '}
          <button type="button" disabled={busy} onClick={() => void toggle()}>
            {data.scheduler ? 'Disable the scheduler' : 'Enable the scheduler'}
          </button>
        </p>
      ) : null}
      <ErrorBox error={actionError} />
      <h2>Settings</h2>
      {data && data.settings.length === 0 ? <p>No settings stored.</p> : null}
      {data && data.settings.length > 0 ? (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Value</th>
                <th scope="col">Category</th>
                <th scope="col">Description</th>
              </tr>
            </thead>
            <tbody>
              {data.settings.map((s) => (
                <tr key={s.name}>
                  <td>{s.name}</td>
                  <td>{typeof s.value === 'string' ? s.value : JSON.stringify(s.value)}</td>
                  <td>{s.category ?? '–'}</td>
                  <td>{s.description ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Page>
  );
}
