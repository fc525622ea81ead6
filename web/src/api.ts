import type { Session } from './session';
import type { WorkloadCreateBody } from './validation';

/**
 * The dashboard's only way to the service: the public Keystone v3 subset and the v1 API on
 * the same origin, with the session's token. No private endpoints.
 */

/** An API answer that was not 2xx, with the fault's message (never a stack or a path). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface WorkloadDetail {
  id: string;
  name: string;
  description: string;
  status: string;
  created_at: string;
  error_msg: string | null;
  instances: { id: string; name: string }[];
  storage_usage: { usage: number; full: { snap_count: number; usage: number }; incremental: { snap_count: number; usage: number } };
  jobschedule: { enabled: boolean; interval: string; start_time: string; retention_policy_type: string; retention_policy_value: string; fullbackup_interval: string; timezone?: string; nextrun?: number; global_jobscheduler: boolean };
}

export interface SnapshotSummary {
  id: string;
  created_at: string;
  status: string;
  snapshot_type: string;
  workload_id: string;
  name: string;
}

export interface SnapshotDetail extends SnapshotSummary {
  finished_at: string | null;
  size: number;
  uploaded_size: number;
  progress_percent: number;
  progress_msg: string | null;
  warning_msg: string | null;
  error_msg: string | null;
  time_taken: number;
}

export interface RestoreDetail {
  id: string;
  created_at: string;
  finished_at: string | null;
  status: string;
  snapshot_id: string;
  workload_id: string;
  name: string;
  size: number;
  progress_percent: number;
  progress_msg: string | null;
  error_msg: string | null;
  time_taken: number;
  instances: { id: string; name: string; status: string }[];
}

export interface Setting {
  name: string;
  value: unknown;
  description: string | null;
  category: string | null;
}

/** Statuses after which a snapshot or restore changes no more. */
export const TERMINAL = new Set(['available', 'error', 'cancelled', 'deleted']);

/** The message of an OpenStack fault body ({"badRequest": {"code", "message"}}), or a generic one. */
export function faultMessage(status: number, body: unknown): string {
  if (body && typeof body === 'object') {
    for (const v of Object.values(body as Record<string, unknown>)) {
      if (v && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') return (v as { message: string }).message;
    }
  }
  return `The service answered ${status}.`;
}

async function readJson(r: Response): Promise<unknown> {
  const text = await r.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Called when the token is refused (expired or revoked): the app returns to the login page. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

async function request<T>(method: string, url: string, token: string | null, body?: unknown): Promise<{ status: number; headers: Headers; body: T }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers['x-auth-token'] = token;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let r: Response;
  try {
    r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'The service cannot be reached.');
  }
  const json = await readJson(r);
  if (!r.ok) {
    if (r.status === 401 && token) onUnauthorized();
    throw new ApiError(r.status, faultMessage(r.status, json));
  }
  return { status: r.status, headers: r.headers, body: json as T };
}

interface TokenBody {
  token: { expires_at: string; roles?: { name: string }[]; project?: { id: string; name: string }; user: { name: string } };
}

/** Password authentication scoped to a project by name (Default domain). */
export async function login(user: string, password: string, project: string): Promise<Session> {
  const auth = {
    identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password } } },
    scope: { project: { name: project, domain: { name: 'Default' } } },
  };
  const r = await request<TokenBody>('POST', '/identity/v3/auth/tokens', null, { auth });
  const token = r.headers.get('x-subject-token');
  const t = r.body.token;
  if (!token || !t.project) throw new ApiError(500, 'The identity service answered without a token.');
  return { token, userName: t.user.name, projectId: t.project.id, projectName: t.project.name, roles: (t.roles ?? []).map((x) => x.name), expiresAt: t.expires_at };
}

/** Revokes the token (best effort: the session is dropped either way). */
export async function logout(s: Session): Promise<void> {
  await fetch('/identity/v3/auth/tokens', { method: 'DELETE', headers: { 'x-auth-token': s.token, 'x-subject-token': s.token } }).catch(() => undefined);
}

/** Calls of the v1 API of the session's project. */
export function v1(s: Session) {
  const call = async <T>(method: string, path: string, body?: unknown) => (await request<T>(method, `/v1/${s.projectId}${path}`, s.token, body)).body;
  return {
    workloads: async () => (await call<{ workloads: WorkloadDetail[] }>('GET', '/workloads/detail')).workloads,
    workload: async (id: string) => (await call<{ workload: WorkloadDetail }>('GET', `/workloads/${encodeURIComponent(id)}`)).workload,
    createWorkload: async (body: WorkloadCreateBody) => (await call<{ workload: { id: string } }>('POST', '/workloads', body)).workload,
    pause: async (wid: string) => void (await call<unknown>('POST', `/workloads/${encodeURIComponent(wid)}/pause`)),
    resume: async (wid: string) => void (await call<unknown>('POST', `/workloads/${encodeURIComponent(wid)}/resume`)),
    snapshots: async () => (await call<{ snapshots: SnapshotSummary[] }>('GET', '/snapshots')).snapshots,
    workloadSnapshots: async (wid: string) => (await call<{ snapshots: SnapshotDetail[] }>('GET', `/workloads/${encodeURIComponent(wid)}/snapshots/detail`)).snapshots,
    snapshot: async (sid: string) => (await call<{ snapshot: SnapshotDetail }>('GET', `/snapshots/${encodeURIComponent(sid)}`)).snapshot,
    takeSnapshot: async (wid: string, full: boolean, name: string) =>
      (await call<{ snapshot: SnapshotSummary }>('POST', `/workloads/${encodeURIComponent(wid)}${full ? '?full=1' : ''}`, { snapshot: { name, description: '' } })).snapshot,
    deleteSnapshot: async (sid: string) => void (await call<unknown>('DELETE', `/snapshots/${encodeURIComponent(sid)}`)),
    oneClickRestore: async (sid: string, name: string) =>
      (
        await call<{ restore: RestoreDetail }>('POST', `/snapshots/${encodeURIComponent(sid)}`, {
          restore: { name, description: '', options: { name, description: '', type: 'openstack', restore_type: 'oneclick', oneclickrestore: true, openstack: { instances: [], zone: '' } } },
        })
      ).restore,
    restore: async (rid: string) => (await call<{ restore: RestoreDetail }>('GET', `/restores/${encodeURIComponent(rid)}`)).restore,
    globalScheduler: async () => (await call<{ global_job_scheduler: boolean }>('GET', '/global_job_scheduler')).global_job_scheduler,
    setGlobalScheduler: async (on: boolean) => (await call<{ global_job_scheduler: boolean }>('POST', `/global_job_scheduler/${on ? 'enable' : 'disable'}`)).global_job_scheduler,
    settings: async () => (await call<{ settings: Setting[] }>('GET', '/settings')).settings,
  };
}
export type V1 = ReturnType<typeof v1>;
