import { useState } from 'preact/hooks';
import { login } from '../api';
import { ErrorBox } from '../components';
import type { Session } from '../session';

export function Login({ onLogin, notice }: { onLogin: (s: Session) => void; notice?: string | null }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [project, setProject] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onLogin(await login(user.trim(), password, project.trim()));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <h1>Lifeboat</h1>
      <form onSubmit={submit} aria-label="Log in">
        {notice ? <p class="muted">{notice}</p> : null}
        <label for="login-user">User name</label>
        <input id="login-user" name="username" autocomplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
        <label for="login-password">Password</label>
        <input id="login-password" name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        <label for="login-project">Project</label>
        <input id="login-project" name="project" required value={project} onInput={(e) => setProject(e.currentTarget.value)} />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
