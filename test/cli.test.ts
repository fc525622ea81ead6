import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHarness, waitFor, type Harness, type TestUser } from './harness.js';
import { runClient } from '../src/cli/commands.js';
import { parseLiteral } from '../src/cli/py-literal.parser.js';

/**
 * The `lifeboat` client commands against a real server (test/harness.ts): some as real child
 * processes (node dist/src/cli/client.main.js), most in-process through runClient() with
 * injected stdout/stderr/env. Each checks output and exit code (exit-codes.ts table).
 */

const SERIAL = 'f82ce76f-17fe-438b-aa37-7a023058e50d';
const ENTRY = fileURLToPath(new URL('../src/cli/client.main.js', import.meta.url));
const REQ_ID = /\(Request-ID: req-[0-9a-f-]{36}\)/;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `| key | value |` of a Property/Value table, the way tempest's cli_response_parser reads it. */
function prop(table: string, key: string): string | undefined {
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length > 1 && cells[1] === key) return cells[2];
  }
  return undefined;
}

describe('lifeboat client commands against a real server', () => {
  let h: Harness;
  let env: Record<string, string>;

  const userEnv = (u: TestUser): Record<string, string> => ({
    OS_AUTH_URL: `${h.url}/identity/v3`,
    OS_USERNAME: u.name,
    OS_PASSWORD: u.password,
    OS_PROJECT_NAME: u.projectName,
    OS_USER_DOMAIN_NAME: 'Default',
    OS_PROJECT_DOMAIN_NAME: 'Default',
  });

  /** A real child process with only the given environment (plus PATH). */
  const spawnCli = (args: string[], e: Record<string, string> = env): Promise<Run> =>
    new Promise((resolve) => {
      execFile(process.execPath, [ENTRY, ...args], { env: { PATH: process.env.PATH ?? '', ...e }, timeout: 60_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });

  /** In-process run with injected io. */
  const run = async (args: string[], e: Record<string, string> = env, extra: { readFile?: (p: string) => string } = {}): Promise<Run> => {
    let stdout = '';
    let stderr = '';
    const code = await runClient(args, {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s), isTTY: false },
      env: e,
      fetch: globalThis.fetch.bind(globalThis),
      readFile: extra.readFile ?? ((p) => readFileSync(p, 'utf8')),
      sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
    });
    return { code, stdout, stderr };
  };

  const workloadStatus = async (id: string) => (await h.api(h.alice, 'GET', `/workloads/${id}`)).json?.workload?.status as string | undefined;

  async function createWorkload(vm: string, name = 'w'): Promise<string> {
    const r = await run(['workload-create', '--display-name', name, '--instance', `instance-id=${vm}`]);
    assert.equal(r.code, 0, r.stderr);
    const id = prop(r.stdout, 'id')!;
    await waitFor(async () => (await workloadStatus(id)) === 'available', 10_000, 'workload available');
    return id;
  }

  before(async () => {
    h = await startHarness();
    env = userEnv(h.alice);
  });
  after(async () => h.close());

  test('F21 as tempest runs it: create, show, unlock, list | grep available, delete (child processes)', async () => {
    const vm = h.vms[0]!.id;
    const c = await spawnCli(['workload-create', '--workload-type-id', SERIAL, '--display-name', 'clitest', '--source-platform', 'openstack', '--instance', `instance-id=${vm}`]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stderr, '');
    const wid = prop(c.stdout, 'id')!;
    assert.equal(prop(c.stdout, 'name'), 'clitest');
    assert.equal(prop(c.stdout, 'workload_type_id'), SERIAL);
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 10_000, 'available');

    const show = await spawnCli(['workload-show', wid]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^\+-+\+-+\+\n\| Property +\| Value +\|\n/);
    const d = (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload;
    assert.equal(prop(show.stdout, 'name'), d.name);
    assert.equal(prop(show.stdout, 'description'), d.description);
    assert.equal(prop(show.stdout, 'status'), 'available');
    // tempest eval()s the instances cell: it must be a one-line Python literal.
    const inst = parseLiteral(prop(show.stdout, 'instances')!) as { id: string }[];
    assert.deepEqual(
      inst.map((i) => i.id),
      [vm],
    );

    // F3 full snapshot through the API, then unlock. A member's unlock no longer breaks the lock
    // of a job in flight (400 naming the job; an admin's cancels it: src/services/workload-lock.test.ts,
    // test/crash.test.ts), so this member unlocks once the snapshot has ended.
    const snap = await h.api(h.alice, 'POST', `/workloads/${wid}?full=1`, { snapshot: { name: 'Tempest-test-snapshot', full: 'True' } });
    assert.equal(snap.status, 200, snap.text);
    const sid = snap.json.snapshot.id as string;
    await waitFor(async () => ['available', 'error'].includes((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.status), 20_000, 'snapshot done');
    const un = await spawnCli(['workload-unlock', wid]);
    assert.equal(un.code, 0, un.stderr);
    assert.equal(await workloadStatus(wid), 'available');

    // `workload-list | grep available | wc -l` equals the available workloads of the project.
    const list = await spawnCli(['workload-list']);
    assert.equal(list.code, 0, list.stderr);
    const api = (await h.api(h.alice, 'GET', '/workloads')).json.workloads as { status: string }[];
    assert.equal(list.stdout.split('\n').filter((l) => l.includes('available')).length, api.filter((w) => w.status === 'available').length);
    assert.ok(list.stdout.includes(wid));

    // Delete: the snapshot first (the server requires it), then the workload.
    assert.equal((await run(['snapshot-delete', sid])).code, 0);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).status === 404 && (await workloadStatus(wid)) === 'available', 20_000, 'snapshot gone');
    const del = await spawnCli(['workload-delete', wid]);
    assert.equal(del.code, 0, del.stderr);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).status === 404, 10_000, 'workload gone');
  });

  test('errors: ERROR line with HTTP code and request id on stderr, exit code from the one table (child process)', async () => {
    const nf = await spawnCli(['workload-show', '0ddc4b0a-0000-4000-8000-000000000000']);
    assert.equal(nf.code, 4);
    assert.equal(nf.stdout, '');
    assert.match(nf.stderr, /^ERROR: Workload 0ddc4b0a-0000-4000-8000-000000000000 could not be found\. \(HTTP 404\) \(Request-ID: req-[0-9a-f-]{36}\)\n$/);

    const bad = await spawnCli(['workload-list'], { ...env, OS_PASSWORD: 'wrong' });
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /^ERROR: .*\(HTTP 401\)/);
    assert.match(bad.stderr, REQ_ID);

    const usage = await spawnCli(['workload-show']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing required argument/);

    const unknown = await spawnCli(['workload-list', '--bogus']);
    assert.equal(unknown.code, 2);

    const noAuth = await spawnCli(['workload-list'], {});
    assert.equal(noAuth.code, 2);
    assert.match(noAuth.stderr, /^ERROR: You must provide an auth url/);

    const down = await spawnCli(['workload-list'], { OS_TOKEN: 'x', OS_WORKLOADS_URL: 'http://127.0.0.1:1/v1/p' });
    assert.equal(down.code, 6);
    assert.match(down.stderr, /^ERROR: Unable to establish connection/);

    const help = await spawnCli(['workload-create', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--instance <instance-id=uuid>/);

    // 400 (bad filter) → 5; policy denial (403) → 3.
    const br = await run(['snapshot-list', '--date_from', 'yesterday']);
    assert.equal(br.code, 5);
    assert.match(br.stderr, /ERROR: Please provide valid date_from in Format YYYY-MM-DDTHH:MM:SS \(HTTP 400\)/);
  });

  test('authentication: token + endpoint override, OS_PROJECT_ID, legacy OS_TENANT_NAME, flags over environment', async () => {
    const token = await h.token(h.alice);
    const base = `${h.url}/v1/${h.alice.projectId}`;
    const t = await spawnCli(['workload-type-list', '-f', 'value', '-c', 'Name'], { OS_TOKEN: token, OS_WORKLOADS_URL: base });
    assert.equal(t.code, 0, t.stderr);
    assert.deepEqual(t.stdout.trim().split('\n').sort(), ['Parallel', 'Serial']);

    // Token without endpoint: the catalog of the validated token gives it.
    const t2 = await run(['workload-type-list'], { OS_TOKEN: token, OS_AUTH_URL: `${h.url}/identity/v3` });
    assert.equal(t2.code, 0, t2.stderr);

    const byId = await run(['workload-list'], { OS_AUTH_URL: `${h.url}/identity`, OS_USERNAME: 'alice', OS_PASSWORD: 'alice-pw', OS_PROJECT_ID: h.alice.projectId });
    assert.equal(byId.code, 0, byId.stderr);
    const legacy = await run(['workload-list'], { OS_AUTH_URL: `${h.url}/identity/v3/`, OS_USERNAME: 'alice', OS_PASSWORD: 'alice-pw', OS_TENANT_NAME: 'alpha' });
    assert.equal(legacy.code, 0, legacy.stderr);

    const flags = await run(['--os-password', 'alice-pw', 'workload-list', '--os-username', 'alice'], { ...env, OS_USERNAME: 'bob', OS_PASSWORD: 'wrong' });
    assert.equal(flags.code, 0, flags.stderr);

    const tok = await run(['workload-list', '--os-token', 'not-a-token', '--os-workloads-url', base], {});
    assert.equal(tok.code, 3);
    assert.match(tok.stderr, /\(HTTP 401\)/);

    // Bob cannot see alice's workloads: a foreign id is "not found".
    const wid = await createWorkload(h.vms[1]!.id, 'alice-only');
    const foreign = await run(['workload-show', wid], userEnv(h.bob));
    assert.equal(foreign.code, 4);
    await h.api(h.alice, 'DELETE', `/workloads/${wid}`);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).status === 404, 10_000, 'gone');
  });

  test('workload-modify (id first or last), workload-reset, workload types, -f json/value', async () => {
    const [vm1, vm2] = [h.vms[1]!.id, h.vms[2]!.id];
    const wid = await createWorkload(vm1, 'modme');
    // tempest: workload-modify --instance instance-id=<vm2> --instance instance-id=<vm1> <wid>
    const m1 = await run(['workload-modify', '--instance', `instance-id=${vm2}`, '--instance', `instance-id=${vm1}`, wid]);
    assert.equal(m1.code, 0, m1.stderr);
    assert.equal(m1.stdout, '');
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.instances.length === 2, 10_000, 'two VMs');
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 10_000, 'available');
    const m2 = await run(['workload-modify', wid, '--display-name', 'renamed', '--display-description', 'd2', '--jobschedule', 'enabled=False', '--metadata', 'k=v=w']);
    assert.equal(m2.code, 0, m2.stderr);
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 10_000, 'available');
    const j = await run(['workload-show', wid, '-f', 'json']);
    assert.equal(j.code, 0, j.stderr);
    const w = JSON.parse(j.stdout);
    assert.equal(w.name, 'renamed');
    assert.equal(w.description, 'd2');
    assert.equal(w.jobschedule.enabled, false);
    assert.equal(w.metadata.k, 'v=w');
    assert.equal(w.links, undefined);
    const v = await run(['workload-show', wid, '-f', 'value', '-c', 'name', '-c', 'status']);
    assert.equal(v.stdout, 'renamed\navailable\n');

    const nothing = await run(['workload-modify', wid]);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /^ERROR: Nothing to modify/);
    const badKv = await run(['workload-modify', wid, '--jobschedule', 'enabled']);
    assert.equal(badKv.code, 2);

    const reset = await run(['workload-reset', wid]);
    assert.equal(reset.code, 0, reset.stderr);
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 10_000, 'available after reset');

    const tl = await run(['workload-type-list', '-f', 'json']);
    assert.equal(tl.code, 0, tl.stderr);
    assert.ok((JSON.parse(tl.stdout) as { ID: string; Name: string }[]).some((t) => t.ID === SERIAL && t.Name === 'Serial'));
    const ts = await run(['workload-type-show', SERIAL]);
    assert.equal(ts.code, 0, ts.stderr);
    assert.equal(prop(ts.stdout, 'name'), 'Serial');
    assert.equal((await run(['workload-type-show', 'nope'])).code, 4);

    const wl = await run(['workload-list', '-f', 'json']);
    const row = (JSON.parse(wl.stdout) as Record<string, string>[]).find((x) => x.ID === wid)!;
    assert.equal(row.Name, 'renamed');
    assert.equal(row['Workload Type'], 'Serial');
    assert.equal(row.Status, 'available');

    assert.equal((await run(['workload-delete', wid])).code, 0);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).status === 404, 10_000, 'gone');
    assert.equal((await run(['workload-delete', wid])).code, 4);
  });

  test('workload-snapshot --wait (plain progress lines off a TTY), snapshot-list/-show/-cancel/-delete (child process for --wait)', async () => {
    const wid = await createWorkload(h.vms[2]!.id, 'snapme');
    const s = await spawnCli(['workload-snapshot', '--full', '--display-name', 'cli-snap', '--display-description', 'from the cli', '--wait', '--poll-interval', '0.1', '--wait-timeout', '30', wid]);
    assert.equal(s.code, 0, s.stderr);
    const sid = prop(s.stdout, 'id')!;
    assert.equal(prop(s.stdout, 'status'), 'available');
    assert.equal(prop(s.stdout, 'name'), 'cli-snap');
    assert.equal(prop(s.stdout, 'snapshot_type'), 'full');
    assert.equal(prop(s.stdout, 'progress_percent'), '100');
    const lines = s.stderr.trim().split('\n');
    assert.ok(lines.length >= 1);
    for (const l of lines) assert.match(l, new RegExp(`^Snapshot ${sid}: \\w+ \\d+%`));
    assert.match(lines[lines.length - 1]!, / available 100% \(.+\/.+, .+, ETA 0s\) Snapshot of workload is complete$/);

    // incremental without --wait prints the summary right away
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 10_000, 'available');
    const inc = await run(['workload-snapshot', wid, '--display-name', 'inc']);
    assert.equal(inc.code, 0, inc.stderr);
    const sid2 = prop(inc.stdout, 'id')!;
    assert.equal(prop(inc.stdout, 'status'), 'creating');
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${sid2}`)).json.snapshot.status === 'available', 20_000, 'inc done');

    const list = await run(['snapshot-list', '--workload_id', wid, '-f', 'json']);
    assert.equal(list.code, 0, list.stderr);
    const items = JSON.parse(list.stdout) as Record<string, string>[];
    // oldest first; both may carry the same second, so only membership is certain
    assert.deepEqual(items.map((x) => x.ID).sort(), [sid, sid2].sort());
    assert.deepEqual(Object.keys(items[0]!), ['Created At', 'Name', 'ID', 'Workload ID', 'Snapshot Type', 'Status', 'Host']);
    assert.equal(items[0]!.Host, 'TVM1');
    const table = await run(['snapshot-list', '--host', 'TVM1', '--date_from', '2000-01-01T00:00:00']);
    assert.equal(table.code, 0);
    assert.ok(table.stdout.includes(sid) && table.stdout.includes(sid2));
    const none = await run(['snapshot-list', '--host', 'nohost']);
    assert.equal(none.stdout.split('\n').filter((l) => l.startsWith('| ')).length, 1); // header only
    assert.equal((await run(['snapshot-list', '--workload_id', '0ddc4b0a-0000-4000-8000-000000000000'])).code, 4);

    const show = await run(['snapshot-show', sid]);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(prop(show.stdout, 'description'), 'from the cli');
    assert.equal(prop(show.stdout, 'metadata'), undefined);
    assert.deepEqual(
      (parseLiteral(prop(show.stdout, 'instances')!) as { id: string }[]).map((i) => i.id),
      [h.vms[2]!.id],
    );
    const md = await run(['snapshot-show', sid, '--output', 'metadata', '-f', 'json']);
    assert.ok((JSON.parse(md.stdout) as { Key: string }[]).some((m) => m.Key === 'cancel_requested'));
    const inst = await run(['snapshot-show', '--output', 'instances', sid]);
    assert.match(inst.stdout, /\| ID +\| Name +\| Status +\| Flavor +\| Disks \|/);
    assert.ok(inst.stdout.includes('vm-a3'));
    const disks = await run(['snapshot-show', sid, '--output', 'disks', '-f', 'value', '-c', 'Device']);
    assert.equal(disks.stdout, '/dev/vda\n');
    assert.equal((await run(['snapshot-show', sid, '--output', 'bogus'])).code, 2);
    const full = JSON.parse((await run(['snapshot-show', sid, '-f', 'json'])).stdout);
    assert.ok(Array.isArray(full.metadata) && full.instances[0].vdisks.length === 1);

    // cancel of a finished snapshot is a no-op (200)
    const cancel = await run(['snapshot-cancel', sid2]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal((await run(['snapshot-cancel', '0ddc4b0a-0000-4000-8000-000000000000'])).code, 4);

    // a busy workload refuses a snapshot: 400 Invalid state → 5 (delete locks it)
    assert.equal((await run(['snapshot-delete', sid2])).code, 0);
    const del = await run(['snapshot-delete', sid]);
    assert.ok(del.code === 0 || del.code === 5, del.stderr);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${sid2}`)).status === 404, 20_000, 'sid2 gone');
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 20_000, 'available');
    if ((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).status !== 404) assert.equal((await run(['snapshot-delete', sid])).code, 0);
    await waitFor(async () => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).status === 404, 20_000, 'sid gone');
    assert.equal((await run(['snapshot-delete', sid])).code, 4);
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 20_000, 'available');
    await h.api(h.alice, 'DELETE', `/workloads/${wid}`);
  });

  test('workload-snapshot --wait exits 7 when the snapshot ends in error; busy workload exits 5', async () => {
    // vm-a1's second disk disappears: the snapshot job cannot read it.
    const vm = h.vms[0]!;
    const wid = await createWorkload(vm.id, 'doomed');
    const disk = vm.disks[1]!.path;
    renameSync(disk, `${disk}.away`);
    try {
      const r = await run(['workload-snapshot', wid, '--full', '--wait', '--poll-interval', '0.05', '--wait-timeout', '30']);
      assert.equal(r.code, 7, r.stderr);
      assert.equal(prop(r.stdout, 'status'), 'error');
      assert.match(r.stderr, /ERROR: Snapshot [0-9a-f-]{36} ended in status 'error'/);
    } finally {
      renameSync(`${disk}.away`, disk);
    }
    await waitFor(async () => (await workloadStatus(wid)) === 'available', 10_000, 'available');
    // Lock it with a snapshot, then ask for another: Invalid state → exit 5.
    const first = await h.api(h.alice, 'POST', `/workloads/${wid}`, {});
    assert.equal(first.status, 200, first.text);
    const busy = await run(['workload-snapshot', wid]);
    if ((await workloadStatus(wid)) !== 'available' || busy.code !== 0) {
      assert.equal(busy.code, 5, busy.stderr);
      assert.match(busy.stderr, /ERROR: Invalid state: .*\(HTTP 400\)/);
    }
  });

  test('restore commands (when the server has the restore endpoints)', async (t) => {
    const probe = await h.api(h.alice, 'GET', '/restores');
    if (probe.status !== 200) {
      t.skip(`GET /restores answered ${probe.status}: restore endpoints not there yet`);
      return;
    }
    const vm = h.vms[3]!; // bob's VM: a workload of its own
    const bobEnv = userEnv(h.bob);
    const c = await run(['workload-create', '--instance', `instance-id=${vm.id}`, '--display-name', 'rw'], bobEnv);
    assert.equal(c.code, 0, c.stderr);
    const wid = prop(c.stdout, 'id')!;
    await waitFor(async () => (await h.api(h.bob, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 10_000, 'available');
    const s = await run(['workload-snapshot', wid, '--full', '--wait', '--poll-interval', '0.05', '--wait-timeout', '30'], bobEnv);
    assert.equal(s.code, 0, s.stderr);
    const sid = prop(s.stdout, 'id')!;

    // selective restore with a Python-literal options file, as tempest writes it
    const file = join(h.home, 'restore.json');
    writeFileSync(
      file,
      `{'openstack': {'instances': [{'id': '${vm.id}', 'include': True, 'restore_boot_disk': True, 'name': 'restored-b1', 'availability_zone': 'nova', 'vdisks': []}], 'restore_topology': False, 'networks_mapping': {'networks': []}}, 'restore_type': 'selective', 'type': 'openstack'}`,
    );
    const sel = await run(['snapshot-selective-restore', sid, '--display-name', 'sel', '--filename', file, '--wait', '--poll-interval', '0.05', '--wait-timeout', '30'], bobEnv);
    assert.equal(sel.code, 0, sel.stderr);
    const rid = prop(sel.stdout, 'id')!;
    assert.equal(prop(sel.stdout, 'status'), 'available');
    assert.equal(prop(sel.stdout, 'name'), 'sel');

    const list = await run(['restore-list', '--snapshot_id', sid, '-f', 'json'], bobEnv);
    assert.equal(list.code, 0, list.stderr);
    assert.ok((JSON.parse(list.stdout) as { ID: string }[]).some((r) => r.ID === rid));
    const show = await run(['restore-show', rid], bobEnv);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(prop(show.stdout, 'status'), 'available');
    assert.equal((await run(['restore-cancel', rid], bobEnv)).code, 0); // no-op on a final state
    assert.equal((await run(['restore-delete', rid], bobEnv)).code, 0);
    assert.equal((await run(['restore-show', rid], bobEnv)).code, 4);

    // in-place with a JSON file, without --wait: answers with the restore at once
    writeFileSync(file, JSON.stringify({ openstack: { instances: [{ id: vm.id, include: true, restore_boot_disk: true, vdisks: [] }], networks_mapping: { networks: [] } }, type: 'openstack' }));
    await waitFor(async () => (await h.api(h.bob, 'GET', `/snapshots/${sid}`)).json.snapshot.status === 'available', 20_000, 'snapshot available');
    const inp = await run(['snapshot-inplace-restore', sid, '--display-name', 'inp', '--display-description', 'd', '--filename', file], bobEnv);
    assert.equal(inp.code, 0, inp.stderr);
    const rid2 = prop(inp.stdout, 'id')!;
    await waitFor(async () => ['available', 'error'].includes((await h.api(h.bob, 'GET', `/restores/${rid2}`)).json.restore.status), 30_000, 'inplace done');
    const inpShow = await run(['restore-show', rid2, '-f', 'json'], bobEnv);
    const inpR = JSON.parse(inpShow.stdout);
    assert.equal(inpR.status, 'available', inpR.error_msg);
    assert.equal(inpR.restore_options.restore_type, 'inplace');
    assert.equal(inpR.name, 'inp');
    assert.equal(inpR.description, 'd');

    // one-click (originals may still exist; only the exit code contract is checked here)
    await waitFor(async () => (await h.api(h.bob, 'GET', `/snapshots/${sid}`)).json.snapshot.status === 'available', 20_000, 'snapshot available');
    const one = await run(['snapshot-oneclick-restore', sid, '--display-name', 'one', '--wait', '--poll-interval', '0.05', '--wait-timeout', '30'], bobEnv);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(prop(one.stdout, 'status'), 'available');
    assert.match(one.stderr, /^Restore [0-9a-f-]{36}: available 100%/m);

    assert.equal((await run(['snapshot-selective-restore', sid, '--display-name', 'x', '--filename', '/nonexistent.json'], bobEnv)).code, 2);
    assert.equal((await run(['snapshot-oneclick-restore', sid], bobEnv)).code, 2); // --display-name required
    assert.equal((await run(['restore-show', '0ddc4b0a-0000-4000-8000-000000000000'], bobEnv)).code, 4);
  });

  test('restore request bodies (no server needed): oneclick, selective from a Python-literal file', async () => {
    // A fake endpoint records what the commands send; the real server is used elsewhere.
    const seen: { method: string; url: string; body: unknown }[] = [];
    const fakeFetch = (async (url: string | URL, init?: RequestInit) => {
      const u = String(url);
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      seen.push({ method: init?.method ?? 'GET', url: u, body });
      const json = (o: unknown, status = 200) => new Response(JSON.stringify(o), { status, headers: { 'content-type': 'application/json', 'x-compute-request-id': 'req-00000000-0000-4000-8000-000000000000' } });
      if (u.endsWith('/snapshots/S1')) return json({ snapshot: { id: 'S1', workload_id: 'W1', status: 'available' } });
      if (u.endsWith('/restores') && init?.method === 'POST') return json({ restore: { id: 'R1', status: 'restoring', snapshot_details: { big: true } } }, 202);
      if (u.endsWith('/restores/R1')) return json({ restore: { id: 'R1', status: 'error', error_msg: 'disk gone', progress_percent: 40, size: 1000 } });
      return json({ itemNotFound: { code: 404, message: 'nope' } }, 404);
    }) as typeof fetch;
    const io = (files: Record<string, string> = {}) => {
      const out = { stdout: '', stderr: '' };
      return {
        out,
        io: {
          stdout: { write: (s: string) => (out.stdout += s) },
          stderr: { write: (s: string) => (out.stderr += s), isTTY: false },
          env: { OS_TOKEN: 't', OS_WORKLOADS_URL: 'http://x/v1/0123456789abcdef0123456789abcdef' },
          fetch: fakeFetch,
          readFile: (p: string) => {
            if (!(p in files)) throw new Error(`ENOENT ${p}`);
            return files[p]!;
          },
          sleep: async () => {},
        },
      };
    };
    const a = io();
    assert.equal(await runClient(['snapshot-oneclick-restore', 'S1', '--display-name', 'one', '--display-description', 'dd'], a.io), 0, a.out.stderr);
    const post = seen.find((s) => s.method === 'POST')!;
    assert.equal(post.url, 'http://x/v1/0123456789abcdef0123456789abcdef/workloads/W1/snapshots/S1/restores');
    assert.deepEqual(post.body, {
      restore: {
        name: 'one',
        description: 'dd',
        options: { type: 'openstack', restore_type: 'oneclick', oneclickrestore: true, openstack: { instances: [], zone: '' }, vmware: {}, restore_options: {}, name: 'one', description: 'dd' },
      },
    });
    assert.equal(prop(a.out.stdout, 'snapshot_details'), undefined);

    seen.length = 0;
    const b = io({ 'r.json': "{'openstack': {'instances': [{'id': 'vm', 'include': True}]}, 'restore_type': 'inplace', 'type': 'openstack', 'name': 'fromfile'}" });
    assert.equal(await runClient(['snapshot-selective-restore', 'S1', '--display-name', 'sel', '--filename', 'r.json', '--wait'], b.io), 7);
    const body = seen.find((s) => s.method === 'POST')!.body as { restore: { name: string; options: Record<string, unknown> } };
    assert.equal(body.restore.name, 'sel');
    assert.deepEqual(body.restore.options, { openstack: { instances: [{ id: 'vm', include: true }] }, restore_type: 'selective', type: 'openstack', name: 'sel', oneclickrestore: false });
    assert.match(b.out.stderr, /^Restore R1: error 40% \(400 B\/1000 B/m);
    assert.match(b.out.stderr, /ERROR: Restore R1 ended in status 'error': disk gone\n$/);
    assert.equal(prop(b.out.stdout, 'status'), 'error');

    const c = io({ 'bad.json': "{'openstack': " });
    assert.equal(await runClient(['snapshot-inplace-restore', 'S1', '--display-name', 'x', '--filename', 'bad.json'], c.io), 2);
    assert.match(c.out.stderr, /^ERROR: Cannot parse bad\.json as JSON or a Python dict: unexpected end of input at line 1 column 15/);
  });
});
