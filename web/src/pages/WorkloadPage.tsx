import { useEffect, useState } from 'preact/hooks';
import { TERMINAL, type SnapshotDetail, type V1, type WorkloadDetail } from '../api';
import { DataTable, ErrorBox, Page, ProgressBar, Status, Time, useLoad, usePoll } from '../components';
import { Link } from '../router';
import { bytesText, durationText } from '../time';
import { StorageSection } from './Storage';

function Summary({ w }: { w: WorkloadDetail }) {
  const j = w.jobschedule;
  return (
    <dl class="summary">
      <dt>Status</dt>
      <dd>
        <Status value={w.status} />
        {w.error_msg ? <span class="error-text"> {w.error_msg}</span> : null}
      </dd>
      <dt>VMs</dt>
      <dd>{w.instances.map((i) => `${i.name} (${i.id})`).join(', ')}</dd>
      <dt>Schedule</dt>
      <dd>
        {j.enabled ? `every ${j.interval} from ${j.start_time}${j.timezone ? ` ${j.timezone}` : ''}` : 'off'}; keep {j.retention_policy_value} ({j.retention_policy_type})
      </dd>
      <dt>Storage used</dt>
      <dd>
        {bytesText(w.storage_usage.usage)} (full {w.storage_usage.full.snap_count} / {bytesText(w.storage_usage.full.usage)}, incremental {w.storage_usage.incremental.snap_count} /{' '}
        {bytesText(w.storage_usage.incremental.usage)})
      </dd>
    </dl>
  );
}

function SnapshotRow({ s, onDelete, restoreBusy }: { s: SnapshotDetail; onDelete: (s: SnapshotDetail) => void; restoreBusy: boolean }) {
  return (
    <tr>
      <td>
        <Time value={s.created_at} />
      </td>
      <td>
        <Link href={`/snapshots/${s.id}`}>{s.name}</Link>
      </td>
      <td>{s.snapshot_type}</td>
      <td>
        <Status value={s.status} />
        {s.error_msg ? <div class="error-text">{s.error_msg}</div> : null}
        {s.warning_msg ? <div class="muted">{s.warning_msg}</div> : null}
      </td>
      <td>{bytesText(s.size)}</td>
      <td>{TERMINAL.has(s.status) ? durationText(s.time_taken) : `${s.progress_percent} %`}</td>
      <td>
        {s.status === 'available' ? (
          <Link href={`/snapshots/${s.id}/restore`} class="button" label={`Restore snapshot ${s.name}`}>
            Restore…
          </Link>
        ) : null}{' '}
        {TERMINAL.has(s.status) && s.status !== 'deleted' ? (
          <button type="button" class="secondary" disabled={restoreBusy} onClick={() => onDelete(s)} aria-label={`Delete snapshot ${s.name}`}>
            Delete
          </button>
        ) : null}
      </td>
    </tr>
  );
}

function SnapshotTable({ snaps, onDelete, busy }: { snaps: SnapshotDetail[]; onDelete: (s: SnapshotDetail) => void; busy: boolean }) {
  return (
    <DataTable heads={['Taken', 'Name', 'Type', 'Status', 'Size', 'Duration', '']} caption="Snapshots of this workload, newest first" testId="snapshots">
          {snaps.map((s) => (
            <SnapshotRow key={s.id} s={s} onDelete={onDelete} restoreBusy={busy} />
          ))}
    </DataTable>
  );
}

export function WorkloadPage({ api, id }: { api: V1; id: string }) {
  const { data, error, reload } = useLoad(async () => {
    const [w, snaps] = await Promise.all([api.workload(id), api.workloadSnapshots(id)]);
    return { w, snaps };
  }, [id]);
  const [running, setRunning] = useState<SnapshotDetail | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  // A snapshot already running when the page opens is followed too.
  useEffect(() => {
    const r = data?.snaps.find((s) => !TERMINAL.has(s.status));
    if (r && (!running || TERMINAL.has(running.status))) setRunning(r);
  }, [data]);

  usePoll(running !== null && !TERMINAL.has(running.status), 400, async () => {
    if (!running) return true;
    const s = await api.snapshot(running.id);
    setRunning(s);
    if (TERMINAL.has(s.status)) reload();
    return TERMINAL.has(s.status);
  });
  // A new workload is "creating" for a moment: refresh until it settles.
  usePoll(data?.w.status === 'creating', 500, async () => {
    const w = await api.workload(id);
    if (w.status !== 'creating') reload();
    return w.status !== 'creating';
  });

  /** Runs one user action: buttons disabled meanwhile, its error shown. */
  const act = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setActionError(null);
    try {
      await fn();
    } catch (e) {
      setActionError(e);
    } finally {
      setBusy(false);
    }
  };
  const take = async (full: boolean) => {
    const s = await api.takeSnapshot(id, full, `${full ? 'full' : 'incremental'} ${new Date().toISOString().slice(0, 19)}`);
    setRunning({ ...s, finished_at: null, size: 0, uploaded_size: 0, progress_percent: 0, progress_msg: null, warning_msg: null, error_msg: null, time_taken: 0 });
    reload();
  };
  const cancel = (s: SnapshotDetail) => act(() => api.cancelSnapshot(s.id));

  /** Deletion is irreversible: the user confirms it. The list refreshes until the snapshot is gone. */
  const remove = (s: SnapshotDetail) =>
    confirm(`Delete snapshot ${s.name}? Its backup data is removed and cannot be restored afterwards.`) ? act(() => api.deleteSnapshot(s.id).then(reload)) : Promise.resolve();
  const deleting = data?.snaps.some((s) => s.status === 'deleting') ?? false;
  usePoll(deleting, 500, async () => {
    const snaps = await api.workloadSnapshots(id);
    const done = !snaps.some((s) => s.status === 'deleting');
    if (done) reload();
    return done;
  });

  const w = data?.w;
  const canSnapshot = w?.status === 'available' && !busy && (!running || TERMINAL.has(running.status));
  return (
    <Page
      title={w ? `Workload ${w.name}` : 'Workload'}
      actions={
        w ? (
          <Link href={`/workloads/${id}/edit`} class="button secondary">
            Edit workload
          </Link>
        ) : null
      }
    >
      <ErrorBox error={error} />
      {w ? <Summary w={w} /> : <p aria-busy="true">Loading…</p>}
      <div class="actions">
        <button type="button" disabled={!canSnapshot} onClick={() => void act(() => take(true))}>
          Take full snapshot
        </button>
        <button type="button" disabled={!canSnapshot} onClick={() => void act(() => take(false))}>
          Take incremental snapshot
        </button>
        {w ? (
          <button type="button" class="secondary" disabled={busy} onClick={() => void act(() => (w.jobschedule.enabled ? api.pause(id) : api.resume(id)).then(reload))}>
            {w.jobschedule.enabled ? 'Pause schedule' : 'Resume schedule'}
          </button>
        ) : null}
      </div>
      <ErrorBox error={actionError} />
      {running ? (
        <div aria-live="polite">
          <ProgressBar label={`Snapshot ${running.name}: ${running.status}`} percent={running.progress_percent} message={running.error_msg ?? running.progress_msg} />
          {!TERMINAL.has(running.status) && running.status !== 'cancelling' ? (
            <button type="button" class="secondary" disabled={busy} onClick={() => void cancel(running)}>
              Cancel snapshot
            </button>
          ) : null}
        </div>
      ) : null}
      <h2>Snapshots</h2>
      {data && data.snaps.length === 0 ? <p>No snapshots yet.</p> : null}
      {data && data.snaps.length > 0 ? <SnapshotTable snaps={data.snaps} onDelete={(x) => void remove(x)} busy={busy} /> : null}
      {w && data ? <StorageSection w={w} snaps={data.snaps} /> : null}
    </Page>
  );
}
