import { useState } from 'preact/hooks';
import { TERMINAL, type RestoreDetail, type V1 } from '../api';
import { ErrorBox, Page, ProgressBar, Status, Time, useAction, usePoll } from '../components';
import { Link } from '../router';
import { bytesText, durationText } from '../time';

/** A restore's progress (polling its detail) and, when done, its result: the new instances. */
export function RestorePage({ api, id }: { api: V1; id: string }) {
  const [r, setR] = useState<RestoreDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const cancel = useAction();
  usePoll(r === null || !TERMINAL.has(r.status), 400, async () => {
    try {
      const x = await api.restore(id);
      setR(x);
      setError(null);
      return TERMINAL.has(x.status);
    } catch (e) {
      setError(e);
      return true;
    }
  });
  return (
    <Page title={r ? r.name : 'Restore'}>
      <ErrorBox error={error} />
      {r ? (
        <>
          <dl class="summary">
            <dt>Status</dt>
            <dd>
              <Status value={r.status} />
              {r.error_msg ? <span class="error-text"> {r.error_msg}</span> : null}
            </dd>
            <dt>Started</dt>
            <dd>
              <Time value={r.created_at} />
            </dd>
            <dt>Finished</dt>
            <dd>
              <Time value={r.finished_at} />
            </dd>
            <dt>Restored</dt>
            <dd>
              {bytesText(r.size)} in {durationText(r.time_taken)}
            </dd>
            <dt>Workload</dt>
            <dd>
              <Link href={`/workloads/${r.workload_id}`}>back to the workload</Link>
            </dd>
          </dl>
          <div aria-live="polite">
            <ProgressBar label={`Restore: ${r.status}`} percent={r.progress_percent} message={r.progress_msg} />
          </div>
          {!TERMINAL.has(r.status) && r.status !== 'cancelling' ? (
            <button type="button" class="secondary" disabled={cancel.busy} onClick={() => void cancel.run(() => api.cancelRestore(r.id))}>
              Cancel restore
            </button>
          ) : null}
          <ErrorBox error={cancel.error} />
          <h2>New instances</h2>
          {r.instances.length === 0 ? (
            <p>{TERMINAL.has(r.status) ? 'None.' : 'Not yet.'}</p>
          ) : (
            <ul class="instances">
              {r.instances.map((i) => (
                <li key={i.id}>
                  <Link href={`/instances#vm-${i.id}`}>
                    <strong>{i.name}</strong>
                  </Link>{' '}
                  <code>{i.id}</code> <Status value={i.status} />
                </li>
              ))}
            </ul>
          )}
        </>
      ) : (
        <p aria-busy="true">Loading…</p>
      )}
    </Page>
  );
}
