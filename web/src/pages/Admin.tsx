import type { V1 } from '../api';
import { DataTable, ErrorBox, Page, Section, Status, Time, useAction, useLoad } from '../components';
import { Link } from '../router';
import { bytesText } from '../time';
import { Verifications } from './AdminVerify';

/** Links between the admin pages (admin role only: the nav hides them, the API refuses members anyway). */
export function AdminNav() {
  return (
    <nav aria-label="Administration" class="subnav">
      <Link href="/admin">Service health</Link>
      <Link href="/admin/quotas">Quotas and policies</Link>
      <Link href="/admin/email">E-mail settings</Link>
    </nav>
  );
}

function Scheduler({ api }: { api: V1 }) {
  const { data, error, reload } = useLoad(() => api.globalScheduler(), []);
  const action = useAction();
  return (
    <Section title="Global job scheduler" id="scheduler-h">
      <ErrorBox error={error ?? action.error} />
      {data !== undefined ? (
        <p>
          Scheduled snapshots are <strong data-testid="scheduler-state">{data ? 'enabled' : 'disabled'}</strong> for every project.{' '}
          <button type="button" disabled={action.busy} onClick={() => void action.run(async () => (await api.setGlobalScheduler(!data), reload()))}>
            {data ? 'Disable the scheduler' : 'Enable the scheduler'}
          </button>
        </p>
      ) : null}
    </Section>
  );
}

function Projects({ api }: { api: V1 }) {
  const { data, error } = useLoad(() => api.tenantsUsage(), []);
  return (
    <Section title="Projects" id="projects-h">
      <ErrorBox error={error} />
      {data ? (
        <DataTable heads={['Project', 'VMs protected', 'Storage used']} testId="projects">
              {Object.entries(data).map(([id, p]) => (
                <tr key={id}>
                  <td>
                    {p.tenant_name} <code class="muted">{id}</code>
                  </td>
                  <td>
                    {p.vms_protected} of {p.total_vms}
                  </td>
                  <td>{bytesText(p.used_capacity)}</td>
                </tr>
              ))}
        </DataTable>
      ) : null}
    </Section>
  );
}

function Nodes({ api }: { api: V1 }) {
  const { data, error } = useLoad(() => api.nodes(), []);
  return (
    <Section title="Nodes" id="nodes-h">
      <ErrorBox error={error} />
      {data ? (
        <DataTable heads={['Node', 'Role', 'Status', 'Jobs running', 'Load (1 min)', 'Last heartbeat', 'Version']} testId="nodes">
              {data.map((n) => (
                <tr key={n.id}>
                  <td>{n.node}</td>
                  <td>{n.role}</td>
                  <td>
                    <Status value={n.status} tone={n.status === 'Up' ? 'available' : n.status === 'Down' ? 'error' : 'locked'} />
                  </td>
                  <td>
                    {n.load.running_jobs} of {n.load.concurrency}
                  </td>
                  <td>{n.load.loadavg_1m === null ? '–' : n.load.loadavg_1m.toFixed(2)}</td>
                  <td>
                    <Time value={n.last_heartbeat_at} />
                  </td>
                  <td>{n.version}</td>
                </tr>
              ))}
        </DataTable>
      ) : null}
    </Section>
  );
}

function Jobs({ api }: { api: V1 }) {
  const { data, error } = useLoad(() => api.jobs(), []);
  const failed = data?.totals.failed ?? 0;
  return (
    <Section title="Job queue" id="jobs-h">
      <ErrorBox error={error} />
      {data ? (
        <>
          <p data-testid="job-totals">
            {['queued', 'running', 'done', 'failed'].map((s) => `${data.totals[s] ?? 0} ${s}`).join(' · ')}
            {failed > 0 ? <span class="error-text"> — failed jobs: see their snapshots' and restores' error messages</span> : null}
          </p>
          <DataTable heads={['Kind', 'State', 'Jobs']}>
                {data.jobs.map((j) => (
                  <tr key={`${j.kind}/${j.state}`}>
                    <td>{j.kind}</td>
                    <td>{j.state}</td>
                    <td>{j.count}</td>
                  </tr>
                ))}
          </DataTable>
        </>
      ) : null}
    </Section>
  );
}

function Targets({ api }: { api: V1 }) {
  const { data, error } = useLoad(() => api.storageUsage(), []);
  return (
    <Section title="Backup targets" id="targets-h">
      <ErrorBox error={error} />
      {data ? (
        <DataTable heads={['Target', 'Status', 'Full', 'Incremental', 'Used of capacity']}>
              {data.map((t, i) => (
                <tr key={i}>
                  <td>
                    {t.storage_type} {t['nfs_share(s)'][0]?.nfsshare ?? ''}
                  </td>
                  <td>{t['nfs_share(s)'][0]?.status ?? '–'}</td>
                  <td>{bytesText(t.full)}</td>
                  <td>{bytesText(t.incremental)}</td>
                  <td>
                    {bytesText(t.total_utilization)} {t.total_capacity ? `of ${bytesText(t.total_capacity)} (${t.total_utilization_percent ?? 0} %)` : '(capacity unknown)'}
                  </td>
                </tr>
              ))}
        </DataTable>
      ) : null}
    </Section>
  );
}

/** Service health: scheduler switch, projects, nodes, job queue, backup targets, repo verify runs. */
export function Admin({ api }: { api: V1 }) {
  return (
    <Page title="Administration">
      <AdminNav />
      <Scheduler api={api} />
      <Projects api={api} />
      <Nodes api={api} />
      <Jobs api={api} />
      <Targets api={api} />
      <Verifications api={api} />
    </Page>
  );
}
