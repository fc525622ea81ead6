import { after, before, describe, test } from 'node:test';
import { TargetCatalog } from '../src/lib/target.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import type { FastifyInstance } from 'fastify';
import { buildHttpServer } from '../src/http/server.js';
import { workloadRoutes } from '../src/http/workloads.routes.js';
import { snapshotRoutes } from '../src/http/snapshots.routes.js';
import { policyRoutes } from '../src/http/policies.routes.js';
import { quotaRoutes } from '../src/http/quotas.routes.js';
import { settingRoutes } from '../src/http/settings.routes.js';
import { Policy } from '../src/identity/policy.js';
import { storeKinds } from '../src/store/testing.js';
import type { StoreHandle } from '../src/store/db.js';
import { transitionSnapshot, updateSnapshotFields } from '../src/store/snapshot.store.js';
import { insertRestore } from '../src/store/restore.store.js';
import { LocalPlatform } from '../src/platform/local/local.platform.js';
import { WorkloadService } from '../src/services/workload.service.js';
import { SnapshotService } from '../src/services/snapshot.service.js';
import { PolicyService } from '../src/services/policy.service.js';
import { QuotaService, QUOTA_TYPE_IDS } from '../src/services/quota.service.js';
import { SettingService, loadOrCreateSettingsKey } from '../src/services/setting.service.js';
import { notifyRestoreFinished, notifySnapshotFinished, smtpMailer, type NotifyDeps } from '../src/jobs/notify.js';
import { JobRunner } from '../src/jobs/runner.js';
import { workloadJobHandlers } from '../src/jobs/workload.job.js';
import { systemClock } from '../src/lib/clock.js';
import { UnauthenticatedError } from '../src/lib/errors.js';
import type { Logger } from '../src/lib/logger.js';
import type { RequestContext } from '../src/domain/context.js';
import { waitFor } from './harness.js';

/**
 * Workload policies (F15), project quotas (F16) and e-mail settings (F17) over real HTTP, a
 * real store (SQLite; PostgreSQL with LIFEBOAT_TEST_PG) and a real SMTP server.
 *
 * Until the lead wires the policy/quota hooks into WorkloadService and SnapshotService, the
 * two small subclasses below stand in for that wiring: they call the exported hooks exactly
 * where the report asks the lead to call them.
 */

const PARALLEL = '2ddd528d-c9b4-4d7e-8722-cc395140255a';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;
const SMTP_PASSWORD = 'Pa55-w0rd!smtp-secret';

const P = { admin: 'a'.repeat(32), demo: 'd'.repeat(32), other: 'e'.repeat(32), vms: 'f'.repeat(32) };
const PROJECT_NAMES: Record<string, string> = { [P.admin]: 'admin', [P.demo]: 'demo', [P.other]: 'other', [P.vms]: 'vms' };

interface User {
  token: string;
  ctx: RequestContext;
}
const mkUser = (name: string, projectId: string, roles: string[]): User => ({
  token: `tok-${name}`,
  ctx: { requestId: '', userId: name.padEnd(32, '0').slice(0, 32), userName: name, projectId, projectName: PROJECT_NAMES[projectId]!, roles, isAdmin: roles.includes('admin') },
});
const ADMIN = mkUser('admin', P.admin, ['admin']);
const ALICE = mkUser('alice', P.demo, ['member']);
const BOB = mkUser('bob', P.other, ['member']);
const CAROL = mkUser('carol', P.vms, ['member']);
/** An admin scoped to alice's project: SMTP server, port and the test e-mail are admin_api. */
const ROOT_DEMO = mkUser('root', P.demo, ['admin', 'member']);
const USERS = [ADMIN, ALICE, BOB, CAROL, ROOT_DEMO];

const validator = {
  async validate(token: string) {
    const u = USERS.find((x) => x.token === token);
    if (!u) throw new UnauthenticatedError();
    return { ...u.ctx };
  },
};

interface Received {
  from: string;
  to: string[];
  user: string | undefined;
  raw: string;
}

async function startSmtp(): Promise<{ server: SMTPServer; port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authOptional: false,
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === 'mailer' && auth.password === SMTP_PASSWORD) cb(null, { user: 'mailer' });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.server.address();
  return { server, port: typeof a === 'object' && a ? a.port : 0, received };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const a = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return typeof a === 'object' && a ? a.port : 1;
}

/** The decoded Subject header of a raw message (RFC 2047 Q-encoded words, folded lines). */
function subjectOf(raw: string): string {
  const m = /^Subject: (.*(?:\r\n[ \t].*)*)/m.exec(raw);
  if (!m) return '';
  return m[1]!
    .replace(/\r\n[ \t]/g, ' ')
    .replace(/=\?UTF-8\?Q\?(.*?)\?=\s*/gi, (_all, q: string) => q.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))))
    .trim();
}

for (const kind of storeKinds()) {
  describe(`policies, quotas, settings over HTTP (${kind.name})`, { skip: kind.skip }, () => {
    let h: StoreHandle;
    let dir: string;
    let app: FastifyInstance;
    let runner: JobRunner;
    let smtp: Awaited<ReturnType<typeof startSmtp>>;
    let notify: NotifyDeps;
    const vm: Record<string, string> = {};
    const logLines: string[] = [];
    const bodies: string[] = [];

    const captureLog = (bindings: Record<string, unknown> = {}): Logger => {
      const rec = (level: string) => (obj: object | string, msg?: string) => logLines.push(JSON.stringify({ level, ...bindings, obj, msg }));
      return { info: rec('info'), warn: rec('warn'), error: rec('error'), debug: rec('debug'), child: (b) => captureLog({ ...bindings, ...b }) };
    };

    before(async () => {
      h = await kind.open();
      dir = mkdtempSync(join(tmpdir(), 'lifeboat-pqs-'));
      const instances: unknown[] = [];
      const mkVm = (name: string, projectId: string, volume: boolean) => {
        const id = randomUUID();
        vm[name] = id;
        const path = join(dir, `${name}.raw`);
        writeFileSync(path, Buffer.alloc(65536));
        instances.push({
          id,
          name,
          project_id: projectId,
          status: 'ACTIVE',
          availability_zone: 'nova',
          flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
          security_groups: ['default'],
          nics: [],
          disks: [{ device: '/dev/vda', path, format: 'raw', ...(volume ? { volume_id: randomUUID(), volume_type: 'local' } : {}) }],
          metadata: {},
        });
      };
      for (const n of ['d1', 'd2', 'd3', 'd4']) mkVm(n, P.demo, false);
      mkVm('v1', P.vms, true);
      mkVm('v2', P.vms, false);
      mkVm('v3', P.vms, true);
      mkVm('v4', P.vms, true);
      mkVm('v5', P.vms, false);
      writeFileSync(join(dir, 'inventory.json'), JSON.stringify({ instances }));
      const platform = await LocalPlatform.open({ inventoryPath: join(dir, 'inventory.json'), restoreDir: join(dir, 'restored') });
      const clock = systemClock;
      const log = captureLog();
      const secretKey = loadOrCreateSettingsKey(join(dir, 'settings.key'));
      const projects = { projectName: async (id: string) => PROJECT_NAMES[id] ?? null };
      const policy = Policy.fromRules();
      const workloads = new WorkloadService({ db: h.db, platform, clock });
      runner = new JobRunner({ db: h.db, dialect: h.dialect, clock, log, owner: 'test', leaseMs: 10_000, handlers: workloadJobHandlers(h.db, platform, clock), pollMs: 20 });
      runner.start();
      smtp = await startSmtp();
      notify = { db: h.db, secretKey, log: captureLog({ component: 'notify' }) };
      // Fastify's own request log goes to the capture too (pino JSON lines).
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          logLines.push(chunk.toString('utf8'));
          cb();
        },
      });
      app = await buildHttpServer({
        log,
        publicUrl: 'http://lb.test:8780',
        validator,
        policy,
        keystoneUri: 'http://lb.test:8780/identity/v3',
        fastifyLogger: { level: 'debug', stream: sink },
        v1Routes: [
          workloadRoutes({ workloads, policy, publicUrl: 'http://lb.test:8780' }),
          snapshotRoutes({ snapshots: new SnapshotService({ db: h.db, clock, targets: TargetCatalog.only('mem://test') }), workloads, policy, publicUrl: 'http://lifeboat.test' }),
          policyRoutes({ policies: new PolicyService({ db: h.db, clock, projects }), policy }),
          quotaRoutes({ quotas: new QuotaService({ db: h.db, clock, projects }) }),
          settingRoutes({ settings: new SettingService({ db: h.db, clock, secretKey, mailer: smtpMailer }), policy }),
        ],
      });
      await app.ready();
    });

    after(async () => {
      await app?.close();
      await runner?.stop();
      await new Promise<void>((r) => (smtp ? smtp.server.close(() => r()) : r()));
      await h?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    async function api(u: User, method: string, path: string, body?: unknown, raw?: string): Promise<{ status: number; json: any; text: string }> {
      const r = await app.inject({
        method: method as 'GET',
        url: path.startsWith('/v1/') ? path : `/v1/${u.ctx.projectId}${path}`,
        headers: { 'x-auth-token': u.token, ...(body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(raw !== undefined ? { payload: raw } : body !== undefined ? { payload: JSON.stringify(body) } : {}),
      });
      bodies.push(r.body);
      let json: unknown;
      try {
        json = r.body ? JSON.parse(r.body) : undefined;
      } catch {
        json = undefined;
      }
      return { status: r.statusCode, json, text: r.body };
    }

    const workloadBody = (vms: string[], metadata: Record<string, string> = {}) => ({
      workload: { name: 'tempest-w', workload_type_id: PARALLEL, source_platform: 'openstack', instances: vms.map((v) => ({ 'instance-id': v })), jobschedule: {}, metadata, description: 'test' },
    });
    async function createWorkload(u: User, vms: string[], metadata: Record<string, string> = {}) {
      const r = await api(u, 'POST', '/workloads', workloadBody(vms, metadata));
      assert.equal(r.status, 202, r.text);
      const id = r.json.workload.id as string;
      await waitFor(async () => (await api(u, 'GET', `/workloads/${id}`)).json.workload.status === 'available', 10_000, 'workload available');
      return id;
    }
    async function deleteWorkload(u: User, id: string) {
      assert.equal((await api(u, 'DELETE', `/workloads/${id}`)).status, 202);
      await waitFor(async () => (await api(u, 'GET', `/workloads/${id}`)).status === 404, 10_000, 'workload deleted');
    }
    const fault = (r: { json: any }) => (Object.values(r.json ?? {})[0] as { code: number; message: string } | undefined) ?? { code: 0, message: '' }; // eslint-disable-line @typescript-eslint/no-explicit-any

    // ---------------------------------------------------------------- F15 workload policies

    const F15_CREATE = {
      workload_policy: {
        field_values: { fullbackup_interval: '8', retention_policy_type: 'Number of Snapshots to Keep', interval: '1 hrs', retention_policy_value: '3' },
        display_name: 'policy2',
        display_description: 'description',
        metadata: {},
      },
    };
    const F15_UPDATE = {
      policy: {
        field_values: { fullbackup_interval: '7', retention_policy_type: 'Number of Snapshots to Keep', interval: '7 hrs', retention_policy_value: '7' },
        display_name: 'policy_update',
        display_description: 'description',
      },
    };
    const fieldsOf = (p: { field_values: { policy_field_name: string; value: string }[] }) => Object.fromEntries(p.field_values.map((f) => [f.policy_field_name, f.value]));

    test('F15: policy lifecycle — create, list, update, assign, adopt, in-use refusals, delete', async () => {
      // 1. create (tempest path with trailing slash)
      const c = await api(ADMIN, 'POST', '/workload_policy/', F15_CREATE);
      assert.equal(c.status, 200, c.text);
      const p = c.json.policy;
      assert.match(p.id, UUID);
      assert.deepEqual(Object.keys(p).sort(), ['created_at', 'description', 'field_values', 'id', 'metadata', 'name', 'status', 'updated_at']);
      assert.equal(p.name, 'policy2');
      assert.equal(p.description, 'description');
      assert.equal(p.status, 'available');
      assert.match(p.created_at, TS);
      assert.deepEqual(p.metadata, []);
      assert.deepEqual(fieldsOf(p), F15_CREATE.workload_policy.field_values);
      for (const f of p.field_values) {
        assert.equal(typeof f.value, 'string');
        assert.equal(f.policy_id, p.id);
        assert.equal(f.version, '4.1.124');
        assert.match(f.id, UUID);
      }
      const id = p.id as string;

      // 2. list, with and without the trailing slash; non-admin create is a policy denial
      for (const path of ['/workload_policy/', '/workload_policy']) {
        const l = await api(ADMIN, 'GET', path);
        assert.equal(l.status, 200);
        assert.ok(l.json.policy_list.some((x: { id: string }) => x.id === id));
      }
      const denied = await api(ALICE, 'POST', '/workload_policy/', F15_CREATE);
      assert.equal(denied.status, 403);
      assert.deepEqual(denied.json, { forbidden: { code: 403, message: "Policy doesn't allow workload:policy_create to be performed." } });
      // A project sees only policies assigned to it.
      assert.ok(!(await api(ALICE, 'GET', '/workload_policy/')).json.policy_list.some((x: { id: string }) => x.id === id));
      assert.equal((await api(ALICE, 'GET', `/workload_policy/${id}`)).status, 404);

      // 3. update, then show
      const u = await api(ADMIN, 'PUT', `/workload_policy/${id}`, F15_UPDATE);
      assert.equal(u.status, 200, u.text);
      assert.equal(u.json.policy.name, 'policy_update');
      const s = await api(ADMIN, 'GET', `/workload_policy/${id}`);
      assert.equal(s.status, 200);
      assert.equal(s.json.policy.name, 'policy_update');
      assert.equal(s.json.policy.description, 'description');
      assert.deepEqual(fieldsOf(s.json.policy), { interval: '7 hrs', retention_policy_value: '7', fullbackup_interval: '7', retention_policy_type: 'Number of Snapshots to Keep' });
      assert.equal(s.json.policy.project_id, P.admin);
      assert.deepEqual(s.json.policy.policy_assignments, []);

      // 4. assign to the admin project, still updatable, unassign
      const a = await api(ADMIN, 'POST', `/workload_policy/${id}/assign`, { policy: { remove_projects: [], add_projects: [P.admin] } });
      assert.equal(a.status, 200, a.text);
      assert.equal(a.json.policy.id, id);
      assert.deepEqual(a.json.failed_ids, []);
      const asg = (await api(ADMIN, 'GET', `/workload_policy/${id}`)).json.policy.policy_assignments;
      assert.deepEqual(asg.map((x: { project_id: string }) => x.project_id), [P.admin]);
      assert.equal(asg[0].project_name, 'admin');
      assert.equal(asg[0].policy_name, 'policy_update');
      assert.equal((await api(ADMIN, 'PUT', `/workload_policy/${id}`, F15_UPDATE)).status, 200);
      // tempest's cleanup sends remove_projects as a bare string
      const un = await api(ADMIN, 'POST', `/workload_policy/${id}/assign`, { policy: { remove_projects: P.admin, add_projects: [] } });
      assert.equal(un.status, 200, un.text);
      assert.deepEqual(un.json.policy.policy_assignments, []);

      // 5. assign to the tenant project; a workload created with the policy takes its values
      assert.equal((await api(ADMIN, 'POST', `/workload_policy/${id}/assign`, { policy: { add_projects: [P.demo], remove_projects: [] } })).status, 200);
      assert.ok((await api(ALICE, 'GET', '/workload_policy/')).json.policy_list.some((x: { id: string }) => x.id === id));
      assert.equal((await api(ALICE, 'GET', `/workload_policy/${id}`)).status, 200);
      // Without a policy id while the project has policies: the legacy refusal.
      const none = await api(ALICE, 'POST', '/workloads', workloadBody([vm.d1!]));
      assert.equal(none.status, 400);
      assert.equal(fault(none).message, `Please provide policy id from available policies: ['${id}']`);
      const wid = await createWorkload(ALICE, [vm.d1!], { policy_id: id });
      const wd = (await api(ALICE, 'GET', `/workloads/${wid}`)).json.workload;
      assert.equal(wd.metadata.policy_id, id);
      for (const k of ['fullbackup_interval', 'retention_policy_type', 'interval', 'retention_policy_value'] as const) {
        assert.equal(wd.jobschedule[k], F15_UPDATE.policy.field_values[k], k);
      }

      // 6. while a workload uses it: update and delete fail with the legacy messages
      const pu = await api(ADMIN, 'PUT', `/workload_policy/${id}`, F15_UPDATE);
      assert.equal(pu.status, 400);
      assert.equal(fault(pu).message, `Can not update policy: ${id}. It's assigned to workloads.`);
      const pd = await api(ADMIN, 'DELETE', `/workload_policy/${id}`);
      assert.equal(pd.status, 400);
      assert.equal(fault(pd).message, `Can not delete policy: ${id}. It's assigned to workloads.`);
      // ... and the project cannot be unassigned either
      const ur = await api(ADMIN, 'POST', `/workload_policy/${id}/assign`, { policy: { remove_projects: [P.demo] } });
      assert.equal(ur.status, 400);

      // A policy not assigned to the project cannot be adopted (create or modify).
      const other = (await api(ADMIN, 'POST', '/workload_policy', { workload_policy: { ...F15_CREATE.workload_policy, display_name: 'unassigned' } })).json.policy.id as string;
      const bad = await api(ALICE, 'PUT', `/workloads/${wid}`, { workload: { metadata: { policy_id: other }, jobschedule: {} } });
      assert.equal(bad.status, 400);
      assert.equal(fault(bad).message, `Invalid policy_id: policy ${other} is not available to this project`);
      assert.equal((await api(ADMIN, 'DELETE', `/workload_policy/${other}`)).status, 202);

      // 7. delete the workload, then the policy
      await deleteWorkload(ALICE, wid);
      const del = await api(ADMIN, 'DELETE', `/workload_policy/${id}`);
      assert.equal(del.status, 202);
      assert.equal(del.text, '');
      assert.ok(!(await api(ADMIN, 'GET', '/workload_policy/')).json.policy_list.some((x: { id: string }) => x.id === id));
      assert.equal((await api(ADMIN, 'GET', `/workload_policy/${id}`)).status, 404);
      assert.deepEqual((await api(ALICE, 'GET', `/workload_policy/assigned/${P.demo}`)).json.policies, []);
    });

    test('F15 step 8: assigned policies of a project; one policy on two projects', async () => {
      const mk = async (name: string) => (await api(ADMIN, 'POST', '/workload_policy/', { workload_policy: { ...F15_CREATE.workload_policy, display_name: name } })).json.policy.id as string;
      const p1 = await mk('gold');
      const p2 = await mk('silver');
      for (const p of [p1, p2]) assert.equal((await api(ADMIN, 'POST', `/workload_policy/${p}/assign`, { policy: { add_projects: [P.other], remove_projects: [] } })).status, 200);
      const r = await api(BOB, 'GET', `/workload_policy/assigned/${P.other}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json.policies.map((x: { policy_id: string }) => x.policy_id).sort(), [p1, p2].sort());
      for (const x of r.json.policies) {
        assert.deepEqual(Object.keys(x).sort(), ['created_at', 'id', 'policy_id', 'policy_name', 'project_id', 'project_name', 'version']);
        assert.equal(x.project_id, P.other);
        assert.equal(x.project_name, 'other');
      }
      // another project's assignments are not readable by a tenant
      assert.equal((await api(ALICE, 'GET', `/workload_policy/assigned/${P.other}`)).status, 403);
      // one policy, two projects (unknown project ids come back in failed_ids)
      const unknown = 'b'.repeat(32);
      const two = await api(ADMIN, 'POST', `/workload_policy/${p1}/assign`, { policy: { add_projects: [P.admin, unknown], remove_projects: [] } });
      assert.deepEqual(two.json.failed_ids, [unknown]);
      const asg = (await api(ADMIN, 'GET', `/workload_policy/${p1}`)).json.policy.policy_assignments.map((x: { project_id: string }) => x.project_id);
      assert.deepEqual(asg.sort(), [P.admin, P.other].sort());
      // cleanup so other tests' workload creates in these projects need no policy id
      for (const p of [p1, p2]) assert.equal((await api(ADMIN, 'DELETE', `/workload_policy/${p}`)).status, 202);
      assert.deepEqual((await api(BOB, 'GET', `/workload_policy/assigned/${P.other}`)).json.policies, []);
    });

    test('F15 errors: admin-only changes, malformed bodies, unknown ids', async () => {
      const id = (await api(ADMIN, 'POST', '/workload_policy', F15_CREATE)).json.policy.id as string;
      const na = await api(ALICE, 'POST', `/workload_policy/${id}/assign`, { policy: { add_projects: [P.demo], remove_projects: [] } });
      assert.equal(na.status, 403);
      assert.match(fault(na).message, /User does not have admin privileges/);
      assert.equal(fault(await api(ALICE, 'PUT', `/workload_policy/${id}`, F15_UPDATE)).message, "Policy doesn't allow workload:policy_update to be performed.");
      assert.equal(fault(await api(ALICE, 'DELETE', `/workload_policy/${id}`)).message, "Policy doesn't allow workload:policy_delete to be performed.");

      const cases: [unknown, string | RegExp][] = [
        [{ workload_policy: { ...F15_CREATE.workload_policy, display_name: '' } }, 'Please provide policy name.'],
        [{ workload_policy: { ...F15_CREATE.workload_policy, field_values: { interval: '1 hrs' } } }, /Please provide all of/],
        [{ workload_policy: { ...F15_CREATE.workload_policy, field_values: { ...F15_CREATE.workload_policy.field_values, color: 'red' } } }, /Please provide only \['interval', 'retention_policy_type', 'retention_policy_value', 'fullbackup_interval'\] as part of policy fields/],
        [{ workload_policy: { ...F15_CREATE.workload_policy, field_values: { ...F15_CREATE.workload_policy.field_values, interval: 'often' } } }, /Invalid interval/],
        [{ workload_policy: { ...F15_CREATE.workload_policy, field_values: { ...F15_CREATE.workload_policy.field_values, retention_policy_type: 'Forever' } } }, /Invalid retention_policy_type/],
        [{ workload_policy: { ...F15_CREATE.workload_policy, field_values: { ...F15_CREATE.workload_policy.field_values, retention_policy_value: '0' } } }, /Invalid retention_policy_value/],
        [{ workload_policy: { ...F15_CREATE.workload_policy, field_values: { ...F15_CREATE.workload_policy.field_values, fullbackup_interval: '1000' } } }, /Invalid fullbackup_interval/],
        [{ policy: F15_CREATE.workload_policy }, 'Incorrect request body format'],
        [[1, 2], 'Incorrect request body format'],
      ];
      for (const [body, msg] of cases) {
        const r = await api(ADMIN, 'POST', '/workload_policy/', body);
        assert.equal(r.status, 400, JSON.stringify(body));
        if (typeof msg === 'string') assert.equal(fault(r).message, msg);
        else assert.match(fault(r).message, msg);
      }
      const junk = await api(ADMIN, 'POST', '/workload_policy/', undefined, '{"workload_policy": ');
      assert.equal(junk.status, 400);
      assert.equal(fault(junk).message, 'Malformed request body');
      assert.equal((await api(ADMIN, 'PUT', `/workload_policy/${id}`, { policy: { field_values: { bogus: '1' } } })).status, 400);
      const empty = await api(ADMIN, 'POST', `/workload_policy/${id}/assign`, { policy: { add_projects: [], remove_projects: [] } });
      assert.equal(empty.status, 400);
      assert.equal(fault(empty).message, "Please provide tenant_id's to assign/remove policy.");
      assert.equal((await api(ADMIN, 'POST', `/workload_policy/${id}/assign`, { policy: { add_projects: [P.demo], remove_projects: [P.demo] } })).status, 400);
      assert.equal((await api(ADMIN, 'POST', `/workload_policy/${id}/assign`, { policy: { add_projects: [{}] } })).status, 400);

      for (const missing of [randomUUID(), 'not-a-uuid']) {
        assert.equal((await api(ADMIN, 'GET', `/workload_policy/${missing}`)).status, 404);
        assert.equal((await api(ADMIN, 'PUT', `/workload_policy/${missing}`, F15_UPDATE)).status, 404);
        assert.equal((await api(ADMIN, 'DELETE', `/workload_policy/${missing}`)).status, 404);
        assert.equal((await api(ADMIN, 'POST', `/workload_policy/${missing}/assign`, { policy: { add_projects: [P.demo] } })).status, 404);
      }
      const fields = await api(ALICE, 'GET', '/policy_field');
      assert.deepEqual(fields.json.policy_field_list.map((f: { name: string }) => f.name), ['interval', 'retention_policy_type', 'retention_policy_value', 'fullbackup_interval']);
      assert.equal((await api(ADMIN, 'DELETE', `/workload_policy/${id}`)).status, 202);
    });

    // ---------------------------------------------------------------- F16 quotas

    test('F16: quota types on both paths', async () => {
      for (const path of ['/project_quota_types', '/projects_quota_types']) {
        const r = await api(ALICE, 'GET', path);
        assert.equal(r.status, 200);
        assert.deepEqual(
          r.json.quota_types.map((t: { display_name: string; id: string }) => [t.display_name, t.id]),
          [
            ['Workloads', '1c5d4290-2e08-11ea-889c-7440bb00b67d'],
            ['Snapshots', 'b7273a06-2e08-11ea-889c-7440bb00b67d'],
            ['VMs', 'be323f58-2e08-11ea-889c-7440bb00b67d'],
            ['Volumes', 'c61324d0-2e08-11ea-889c-7440bb00b67d'],
            ['Storage', 'f02dd7a6-2e08-11ea-889c-7440bb00b67d'],
          ],
        );
        assert.deepEqual(Object.keys(r.json.quota_types[0]).sort(), ['created_at', 'deleted', 'deleted_at', 'display_description', 'display_name', 'id', 'status', 'updated_at', 'version']);
        const one = await api(ALICE, 'GET', `${path}/${QUOTA_TYPE_IDS.vms}`);
        assert.equal(one.json.quota_type.display_name, 'VMs');
        assert.equal(one.json.quota_type.display_description, 'Total number of VMs allowed per project');
        assert.equal((await api(ALICE, 'GET', `${path}/${randomUUID()}`)).status, 404);
      }
    });

    test('F16: Workloads quota — create, limit, update, show (exact), delete', async () => {
      const types = (await api(ALICE, 'GET', '/project_quota_types')).json.quota_types;
      const t = types.find((x: { display_name: string }) => x.display_name === 'Workloads').id as string;
      const cr = await api(ADMIN, 'POST', `/project_allowed_quotas/${P.demo}`, { allowed_quotas: [{ quota_type_id: t, project_id: P.demo, allowed_value: 1, high_watermark: 1 }] });
      assert.equal(cr.status, 200, cr.text);
      const qid = cr.json.allowed_quotas.find((q: { quota_type_id: string; project_id: string }) => q.quota_type_id === t && q.project_id === P.demo).id as string;
      assert.match(qid, UUID);

      const w1 = await createWorkload(ALICE, [vm.d1!]);
      const second = await api(ALICE, 'POST', '/workloads', workloadBody([vm.d2!]));
      assert.equal(second.status, 403);
      assert.equal(fault(second).message, 'Quota exceeded for Workloads: allowed 1, in use 1, requested 1 more.');

      const up = await api(ADMIN, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: { project_id: P.demo, allowed_value: 2, high_watermark: 2 } });
      assert.equal(up.status, 202, up.text);
      assert.equal(up.json.allowed_quotas[0].id, qid);
      assert.equal(up.json.allowed_quotas[0].allowed_value, 2);
      assert.equal(up.json.allowed_quotas[0].high_watermark, 2);
      const w2 = await createWorkload(ALICE, [vm.d2!]);

      const list = await api(ALICE, 'GET', `/project_allowed_quotas/${P.demo}`);
      assert.equal(list.status, 200);
      assert.ok(list.json.allowed_quotas.length > 0);

      const show = await api(ALICE, 'GET', `/project_allowed_quota/${qid}`);
      assert.equal(show.status, 200);
      assert.deepEqual(show.json.allowed_quotas, { id: qid, project_id: P.demo, quota_type_id: t, allowed_value: 2, high_watermark: 2, version: '4.1.124', quota_type_name: 'Workloads' });
      assert.deepEqual(Object.keys(show.json.allowed_quotas), ['id', 'project_id', 'quota_type_id', 'allowed_value', 'high_watermark', 'version', 'quota_type_name']);

      const del = await api(ADMIN, 'DELETE', `/project_allowed_quotas/${qid}`);
      assert.equal(del.status, 202);
      assert.deepEqual((await api(ALICE, 'GET', `/project_allowed_quotas/${P.demo}`)).json.allowed_quotas, []);
      const w3 = await createWorkload(ALICE, [vm.d3!]);
      for (const w of [w1, w2, w3]) await deleteWorkload(ALICE, w);
    });

    test('F16: VMs and Volumes quotas on create and modify', async () => {
      const setQuota = async (type: string, n: number) => {
        const r = await api(ADMIN, 'POST', `/project_allowed_quotas/${P.vms}`, { allowed_quotas: [{ quota_type_id: type, project_id: P.vms, allowed_value: n, high_watermark: n }] });
        assert.equal(r.status, 200, r.text);
        return r.json.allowed_quotas[0].id as string;
      };
      const qid = await setQuota(QUOTA_TYPE_IDS.vms, 1);
      const w1 = await createWorkload(CAROL, [vm.v1!]);
      const grow = await api(CAROL, 'PUT', `/workloads/${w1}`, { workload: { instances: [{ 'instance-id': vm.v1 }, { 'instance-id': vm.v2 }], jobschedule: {} } });
      assert.equal(grow.status, 403);
      assert.equal(fault(grow).message, 'Quota exceeded for VMs: allowed 1, in use 1, requested 1 more.');
      assert.equal((await api(CAROL, 'POST', '/workloads', workloadBody([vm.v3!]))).status, 403);

      // Same id again: the create updates the quota in place.
      assert.equal(await setQuota(QUOTA_TYPE_IDS.vms, 2), qid);
      const w2 = await createWorkload(CAROL, [vm.v3!]);
      assert.equal((await api(CAROL, 'PUT', `/workloads/${w1}`, { workload: { instances: [{ 'instance-id': vm.v1 }, { 'instance-id': vm.v2 }], jobschedule: {} } })).status, 403);

      assert.equal(await setQuota(QUOTA_TYPE_IDS.vms, 0), qid);
      assert.equal((await api(CAROL, 'POST', '/workloads', workloadBody([vm.v2!]))).status, 403);
      assert.equal((await api(CAROL, 'PUT', `/workloads/${w2}`, { workload: { instances: [{ 'instance-id': vm.v3 }, { 'instance-id': vm.v2 }] } })).status, 403);
      // A modify that does not grow usage stays allowed under a lowered quota.
      assert.equal((await api(CAROL, 'PUT', `/workloads/${w2}`, { workload: { name: 'renamed', instances: [{ 'instance-id': vm.v3 }], jobschedule: {} } })).status, 202);
      const show = (await api(CAROL, 'GET', `/project_allowed_quota/${qid}`)).json.allowed_quotas;
      assert.equal(show.allowed_value, 0);
      assert.equal(show.high_watermark, 0);
      assert.equal(show.quota_type_name, 'VMs');
      assert.equal((await api(ADMIN, 'DELETE', `/project_allowed_quotas/${qid}`)).status, 202);

      // Volumes: v1 and v3 are volume-backed (2 in use); v4 is too, v5 is not.
      const vq = await setQuota(QUOTA_TYPE_IDS.volumes, 2);
      const vol = await api(CAROL, 'POST', '/workloads', workloadBody([vm.v4!]));
      assert.equal(vol.status, 403);
      assert.equal(fault(vol).message, 'Quota exceeded for Volumes: allowed 2, in use 2, requested 1 more.');
      const w3 = await createWorkload(CAROL, [vm.v5!]);
      assert.equal((await api(ADMIN, 'DELETE', `/project_allowed_quotas/${vq}`)).status, 202);
      for (const w of [w1, w2, w3]) await deleteWorkload(CAROL, w);
    });

    test('F16: Snapshots and Storage quotas on snapshot create', async () => {
      const w1 = await createWorkload(CAROL, [vm.v1!]);
      const w2 = await createWorkload(CAROL, [vm.v2!]);
      const sq = (await api(ADMIN, 'POST', `/project_allowed_quotas/${P.vms}`, { allowed_quotas: [{ quota_type_id: QUOTA_TYPE_IDS.snapshots, allowed_value: 1, high_watermark: 1 }] })).json.allowed_quotas[0].id as string;
      const s1 = await api(CAROL, 'POST', `/workloads/${w1}?full=1`, { snapshot: { name: 's1' } });
      assert.equal(s1.status, 200, s1.text);
      const s2 = await api(CAROL, 'POST', `/workloads/${w2}?full=1`, { snapshot: { name: 's2' } });
      assert.equal(s2.status, 403);
      assert.equal(fault(s2).message, 'Quota exceeded for Snapshots: allowed 1, in use 1, requested 1 more.');
      assert.equal((await api(ADMIN, 'DELETE', `/project_allowed_quotas/${sq}`)).status, 202);

      await updateSnapshotFields(h.db, s1.json.snapshot.id, { size: 5000 });
      const st = (await api(ADMIN, 'POST', `/project_allowed_quotas/${P.vms}`, { allowed_quotas: [{ quota_type_id: QUOTA_TYPE_IDS.storage, allowed_value: 5000, high_watermark: 4000 }] })).json.allowed_quotas[0].id as string;
      const s3 = await api(CAROL, 'POST', `/workloads/${w2}?full=1`, {});
      assert.equal(s3.status, 403);
      assert.equal(fault(s3).message, 'Quota exceeded for Storage: allowed 5000 bytes, in use 5000 bytes.');
      assert.equal((await api(ADMIN, 'PUT', `/update_allowed_quota/${st}`, { allowed_quotas: { allowed_value: 10_000 } })).status, 202);
      assert.equal((await api(CAROL, 'POST', `/workloads/${w2}?full=1`, {})).status, 200);
      assert.equal((await api(ADMIN, 'DELETE', `/project_allowed_quotas/${st}`)).status, 202);
    });

    test('F16 errors: admin-only changes, foreign and unknown ids, malformed bodies', async () => {
      const body = (o: Record<string, unknown>) => ({ allowed_quotas: [{ quota_type_id: QUOTA_TYPE_IDS.workloads, project_id: P.other, allowed_value: 3, high_watermark: 2, ...o }] });
      const na = await api(BOB, 'POST', `/project_allowed_quotas/${P.other}`, body({}));
      assert.equal(na.status, 403);
      assert.equal(fault(na).message, "Policy doesn't allow workload:create_allowed_quotas to be performed.");
      const bad: [unknown, RegExp][] = [
        [body({ quota_type_id: randomUUID() }), /Invalid quota_type_id/],
        [body({ allowed_value: -1 }), /Invalid allowed_value/],
        [body({ allowed_value: 'lots' }), /Invalid allowed_value/],
        [body({ high_watermark: 4 }), /Invalid high_watermark: 4 is greater than allowed_value 3/],
        [body({ project_id: P.demo }), /Invalid project_id/],
        [{ allowed_quotas: [] }, /Invalid allowed_quotas/],
        [{ allowed_quotas: {} }, /Invalid allowed_quotas/],
        [{ quotas: [] }, /Incorrect request body format/],
        [{ allowed_quotas: [body({}).allowed_quotas[0], body({}).allowed_quotas[0]] }, /listed twice/],
      ];
      for (const [b, msg] of bad) {
        const r = await api(ADMIN, 'POST', `/project_allowed_quotas/${P.other}`, b);
        assert.equal(r.status, 400, JSON.stringify(b));
        assert.match(fault(r).message, msg);
      }
      assert.equal((await api(ADMIN, 'POST', `/project_allowed_quotas/${'9'.repeat(32)}`, body({ project_id: '9'.repeat(32) }))).status, 404);
      const ok = await api(ADMIN, 'POST', `/project_allowed_quotas/${P.other}`, { allowed_quotas: [{ quota_type_id: QUOTA_TYPE_IDS.workloads, allowed_value: '3' }] });
      assert.equal(ok.status, 200);
      assert.equal(ok.json.allowed_quotas[0].high_watermark, 3);
      const qid = ok.json.allowed_quotas[0].id as string;

      // Tenants read their own quotas, nobody else's; a foreign id answers like an unknown one.
      assert.equal((await api(BOB, 'GET', `/project_allowed_quota/${qid}`)).status, 200);
      assert.equal((await api(ALICE, 'GET', `/project_allowed_quotas/${P.other}`)).status, 403);
      const foreign = await api(ALICE, 'GET', `/project_allowed_quota/${qid}`);
      assert.equal(foreign.status, 404);
      assert.deepEqual(foreign.json, { itemNotFound: { code: 404, message: `Allowed quota ${qid} could not be found.` } });
      assert.equal((await api(ALICE, 'GET', '/project_allowed_quota/nope')).status, 404);
      assert.equal(fault(await api(BOB, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: { allowed_value: 9 } })).message, "Policy doesn't allow workload:update_allowed_quota to be performed.");
      assert.equal((await api(BOB, 'DELETE', `/project_allowed_quotas/${qid}`)).status, 403);
      assert.equal((await api(ADMIN, 'PUT', `/update_allowed_quota/${randomUUID()}`, { allowed_quotas: { allowed_value: 9 } })).status, 404);
      assert.equal((await api(ADMIN, 'DELETE', `/project_allowed_quotas/${randomUUID()}`)).status, 404);
      assert.equal((await api(ADMIN, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: [] })).status, 400);
      assert.equal((await api(ADMIN, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: {} })).status, 400);
      assert.equal((await api(ADMIN, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: { project_id: P.demo, allowed_value: 1 } })).status, 400);
      assert.equal((await api(ADMIN, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: { allowed_value: 1, high_watermark: 2 } })).status, 400);
      // lowering allowed_value drags the watermark down
      const low = await api(ADMIN, 'PUT', `/update_allowed_quota/${qid}`, { allowed_quotas: { allowed_value: 1 } });
      assert.deepEqual([low.json.allowed_quotas[0].allowed_value, low.json.allowed_quotas[0].high_watermark], [1, 1]);
      assert.equal((await api(ADMIN, 'DELETE', `/project_allowed_quotas/${qid}`)).status, 202);
      assert.equal((await api(ADMIN, 'DELETE', `/project_allowed_quotas/${qid}`)).status, 404);
    });

    // ---------------------------------------------------------------- F17 settings and e-mail

    const smtpItems = (port: number, password = SMTP_PASSWORD) =>
      [
        ['smtp_default_recipient', 'ops@example.test'],
        ['smtp_default_sender', 'lifeboat@example.test'],
        ['smtp_port', String(port)],
        ['smtp_server_name', '127.0.0.1'],
        ['smtp_server_password', password],
        ['smtp_server_username', 'mailer'],
        ['smtp_timeout', '10'],
      ].map(([name, value]) => ({ name, value, category: '', is_public: false, is_hidden: false, metadata: {}, type: '', description: '' }));

    async function deleteAllSettings(u: User) {
      const m = await api(u, 'POST', '/workloads/settings');
      assert.equal(m.status, 200);
      for (const k of Object.keys(m.json.settings)) {
        const d = await api(u, 'DELETE', `/settings/${k}`);
        assert.equal(d.status, 200, k);
        assert.equal(d.text, '');
      }
    }

    test('F17: e-mail settings, enable, test e-mail over real SMTP, delete with exactly 200', async () => {
      // 1. the settings map; every key deletes with 200
      const m0 = await api(ALICE, 'POST', '/workloads/settings');
      assert.equal(m0.status, 200);
      assert.deepEqual(m0.json, { settings: {} });
      await deleteAllSettings(ALICE);

      // 2. the 7 SMTP items; name → value (minus the password) equals what was sent. A member
      // may not point the server at a host:port (SSRF): 403, nothing saved; an admin may.
      const items = smtpItems(smtp.port);
      const denied = await api(ALICE, 'POST', '/settings', { settings: items });
      assert.equal(denied.status, 403, denied.text);
      assert.equal(fault(denied).message, "Policy doesn't allow workload:settings_smtp_update to be performed.");
      assert.equal((await api(ALICE, 'PUT', '/settings', { settings: [{ name: 'smtp_port', value: '25' }] })).status, 403);
      assert.equal((await api(ALICE, 'POST', '/workloads/settings', { settings: { smtp_server_name: '169.254.169.254' } })).status, 403);
      assert.deepEqual((await api(ALICE, 'POST', '/workloads/settings')).json, { settings: {} });
      const c = await api(ROOT_DEMO, 'POST', '/settings', { settings: items });
      assert.equal(c.status, 200, c.text);
      assert.deepEqual(c.json.settings.map((s: { name: string }) => s.name), items.map((i) => i.name));
      const sent = Object.fromEntries(items.filter((i) => i.name !== 'smtp_server_password').map((i) => [i.name, i.value]));
      const got = Object.fromEntries(c.json.settings.filter((s: { name: string }) => s.name !== 'smtp_server_password').map((s: { name: string; value: string }) => [s.name, s.value]));
      assert.deepEqual(got, sent);
      const rec = c.json.settings[0];
      assert.deepEqual(Object.keys(rec).sort(), ['category', 'created_at', 'deleted', 'deleted_at', 'description', 'is_hidden', 'is_public', 'metadata', 'name', 'project_id', 'status', 'type', 'updated_at', 'user_id', 'value', 'version'].sort());
      assert.equal(rec.project_id, P.demo);
      assert.equal(c.json.settings.find((s: { name: string }) => s.name === 'smtp_server_password').value, '********');
      // sealed at rest
      const raw = await h.db.withTables<{ settings: { project_id: string; name: string; value: string } }>().selectFrom('settings').select('value').where('name', '=', 'smtp_server_password').where('project_id', '=', P.demo).executeTakeFirstOrThrow();
      assert.ok(!raw.value.includes(SMTP_PASSWORD));
      assert.match(raw.value, /^enc:v2:[0-9a-f]{16}:/);

      // 3. enable notifications
      const en = await api(ALICE, 'POST', '/settings', { settings: [{ name: 'smtp_email_enable', value: '1', category: '', is_public: false, is_hidden: false, metadata: {}, type: '', description: '' }] });
      assert.equal(en.status, 200);
      assert.equal(en.json.settings[0].name, 'smtp_email_enable');
      assert.equal(String(en.json.settings[0].value), '1');

      // 4. the test e-mail reaches the SMTP server, authenticated with the stored password; a
      // member may not trigger it (it opens a connection): 403
      const before = smtp.received.length;
      assert.equal((await api(ALICE, 'GET', '/workloads/email/test_email')).status, 403);
      assert.equal(smtp.received.length, before);
      const t = await api(ROOT_DEMO, 'GET', '/workloads/email/test_email');
      assert.equal(t.status, 200, t.text);
      assert.equal(smtp.received.length, before + 1);
      const msg = smtp.received.at(-1)!;
      assert.equal(msg.user, 'mailer');
      assert.equal(msg.from, 'lifeboat@example.test');
      assert.deepEqual(msg.to, ['ops@example.test']);
      assert.equal(subjectOf(msg.raw), 'Lifeboat test e-mail');

      // show / list / update
      assert.equal((await api(ALICE, 'GET', '/settings/smtp_port')).json.setting.value, String(smtp.port));
      assert.equal((await api(ALICE, 'GET', '/settings/smtp_server_password')).json.setting.value, '********');
      const pu = await api(ALICE, 'PUT', '/settings', { settings: [{ name: 'smtp_timeout', value: 5 }] });
      assert.equal(pu.status, 200);
      assert.equal(pu.json.settings[0].value, '5');
      const map = (await api(ALICE, 'POST', '/workloads/settings')).json.settings;
      assert.equal(map.smtp_server_password, '********');
      assert.equal(map.smtp_email_enable, '1');
      assert.equal(Object.keys(map).length, 8);
      // other projects see none of it
      assert.deepEqual((await api(BOB, 'GET', '/settings')).json.settings, []);
      assert.equal((await api(BOB, 'GET', '/settings/smtp_port')).status, 404);
      assert.equal((await api(BOB, 'DELETE', '/settings/smtp_port')).status, 404);
    });

    test('notifications: snapshot and restore outcomes are mailed when enabled, never when disabled', async () => {
      // F17 left alice's project configured and enabled.
      const w = await createWorkload(ALICE, [vm.d4!]);
      const s = await api(ALICE, 'POST', `/workloads/${w}?full=1`, { snapshot: { name: 'nightly' } });
      assert.equal(s.status, 200, s.text);
      const sid = s.json.snapshot.id as string;
      // Not finished yet: nothing is sent.
      assert.equal(await notifySnapshotFinished(notify, sid), false);
      await transitionSnapshot(h.db, sid, ['creating'], 'available', Date.now(), { size: 1234, finished_at: Date.now() });
      const n0 = smtp.received.length;
      assert.equal(await notifySnapshotFinished(notify, sid), true);
      assert.equal(smtp.received.length, n0 + 1);
      assert.equal(subjectOf(smtp.received.at(-1)!.raw), 'Lifeboat: snapshot "nightly" of workload "tempest-w" succeeded');
      assert.match(smtp.received.at(-1)!.raw, new RegExp(sid));

      await transitionSnapshot(h.db, sid, ['available'], 'error', Date.now(), { error_msg: 'Snapshot failed: disk vanished' });
      assert.equal(await notifySnapshotFinished(notify, sid), true);
      assert.equal(subjectOf(smtp.received.at(-1)!.raw), 'Lifeboat: snapshot "nightly" of workload "tempest-w" failed');
      assert.match(smtp.received.at(-1)!.raw, /disk vanished/);

      const rid = randomUUID();
      const now = Date.now();
      await insertRestore(h.db, {
        id: rid, project_id: P.demo, user_id: ALICE.ctx.userId, snapshot_id: sid, workload_id: w, name: 'oneclick', description: '', status: 'available', kind: 'oneclick',
        options: {}, host: 'TVM1', size: 10, uploaded_size: 10, progress_percent: 100, progress_msg: null, warning_msg: null, error_msg: null, time_taken: 3,
        instances: [{ id: randomUUID(), name: 'restored-d4', status: 'available', metadata: {} }], metadata: [], created_at: now, updated_at: now, finished_at: now,
      });
      assert.equal(await notifyRestoreFinished(notify, rid), true);
      assert.equal(subjectOf(smtp.received.at(-1)!.raw), 'Lifeboat: restore "oneclick" of workload "tempest-w" succeeded');
      assert.match(smtp.received.at(-1)!.raw, /restored-d4/);
      assert.equal(await notifyRestoreFinished(notify, randomUUID()), false);

      // disabled → nothing
      await api(ALICE, 'POST', '/workloads/settings', { settings: { smtp_email_enable: '0' } });
      const n1 = smtp.received.length;
      assert.equal(await notifySnapshotFinished(notify, sid), false);
      assert.equal(await notifyRestoreFinished(notify, rid), false);
      assert.equal(smtp.received.length, n1);

      // enabled but the server rejects the password: best effort, logged, no throw
      await api(ALICE, 'POST', '/workloads/settings', { settings: { smtp_email_enable: '1', smtp_server_password: 'wrong-password-xyz' } });
      assert.equal(await notifySnapshotFinished(notify, sid), false);
      assert.ok(logLines.some((l) => l.includes('e-mail notification failed')));
      // a key that cannot open the password: skipped and logged
      assert.equal(await notifySnapshotFinished({ ...notify, secretKey: Buffer.alloc(32, 7) }, sid), false);
      assert.ok(logLines.some((l) => l.includes("cannot be opened with this node's settings key")));
      // a project without settings: nothing, silently
      assert.equal(await notifySnapshotFinished({ ...notify }, randomUUID()), false);
    });

    test('F17 errors: test e-mail failures, malformed settings, unknown names, hidden settings', async () => {
      // wrong password (left by the previous test) → 400 naming the cause
      const auth = await api(ROOT_DEMO, 'GET', '/workloads/email/test_email');
      assert.equal(auth.status, 400);
      assert.equal(fault(auth).message, 'SMTP authentication failed: check smtp_server_username and smtp_server_password');
      // nothing listening → 502 badGateway (the project's server failed, not this service)
      const port = await closedPort();
      assert.equal((await api(ROOT_DEMO, 'POST', '/settings', { settings: smtpItems(port) })).status, 200);
      const down = await api(ROOT_DEMO, 'GET', '/workloads/email/test_email');
      assert.equal(down.status, 502);
      assert.deepEqual(down.json, { badGateway: { code: 502, message: `SMTP server 127.0.0.1:${port} cannot be reached.` } });
      // no settings at all
      await deleteAllSettings(ALICE);
      const missing = await api(ROOT_DEMO, 'GET', '/workloads/email/test_email');
      assert.equal(missing.status, 400);
      assert.equal(fault(missing).message, 'Required e-mail settings not found. Save them first.');

      const bad: [unknown, RegExp][] = [
        [{ settings: [{ name: 'smtp_port', value: 'eighty' }] }, /Invalid smtp_port/],
        [{ settings: [{ name: 'smtp_port', value: '70000' }] }, /Invalid smtp_port/],
        [{ settings: [{ name: 'smtp_timeout', value: '11' }] }, /Invalid smtp_timeout/],
        [{ settings: [{ name: 'smtp_email_enable', value: 'maybe' }] }, /Invalid smtp_email_enable/],
        [{ settings: [{ name: 'smtp_default_sender', value: 'not-an-address' }] }, /Invalid smtp_default_sender/],
        [{ settings: [{ name: 'smtp_default_recipient', value: 'a@b.c, nope' }] }, /Invalid smtp_default_recipient/],
        [{ settings: [{ name: 'smtp_server_name', value: 'bad host' }] }, /Invalid smtp_server_name/],
        [{ settings: [{ name: '', value: 'x' }] }, /Invalid setting name/],
        [{ settings: [{ name: 'a/b', value: 'x' }] }, /Invalid setting name/],
        [{ settings: [{ name: 'x', value: { nested: true } }] }, /Invalid x/],
        [{ settings: [{ name: 'x', value: '1', is_hidden: 'perhaps' }] }, /Invalid is_hidden/],
        [{ settings: [{ name: 'x', value: '1' }, { name: 'x', value: '2' }] }, /listed twice/],
        [{ settings: [] }, /Invalid settings/],
        [{ settings: {} }, /Invalid settings/],
        [{ setting: [] }, /Incorrect request body format/],
      ];
      for (const [b, msg] of bad) {
        const r = await api(ROOT_DEMO, 'POST', '/settings', b);
        assert.equal(r.status, 400, JSON.stringify(b));
        assert.match(fault(r).message, msg);
      }
      assert.equal((await api(ALICE, 'PUT', '/settings', { settings: 'x' })).status, 400);
      assert.equal((await api(ALICE, 'POST', '/workloads/settings', { settings: [] })).status, 400);
      assert.equal((await api(ALICE, 'POST', '/settings', undefined, '{not json')).status, 400);
      assert.equal((await api(ALICE, 'GET', '/settings/nothing_here')).status, 404);
      assert.equal((await api(ALICE, 'DELETE', '/settings/nothing_here')).status, 404);
      assert.equal((await api(ALICE, 'GET', '/settings?get_hidden=sometimes')).status, 400);

      // hidden settings: listed only with get_hidden=true, always in the map
      await api(ALICE, 'POST', '/settings', { settings: [{ name: 'secret_thing', value: 's3cr3t-value', is_hidden: true, metadata: { role_name: 'member' } }, { name: 'visible', value: 'v' }] });
      assert.deepEqual((await api(ALICE, 'GET', '/settings')).json.settings.map((s: { name: string }) => s.name), ['visible']);
      const all = (await api(ALICE, 'GET', '/settings?get_hidden=true')).json.settings;
      assert.deepEqual(all.map((s: { name: string }) => s.name), ['secret_thing', 'visible']);
      assert.equal(all[0].value, '********');
      assert.deepEqual(all[0].metadata, { role_name: 'member' });
      assert.equal(all[0].is_hidden, true);
      await deleteAllSettings(ALICE);
      assert.deepEqual((await api(ALICE, 'GET', '/settings?get_hidden=true')).json.settings, []);
    });

    test('no password in any response or log line', () => {
      assert.ok(bodies.length > 50);
      assert.ok(logLines.length > 10);
      for (const secret of [SMTP_PASSWORD, 'wrong-password-xyz', 's3cr3t-value', Buffer.from(`\0mailer\0${SMTP_PASSWORD}`).toString('base64')]) {
        for (const b of bodies) assert.ok(!b.includes(secret), `response leaks ${secret}: ${b.slice(0, 200)}`);
        for (const l of logLines) assert.ok(!l.includes(secret), `log leaks ${secret}: ${l.slice(0, 200)}`);
      }
    });
  });
}
