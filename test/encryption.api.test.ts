import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './cli-run.js';
import { selectiveRestoreAndWait, sha256File, startHarness, takeSnapshotAndWait, waitFor, type Harness, type TestVm } from './harness.js';

/**
 * Encrypted workloads through the API against a real service (issue 17 item 4): create with
 * `encryption` (+ `secret_uuid`), bad values → 400 and nothing created, the detail view shows
 * the fields only on encrypted workloads; full and incremental snapshots whose target objects
 * never hold a marker written into the source disk (the plain workload's do: the test can
 * fail), byte-exact restores, and a wrong or missing key file → the restore fails naming the
 * workload while a plain workload restores as before.
 */

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const fault = (r: { json: Json }) => (Object.values(r.json ?? {})[0] as { code: number; message: string } | undefined) ?? { code: 0, message: '' };

/** Random (stored raw) bytes with `marker` in them, over the first 256 KiB of the disk's data blocks. */
function writeMarker(path: string, marker: string): void {
  const fd = openSync(path, 'r+');
  try {
    for (let off = 0; off < 256 * 1024; off += 128 * 1024) {
      const block = randomBytes(64 * 1024);
      block.write(marker, 1000);
      block.write(marker, 40_000);
      writeSync(fd, block, 0, block.length, off);
    }
  } finally {
    closeSync(fd);
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('encrypted workloads through the API', () => {
  let h: Harness;
  let vmEnc: TestVm;
  let vmPlain: TestVm;
  let wEnc = '';
  let wPlain = '';
  const secret = randomUUID();
  const encMarker = `ENC-MARKER-${randomBytes(6).toString('hex')}`;
  const plainMarker = `PLAIN-MARKER-${randomBytes(6).toString('hex')}`;
  const snaps: { sid: string; wid: string; vm: TestVm; truth: Map<string, string> }[] = [];

  const create = (body: Record<string, unknown>, vm: TestVm) => h.api(h.alice, 'POST', '/workloads', { workload: { name: 'enc', instances: [{ 'instance-id': vm.id }], jobschedule: { enabled: false }, ...body } });
  const available = (wid: string) => waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload available');
  const snap = async (wid: string, vm: TestVm, full: boolean) => {
    const truth = new Map(vm.disks.map((d) => [d.device, sha256File(d.path)]));
    const s = await takeSnapshotAndWait(h, h.alice, wid, full, 60_000);
    snaps.push({ sid: s.id, wid, vm, truth });
  };
  const restoreExact = async (t: (typeof snaps)[number]) => {
    const done = await selectiveRestoreAndWait(h, h.alice, t.wid, t.sid, t.vm.id, 60_000);
    assert.equal(done.status, 'available', done.error_msg);
    const inv = JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances as { id: string; disks: { device: string; path: string }[] }[];
    const inst = inv.find((i) => i.id === done.instances[0].id)!;
    for (const [device, sha] of t.truth) assert.equal(sha256File(inst.disks.find((d) => d.device === device)!.path), sha, `${t.sid} ${device} byte-exact`);
  };

  before(async () => {
    h = await startHarness({ diskBytes: 1024 * 1024 });
    vmEnc = h.vms.find((v) => v.name === 'vm-a1')!;
    vmPlain = h.vms.find((v) => v.name === 'vm-a2')!;
  });
  after(() => h?.close());

  test('bad encryption or secret_uuid values → 400 fault, nothing created', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ encryption: 'yes' }, /encryption/],
      [{ encryption: 1 }, /encryption/],
      [{ encryption: { on: true } }, /encryption/],
      [{ encryption: true, secret_uuid: 5 }, /secret_uuid/],
      [{ encryption: true, secret_uuid: 'not-a-uuid' }, /secret_uuid/],
      [{ encryption: false, secret_uuid: secret }, /secret_uuid/],
    ];
    for (const [body, msg] of cases) {
      const r = await create(body, vmEnc);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(fault(r).code, 400);
      assert.match(fault(r).message, msg);
    }
    assert.equal((await h.api(h.alice, 'GET', '/workloads')).json.workloads.length, 0);
  });

  test('an encrypted workload shows encryption and secret_uuid in its detail view; a plain one does not', async () => {
    const e = await create({ name: 'encrypted', encryption: true, secret_uuid: secret }, vmEnc);
    assert.equal(e.status, 202, e.text);
    wEnc = e.json.workload.id;
    const p = await create({ name: 'plain', encryption: false }, vmPlain);
    assert.equal(p.status, 202, p.text);
    wPlain = p.json.workload.id;
    await available(wEnc);
    await available(wPlain);
    const de = (await h.api(h.alice, 'GET', `/workloads/${wEnc}`)).json.workload;
    assert.equal(de.encryption, true);
    assert.equal(de.secret_uuid, secret);
    const dp = (await h.api(h.alice, 'GET', `/workloads/${wPlain}`)).json.workload;
    assert.ok(!('encryption' in dp) && !('secret_uuid' in dp), JSON.stringify(dp));
  });

  test('full and incremental snapshots: no object on the target holds the encrypted disk\'s marker; the plain one\'s does', async () => {
    for (const d of vmEnc.disks) writeMarker(d.path, encMarker);
    for (const d of vmPlain.disks) writeMarker(d.path, plainMarker);
    await snap(wEnc, vmEnc, true);
    await snap(wPlain, vmPlain, true);
    writeMarker(vmEnc.disks[0]!.path, encMarker);
    await snap(wEnc, vmEnc, false);
    const keyFile = join(h.home, 'encryption.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'key file created owner-only');
    let plainSeen = 0;
    for (const f of filesUnder(join(h.home, 'target'))) {
      const data = readFileSync(f);
      assert.equal(data.indexOf(encMarker), -1, `${f} holds the encrypted workload's marker`);
      if (data.indexOf(plainMarker) >= 0) plainSeen++;
    }
    assert.ok(plainSeen > 0, 'the plain workload\'s marker is visible on the target (so the search works)');
    assert.ok(readdirSync(join(h.home, 'target', 'packs')).includes(wEnc), 'the encrypted workload has its own storage scope');
  });

  test('every snapshot restores byte-exact', async () => {
    for (const t of snaps) await restoreExact(t);
  });

  const keyFile = () => join(h.home, 'encryption.key');

  test('a wrong key file: the restore fails naming the workload; the plain workload restores', async () => {
    const saved = readFileSync(keyFile());
    await h.restart(() => writeFileSync(keyFile(), `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 }));
    const t = snaps.find((s) => s.wid === wEnc)!;
    const done = await selectiveRestoreAndWait(h, h.alice, t.wid, t.sid, t.vm.id, 60_000);
    assert.equal(done.status, 'error');
    assert.match(done.error_msg, new RegExp(`Workload ${wEnc} is encrypted.*wrong key file`));
    await restoreExact(snaps.find((s) => s.wid === wPlain)!);
    await h.restart(() => writeFileSync(keyFile(), saved, { mode: 0o600 }));
  });

  test('a missing key file: the restore fails naming the workload; with the key back it works again', async () => {
    await h.restart(() => renameSync(keyFile(), `${keyFile()}.away`));
    const t = snaps.find((s) => s.wid === wEnc)!;
    const done = await selectiveRestoreAndWait(h, h.alice, t.wid, t.sid, t.vm.id, 60_000);
    assert.equal(done.status, 'error');
    assert.match(done.error_msg, new RegExp(`Workload ${wEnc} is encrypted.*key file.*missing`));
    await h.restart(() => renameSync(`${keyFile()}.away`, keyFile()));
    await restoreExact(t);
  });
  test('CLI: workload-create --encryption True --secret-uuid; a bad --encryption is a usage error (exit 2), a bad secret a 400 (exit 5)', async () => {
    const env = { OS_AUTH_URL: `${h.url}/identity/v3`, OS_USERNAME: h.alice.name, OS_PASSWORD: h.alice.password, OS_PROJECT_NAME: h.alice.projectName };
    const cli = (args: string[]) => runCli(env, args);
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    const bad = await cli(['workload-create', '--instance', `instance-id=${vm.id}`, '--encryption', 'maybe']);
    assert.equal(bad.code, 2, bad.stderr);
    const badSecret = await cli(['workload-create', '--instance', `instance-id=${vm.id}`, '--encryption', 'True', '--secret-uuid', 'nope']);
    assert.equal(badSecret.code, 5, badSecret.stderr);
    assert.match(badSecret.stderr, /^ERROR: Invalid secret_uuid/);
    const made = await cli(['workload-create', '--display-name', 'cli-enc', '--instance', `instance-id=${vm.id}`, '--encryption', 'True', '--secret-uuid', secret, '-f', 'json']);
    assert.equal(made.code, 0, made.stderr);
    const wid = JSON.parse(made.stdout).id as string;
    await available(wid);
    const shown = JSON.parse((await cli(['workload-show', wid, '-f', 'json'])).stdout);
    assert.equal(shown.encryption, true);
    assert.equal(shown.secret_uuid, secret);
  });
});
