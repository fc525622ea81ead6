import { useState } from 'preact/hooks';
import { TERMINAL, type SnapshotDetail, type V1 } from '../api';
import { DataTable, ErrorBox, NameCell, Page, ProgressBar, Section, Status, Time, useAction, usePoll } from '../components';
import { Link, navigate } from '../router';
import { bytesText, durationText } from '../time';
import { FileBrowser } from './FileBrowser';

/** The GUIDE's snapshot fields as a description list. */
function Fields({ s }: { s: SnapshotDetail }) {
  return (
    <dl class="summary">
      <dt>Status</dt>
      <dd>
        <Status value={s.status} />
        {s.error_msg ? <span class="error-text"> {s.error_msg}</span> : null}
      </dd>
      {s.warning_msg ? (
        <>
          <dt>Warning</dt>
          <dd>{s.warning_msg}</dd>
        </>
      ) : null}
      <dt>Type</dt>
      <dd>{s.snapshot_type}</dd>
      <dt>Taken</dt>
      <dd>
        <Time value={s.created_at} />
      </dd>
      <dt>Finished</dt>
      <dd>
        <Time value={s.finished_at} />
      </dd>
      <dt>Duration</dt>
      <dd>{durationText(s.time_taken)}</dd>
      <dt>Stored</dt>
      <dd>{bytesText(s.size)}</dd>
      <dt>Restore size</dt>
      <dd>{bytesText(s.restore_size)}</dd>
      <dt>Host</dt>
      <dd>{s.host || '–'}</dd>
      <dt>Description</dt>
      <dd>{s.description || '–'}</dd>
      <dt>Workload</dt>
      <dd>
        <Link href={`/workloads/${s.workload_id}`}>back to the workload</Link>
      </dd>
    </dl>
  );
}

function Vms({ s }: { s: SnapshotDetail }) {
  const vms = s.instances ?? [];
  if (vms.length === 0) return <p class="muted">No VM recorded yet.</p>;
  return (
    <DataTable heads={['VM', 'Flavor', 'Networks', 'Disks']}>
          {vms.map((v) => (
            <tr key={v.id}>
              <NameCell name={v.name} id={v.id} />
              <td>
                {v.flavor.vcpus} vCPU · {v.flavor.ram} MiB
              </td>
              <td>{v.nics.map((n) => `${n.network.name} ${n.ip_address}`).join(', ') || '–'}</td>
              <td>{v.vdisks.map((d) => `${d.volume_mountpoint} (${bytesText(d.restore_size)})`).join(', ')}</td>
            </tr>
          ))}
    </DataTable>
  );
}

/** One snapshot: its fields, live progress while it runs, cancel, delete, restore and file browsing. */
export function SnapshotPage({ api, id }: { api: V1; id: string }) {
  const [s, setS] = useState<SnapshotDetail | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const action = useAction();
  const settled = s !== null && (TERMINAL.has(s.status) || s.status === 'mounted');
  usePoll(!settled, 400, async () => {
    try {
      const x = await api.snapshot(id);
      setS(x);
      setLoadError(null);
      return TERMINAL.has(x.status) || x.status === 'mounted';
    } catch (e) {
      setLoadError(e);
      return true;
    }
  });
  /** Back to polling until the snapshot settles again (after cancel, mount, dismount). */
  const refresh = () => setS((cur) => (cur ? { ...cur, status: 'refreshing' } : cur));
  const remove = async () => {
    if (!s || !confirm(`Delete snapshot ${s.name}? Its backup data is removed and cannot be restored afterwards.`)) return;
    if (await action.run(() => api.deleteSnapshot(s.id))) navigate(`/workloads/${s.workload_id}`);
  };
  const running = s !== null && !TERMINAL.has(s.status) && !['mounted', 'mounting', 'deleting', 'cancelling'].includes(s.status);
  return (
    <Page title={s ? `Snapshot ${s.name}` : 'Snapshot'}>
      <ErrorBox error={loadError} />
      {!s && !loadError ? <p aria-busy="true">Loading…</p> : null}
      {s ? (
        <>
          {!TERMINAL.has(s.status) ? (
            <div aria-live="polite">
              <ProgressBar label={`Snapshot ${s.name}: ${s.status}`} percent={s.progress_percent} message={s.progress_msg} />
            </div>
          ) : null}
          <div class="actions">
            {s.status === 'available' ? (
              <Link href={`/snapshots/${s.id}/restore`} class="button">
                Restore…
              </Link>
            ) : null}
            {running ? (
              <button type="button" class="secondary" disabled={action.busy} onClick={() => void action.run(async () => (await api.cancelSnapshot(s.id), refresh()))}>
                Cancel snapshot
              </button>
            ) : null}
            {TERMINAL.has(s.status) && s.status !== 'deleted' ? (
              <button type="button" class="danger" disabled={action.busy} onClick={() => void remove()}>
                Delete snapshot
              </button>
            ) : null}
          </div>
          <ErrorBox error={action.error} />
          <Fields s={s} />
          <Section title="VMs in this snapshot" id="vms-h">
            <Vms s={s} />
          </Section>
          <FileBrowser api={api} snapshot={s} onChange={refresh} />
        </>
      ) : null}
    </Page>
  );
}
