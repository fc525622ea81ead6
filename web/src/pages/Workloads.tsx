import type { SnapshotSummary, V1, WorkloadDetail } from '../api';
import { DataTable, ErrorBox, Page, Status, Time, useLoad } from '../components';
import { Link } from '../router';
import { bytesText, durationText, parseWireTime } from '../time';

/** The newest snapshot of each workload, from one list call. */
function latestByWorkload(snaps: SnapshotSummary[]): Map<string, SnapshotSummary> {
  const out = new Map<string, SnapshotSummary>();
  for (const s of snaps) {
    const cur = out.get(s.workload_id);
    if (!cur || (parseWireTime(s.created_at)?.getTime() ?? 0) > (parseWireTime(cur.created_at)?.getTime() ?? 0)) out.set(s.workload_id, s);
  }
  return out;
}

function Schedule({ w }: { w: WorkloadDetail }) {
  const j = w.jobschedule;
  if (!j.enabled) return <span class="muted">{j.global_jobscheduler ? 'off' : 'off (scheduler disabled)'}</span>;
  return (
    <span>
      every {j.interval}
      {typeof j.nextrun === 'number' ? <span class="muted"> · next in {durationText(j.nextrun)}</span> : null}
    </span>
  );
}

export function Workloads({ api }: { api: V1 }) {
  const { data, error } = useLoad(async () => {
    const [workloads, snaps] = await Promise.all([api.workloads(), api.snapshots()]);
    return { workloads, latest: latestByWorkload(snaps) };
  }, []);
  return (
    <Page
      title="Workloads"
      actions={
        <Link href="/workloads/new" class="button">
          New workload
        </Link>
      }
    >
      <ErrorBox error={error} />
      {!data && !error ? <p aria-busy="true">Loading…</p> : null}
      {data && data.workloads.length === 0 ? <p>No workloads yet: create one to protect VMs.</p> : null}
      {data && data.workloads.length > 0 ? (
        <DataTable heads={['Name', 'Status', 'VMs', 'Schedule', 'Last snapshot', 'Storage used']} caption="Workloads of this project">
              {data.workloads.map((w) => {
                const last = data.latest.get(w.id);
                return (
                  <tr key={w.id}>
                    <td>
                      <Link href={`/workloads/${w.id}`}>{w.name}</Link>
                    </td>
                    <td>
                      <Status value={w.status} />
                    </td>
                    <td>{w.instances.map((i) => i.name).join(', ') || '–'}</td>
                    <td>
                      <Schedule w={w} />
                    </td>
                    <td>
                      {last ? (
                        <span>
                          <Time value={last.created_at} /> · {last.snapshot_type} · <Status value={last.status} />
                        </span>
                      ) : (
                        <span class="muted">never</span>
                      )}
                    </td>
                    <td>{bytesText(w.storage_usage?.usage)}</td>
                  </tr>
                );
              })}
        </DataTable>
      ) : null}
    </Page>
  );
}
