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

export interface SnapshotVdisk {
  volume_mountpoint: string;
  resource_id: string;
  restore_size: number;
  volume_id?: string;
  volume_type?: string;
  volume_name?: string;
  image_name?: string;
}

export interface SnapshotNic {
  mac_address: string;
  ip_address: string;
  network: { id: string; name: string; subnet?: { id: string; name: string; cidr: string } };
}

export interface SnapshotInstance {
  id: string;
  name: string;
  status: string;
  flavor: { vcpus: string; ram: string; disk: string };
  nics: SnapshotNic[];
  vdisks: SnapshotVdisk[];
  metadata: Record<string, string>;
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
  description?: string;
  host?: string;
  restore_size?: number;
  pinned?: boolean;
  instances?: SnapshotInstance[];
  metadata?: { key: string; value: string }[];
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

/** A VM of the caller's project as the platform lists it (GET /platform/instances). */
export interface PlatformInstance {
  id: string;
  name: string;
  status: string;
  availability_zone: string;
  networks: { id: string; name: string; ip_address: string }[];
  disks: { device: string; volume_type: string | null }[];
  unprotectable_reason: string | null;
}

/** A network the platform offers as a restore target (GET /platform/networks): the project's own or shared. */
export interface PlatformNetwork {
  id: string;
  name: string;
  shared: boolean;
  active: boolean;
  subnets: { id: string; name: string; cidr: string }[];
}

export interface FileEntry {
  name: string;
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mtime: string;
  mode: string;
}

export interface NodeInfo {
  node: string;
  id: string;
  role: string;
  status: string;
  version: string;
  started_at: string;
  last_heartbeat_at: string;
  load: { running_jobs: number; concurrency: number; loadavg_1m: number | null };
}

export interface JobCount {
  kind: string;
  state: string;
  count: number;
}

export interface TenantUsage {
  tenant_name: string;
  vms_protected: number;
  total_vms: number;
  used_capacity: number;
}

export interface StorageTarget {
  storage_type: string;
  total: number;
  full: number;
  incremental: number;
  total_capacity: number | null;
  total_utilization: number;
  total_utilization_percent: number | null;
  'nfs_share(s)': { nfsshare: string; status: string }[];
}

export interface AllowedQuota {
  id: string;
  quota_type_id: string;
  quota_type_name: string;
  allowed_value: number;
  high_watermark: number;
}

export interface WorkloadPolicy {
  id: string;
  name: string;
  description: string;
  status: string;
  field_values: { policy_field_name: string; value: string }[];
}

/** GET /workload_policy/{id}: the policy with the projects it is assigned to. */
export interface WorkloadPolicyDetail extends WorkloadPolicy {
  policy_assignments: { project_id: string; project_name: string | null }[];
}

type PolicyBody = { display_name: string; display_description: string; field_values: Record<string, string> };

/** A `repo verify` run of a backup target (GET /repo_verifications, admin). */
export interface RepoVerification {
  id: string;
  target: string;
  scope: 'full' | 'sample';
  read_data_subset_percent: number | null;
  mark_bad: boolean;
  source: 'api' | 'cli';
  status: 'queued' | 'running' | 'ok' | 'damaged' | 'error';
  progress_percent: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  snapshots: number;
  disks: number;
  packs_read: number;
  chunks_checked: number;
  bytes_read: number;
  problem_count: number;
  problems: string[];
  failed_snapshots: string[];
  error_msg: string | null;
}

/** The body of POST /snapshots/{id} (restore), as the wizard builds it (see restore-form.ts). */
export interface RestoreBody {
  restore: { name: string; description: string; options: Record<string, unknown> };
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

async function issueToken(auth: unknown): Promise<Session> {
  const r = await request<TokenBody>('POST', '/identity/v3/auth/tokens', null, { auth });
  const token = r.headers.get('x-subject-token');
  const t = r.body.token;
  if (!token || !t.project) throw new ApiError(500, 'The identity service answered without a token.');
  return { token, userName: t.user.name, projectId: t.project.id, projectName: t.project.name, roles: (t.roles ?? []).map((x) => x.name), expiresAt: t.expires_at };
}

/** Password authentication scoped to a project by name (Default domain). */
export function login(user: string, password: string, project: string): Promise<Session> {
  return issueToken({
    identity: { methods: ['password'], password: { user: { name: user, domain: { name: 'Default' }, password } } },
    scope: { project: { name: project, domain: { name: 'Default' } } },
  });
}

/** Keystone's re-scope (token method): a token for another project of the same user. */
export function switchProject(s: Session, projectId: string): Promise<Session> {
  return issueToken({ identity: { methods: ['token'], token: { id: s.token } }, scope: { project: { id: projectId } } });
}

/** The projects the user may switch to (Keystone GET /v3/auth/projects). */
export async function userProjects(s: Session): Promise<{ id: string; name: string }[]> {
  return (await request<{ projects: { id: string; name: string }[] }>('GET', '/identity/v3/auth/projects', s.token)).body.projects;
}

/** Revokes the token (best effort: the session is dropped either way). */
export async function logout(s: Session): Promise<void> {
  await fetch('/identity/v3/auth/tokens', { method: 'DELETE', headers: { 'x-auth-token': s.token, 'x-subject-token': s.token } }).catch(() => undefined);
}

const enc = encodeURIComponent;

/** Calls of the v1 API of the session's project. */
export function v1(s: Session) {
  const base = `/v1/${s.projectId}`;
  const call = async <T>(method: string, path: string, body?: unknown) => (await request<T>(method, base + path, s.token, body)).body;
  const get = <T>(path: string) => call<T>('GET', path);
  return {
    workloads: async (allProjects = false) => (await get<{ workloads: WorkloadDetail[] }>(`/workloads/detail${allProjects ? '?all_tenants=1' : ''}`)).workloads,
    workload: async (id: string) => (await get<{ workload: WorkloadDetail }>(`/workloads/${enc(id)}`)).workload,
    createWorkload: async (body: WorkloadCreateBody) => (await call<{ workload: { id: string } }>('POST', '/workloads', body)).workload,
    modifyWorkload: async (id: string, body: WorkloadCreateBody) => void (await call<unknown>('PUT', `/workloads/${enc(id)}`, body)),
    pause: async (wid: string) => void (await call<unknown>('POST', `/workloads/${enc(wid)}/pause`)),
    resume: async (wid: string) => void (await call<unknown>('POST', `/workloads/${enc(wid)}/resume`)),
    instances: async () => (await get<{ instances: PlatformInstance[] }>('/platform/instances')).instances,
    networks: async () => (await get<{ networks: PlatformNetwork[] }>('/platform/networks')).networks,
    snapshots: async () => (await get<{ snapshots: SnapshotSummary[] }>('/snapshots')).snapshots,
    workloadSnapshots: async (wid: string) => (await get<{ snapshots: SnapshotDetail[] }>(`/workloads/${enc(wid)}/snapshots/detail`)).snapshots,
    snapshot: async (sid: string) => (await get<{ snapshot: SnapshotDetail }>(`/snapshots/${enc(sid)}`)).snapshot,
    takeSnapshot: async (wid: string, full: boolean, name: string) =>
      (await call<{ snapshot: SnapshotSummary }>('POST', `/workloads/${enc(wid)}${full ? '?full=1' : ''}`, { snapshot: { name, description: '' } })).snapshot,
    cancelSnapshot: async (sid: string) => void (await call<unknown>('POST', `/snapshots/${enc(sid)}/cancel`)),
    deleteSnapshot: async (sid: string) => void (await call<unknown>('DELETE', `/snapshots/${enc(sid)}`)),
    startRestore: async (sid: string, body: RestoreBody) => (await call<{ restore: RestoreDetail }>('POST', `/snapshots/${enc(sid)}`, body)).restore,
    restore: async (rid: string) => (await get<{ restore: RestoreDetail }>(`/restores/${enc(rid)}`)).restore,
    cancelRestore: async (rid: string) => void (await call<unknown>('POST', `/restores/${enc(rid)}/cancel`)),
    mount: async (sid: string, vmId: string) => void (await call<unknown>('POST', `/snapshots/${enc(sid)}/mount`, { mount: { mount_vm_id: vmId, options: {} } })),
    dismount: async (sid: string) => void (await call<unknown>('POST', `/snapshots/${enc(sid)}/dismount`, {})),
    files: async (sid: string, path: string) => await get<{ path: string; files: FileEntry[]; truncated: boolean }>(`/snapshots/${enc(sid)}/files?path=${enc(path)}`),
    /** A file's bytes (the token is a header, so a plain link cannot fetch it). */
    fileContent: async (sid: string, path: string): Promise<Blob> => {
      const r = await fetch(`${base}/snapshots/${enc(sid)}/files/content?path=${enc(path)}`, { headers: { 'x-auth-token': s.token } });
      if (!r.ok) throw new ApiError(r.status, faultMessage(r.status, await readJson(r)));
      return r.blob();
    },
    globalScheduler: async () => (await get<{ global_job_scheduler: boolean }>('/global_job_scheduler')).global_job_scheduler,
    setGlobalScheduler: async (on: boolean) => (await call<{ global_job_scheduler: boolean }>('POST', `/global_job_scheduler/${on ? 'enable' : 'disable'}`)).global_job_scheduler,
    settings: async () => (await get<{ settings: Setting[] }>('/settings')).settings,
    saveSettings: async (values: Record<string, string>) => void (await call<unknown>('POST', '/workloads/settings', { settings: values })),
    testEmail: async () => void (await get<unknown>('/workloads/email/test_email')),
    nodes: async () => (await get<{ nodes: NodeInfo[] }>('/workloads/metrics/nodes')).nodes,
    jobs: async () => await get<{ jobs: JobCount[]; totals: Record<string, number> }>('/workloads/metrics/jobs'),
    tenantsUsage: async () => (await get<{ tenants_usage: Record<string, TenantUsage> }>('/workloads/metrics/tenants_usage')).tenants_usage,
    storageUsage: async () => (await get<{ storage_usage: StorageTarget[] }>('/workloads/metrics/storage_usage')).storage_usage,
    quotas: async (projectId: string) => (await get<{ allowed_quotas: AllowedQuota[] }>(`/project_allowed_quotas/${enc(projectId)}`)).allowed_quotas,
    quotaTypes: async () => (await get<{ quota_types: { id: string; display_name: string; display_description: string }[] }>('/project_quota_types')).quota_types,
    setQuota: async (projectId: string, typeId: string, allowed: number, high: number) =>
      void (await call<unknown>('POST', `/project_allowed_quotas/${enc(projectId)}`, { allowed_quotas: [{ quota_type_id: typeId, allowed_value: allowed, high_watermark: high }] })),
    policies: async () => (await get<{ policy_list: WorkloadPolicy[] }>('/workload_policy')).policy_list,
    policy: async (id: string) => (await get<{ policy: WorkloadPolicyDetail }>(`/workload_policy/${enc(id)}`)).policy,
    createPolicy: async (body: { workload_policy: PolicyBody }) => (await call<{ policy: WorkloadPolicy }>('POST', '/workload_policy', body)).policy,
    updatePolicy: async (id: string, body: { policy: PolicyBody }) => (await call<{ policy: WorkloadPolicy }>('PUT', `/workload_policy/${enc(id)}`, body)).policy,
    deletePolicy: async (id: string) => void (await call<unknown>('DELETE', `/workload_policy/${enc(id)}`)),
    assignPolicy: async (id: string, add: string[], remove: string[]) =>
      await call<{ policy: WorkloadPolicyDetail; failed_ids: string[] }>('POST', `/workload_policy/${enc(id)}/assign`, { policy: { add_projects: add, remove_projects: remove } }),
    verifications: async () => await get<{ repo_verifications: RepoVerification[]; targets: string[] }>('/repo_verifications?limit=10'),
    startVerification: async (target: string, percent: number) =>
      (await call<{ repo_verification: RepoVerification }>('POST', '/repo_verifications', { repo_verification: { target, read_data_subset: `${percent}%` } })).repo_verification,
  };
}
export type V1 = ReturnType<typeof v1>;
