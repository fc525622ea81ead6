import type { ComponentChildren } from 'preact';
import { useEffect, useErrorBoundary, useMemo, useState } from 'preact/hooks';
import { logout, setUnauthorizedHandler, switchProject, userProjects, v1 } from './api';
import { ErrorBox, Page } from './components';
import { Admin } from './pages/Admin';
import { AdminEmail, AdminQuotas } from './pages/AdminForms';
import { Instances } from './pages/Instances';
import { Login } from './pages/Login';
import { RestorePage } from './pages/RestorePage';
import { RestoreWizard } from './pages/RestoreWizard';
import { SnapshotPage } from './pages/SnapshotPage';
import { WorkloadFormPage } from './pages/WorkloadForm';
import { WorkloadPage } from './pages/WorkloadPage';
import { Workloads } from './pages/Workloads';
import { Link, navigate, useRoute } from './router';
import { isAdmin, loadSession, saveSession, type Session } from './session';
import type { V1 } from './api';

const ADMIN_PAGES: Record<string, (p: { api: V1 }) => preact.JSX.Element> = { '/admin': Admin, '/admin/quotas': AdminQuotas, '/admin/email': AdminEmail };

/** Page paths with one id: pattern → page. */
const ID_PAGES: [RegExp, (p: { api: V1; id: string }) => preact.JSX.Element][] = [
  [/^\/workloads\/([^/]+)\/edit$/, WorkloadFormPage],
  [/^\/workloads\/([^/]+)$/, WorkloadPage],
  [/^\/snapshots\/([^/]+)\/restore$/, RestoreWizard],
  [/^\/snapshots\/([^/]+)$/, SnapshotPage],
  [/^\/restores\/([^/]+)$/, RestorePage],
];

function route(path: string, api: V1, admin: boolean) {
  if (path === '/' || path === '/workloads') return <Workloads api={api} />;
  if (path === '/workloads/new') return <WorkloadFormPage api={api} />;
  if (path === '/instances') return <Instances api={api} />;
  const AdminPage = admin ? ADMIN_PAGES[path] : undefined;
  if (AdminPage) return <AdminPage api={api} />;
  for (const [re, P] of ID_PAGES) {
    const m = re.exec(path);
    if (m) return <P api={api} id={decodeURIComponent(m[1] ?? '')} />;
  }
  return (
    <Page title="Not found">
      <p>
        There is no such page. <Link href="/">Go to the workloads.</Link>
      </p>
    </Page>
  );
}

/**
 * A page that fails while rendering shows a plain message instead of a blank screen (never a
 * stack trace); the error goes to the console for developers. Keyed by path: navigating resets it.
 */
function PageBoundary({ children }: { children: ComponentChildren }) {
  const [error, reset] = useErrorBoundary((e: unknown) => console.error(e));
  if (!error) return <>{children}</>;
  return (
    <Page title="Something went wrong">
      <p role="alert">
        This page could not be shown.{' '}
        <button type="button" onClick={reset}>
          Try again
        </button>{' '}
        or <Link href="/">go to the workloads</Link>.
      </p>
    </Page>
  );
}

/** The project switch: shown when the user holds roles on more than one project. */
function ProjectSwitch({ session, onSwitch }: { session: Session; onSwitch: (s: Session) => void }) {
  const [projects, setProjects] = useState<{ id: string; name: string }[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    userProjects(session).then(setProjects, () => setProjects([]));
  }, [session.token]);
  if (projects.length < 2) return <span>project {session.projectName}</span>;
  const change = async (id: string) => {
    try {
      onSwitch(await switchProject(session, id));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <span class="inline">
      <label for="project-switch">Project</label>
      <select id="project-switch" value={session.projectId} onChange={(e) => void change(e.currentTarget.value)}>
        {projects.map((p) => (
          <option key={p.id} value={p.id}>
            {p.name}
          </option>
        ))}
      </select>
      <ErrorBox error={error} />
    </span>
  );
}

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession());
  const [notice, setNotice] = useState<string | null>(null);
  const path = useRoute();
  useEffect(() => {
    setUnauthorizedHandler(() => {
      saveSession(null);
      setSession(null);
      setNotice('Your session ended: please log in again.');
    });
  }, []);
  const api = useMemo(() => (session ? v1(session) : null), [session]);
  const enter = (s: Session) => {
    saveSession(s);
    setNotice(null);
    setSession(s);
  };
  if (!session || !api) return <Login notice={notice} onLogin={enter} />;
  const admin = isAdmin(session);
  const signOut = async () => {
    await logout(session);
    saveSession(null);
    setSession(null);
    navigate('/');
  };
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <nav aria-label="Main">
          <strong class="brand">Lifeboat</strong>
          <Link href="/">Workloads</Link>
          <Link href="/instances">VMs</Link>
          {admin ? <Link href="/admin">Admin</Link> : null}
        </nav>
        <div class="who">
          <span>{session.userName} · </span>
          <ProjectSwitch
            session={session}
            onSwitch={(s) => {
              enter(s);
              navigate('/');
            }}
          />
          <button type="button" onClick={() => void signOut()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" key={session.projectId}>
        <PageBoundary key={path}>{route(path, api, admin)}</PageBoundary>
      </main>
    </>
  );
}
