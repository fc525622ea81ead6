import { useEffect } from 'preact/hooks';
import type { V1 } from '../api';
import { DataTable, ErrorBox, NameCell, Page, Status, useLoad } from '../components';
import { Link } from '../router';

/** The project's VMs as the platform lists them, and which workload protects each. */
export function Instances({ api }: { api: V1 }) {
  const { data, error } = useLoad(async () => {
    const [vms, workloads] = await Promise.all([api.instances(), api.workloads()]);
    const by = new Map<string, { id: string; name: string }>();
    for (const w of workloads) for (const i of w.instances) by.set(i.id, { id: w.id, name: w.name });
    return { vms, by };
  }, []);
  // A link like /instances#vm-<id> (a restore's result) scrolls to and highlights that VM.
  useEffect(() => {
    if (data && location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
  }, [data]);
  return (
    <Page title="VMs">
      <ErrorBox error={error} />
      {!data && !error ? <p aria-busy="true">Loading…</p> : null}
      {data ? (
        <DataTable heads={['Name', 'Status', 'Networks', 'Disks', 'Protected by']} caption="VMs of this project">
              {data.vms.map((v) => {
                const w = data.by.get(v.id);
                return (
                  <tr key={v.id} id={`vm-${v.id}`} class="target-row">
                    <NameCell name={v.name} id={v.id} />
                    <td>
                      <Status value={v.status} />
                    </td>
                    <td>{v.networks.map((n) => `${n.name} ${n.ip_address}`).join(', ') || '–'}</td>
                    <td>{v.disks.map((d) => d.device).join(', ')}</td>
                    <td>{w ? <Link href={`/workloads/${w.id}`}>{w.name}</Link> : <span class="status-error">not protected</span>}</td>
                  </tr>
                );
              })}
        </DataTable>
      ) : null}
    </Page>
  );
}
