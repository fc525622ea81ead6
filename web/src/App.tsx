import { useEffect, useMemo, useState } from 'preact/hooks';
import { logout, setUnauthorizedHandler, v1 } from './api';
import { Page } from './components';
import { Admin } from './pages/Admin';
import { Login } from './pages/Login';
import { NewWorkload } from './pages/NewWorkload';
import { RestorePage } from './pages/RestorePage';
import { WorkloadPage } from './pages/WorkloadPage';
import { Workloads } from './pages/Workloads';
import { Link, navigate, useRoute } from './router';
import { isAdmin, loadSession, saveSession, type Session } from './session';
import type { V1 } from './api';

function route(path: string, api: V1, admin: boolean) {
  if (path === '/' || path === '/workloads') return <Workloads api={api} />;
  if (path === '/workloads/new') return <NewWorkload api={api} />;
  let m = /^\/workloads\/([^/]+)$/.exec(path);
  if (m) return <WorkloadPage api={api} id={decodeURIComponent(m[1] ?? '')} />;
  m = /^\/restores\/([^/]+)$/.exec(path);
  if (m) return <RestorePage api={api} id={decodeURIComponent(m[1] ?? '')} />;
  if (path === '/admin' && admin) return <Admin api={api} />;
  return (
    <Page title="Not found">
      <p>
        There is no such page. <Link href="/">Go to the workloads.</Link>
      </p>
    </Page>
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
  if (!session || !api) {
    return (
      <Login
        notice={notice}
        onLogin={(s) => {
          saveSession(s);
          setNotice(null);
          setSession(s);
        }}
      />
    );
  }
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
          {admin ? <Link href="/admin">Admin</Link> : null}
        </nav>
        <div class="who">
          <span>
            {session.userName} · project {session.projectName}
          </span>
          <button type="button" onClick={() => void signOut()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main">{route(path, api, admin)}</main>
    </>
  );
}
