import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mutateDisk, selectiveRestoreAndWait, startHarness, sha256File, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { loadConfig } from '../src/config/config.js';
import { verifyTarget } from '../src/app/repo-tools.js';
import { runLifeboat } from './process.js';

/**
 * Issue 10 item 1 through the real service: damage on the backup target is never hidden
 * behind an `available` snapshot. Flip a byte / delete a pack / truncate a pack index, and the
 * next snapshot still produces a restorable snapshot, while the damaged older snapshots say
 * so in the API (warning_msg), and restores heal on the next snapshot with no operator step.
 */
interface InvInstance {
  id: string;
  disks: { device: string; path: string }[];
  metadata: Record<string, string>;
}

describe('backup target damage is visible and healed (issue 10.1)', () => {
  let h: Harness;
  let wid: string;
  let vmId: string;
  let diskPath: string;
  const target = () => join(h.home, 'target');
  const files = (dir: string): string[] => {
    try {
      return readdirSync(dir).map((f) => join(dir, f)).flatMap((p) => (statSync(p).isDirectory() ? files(p) : [p]));
    } catch {
      return [];
    }
  };
  const packs = () => files(join(target(), 'packs'));
  /** Runs `fn` and returns it with the pack files it added. */
  async function withNewPacks<T>(fn: () => Promise<T>): Promise<[T, string[]]> {
    const before = new Set(packs());
    const r = await fn();
    return [r, packs().filter((p) => !before.has(p))];
  }
  let s1Pack = '';
  let s5Pack = '';
  const inventory = (): InvInstance[] => JSON.parse(readFileSync(join(h.home, 'inventory.json'), 'utf8')).instances;

  before(async () => {
    h = await startHarness({ diskBytes: 2 * 1024 * 1024 });
    const vm = h.vms.find((v) => v.name === 'vm-a3')!;
    vmId = vm.id;
    diskPath = vm.disks[0]!.path;
    const r = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'integrity', instances: [{ 'instance-id': vmId }] } });
    assert.equal(r.status, 202, r.text);
    wid = r.json.workload.id;
    await waitFor(async () => (await h.api(h.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
  });
  after(() => h.close());

  const getSnap = async (sid: string) => (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot;

  const snapshot = async (full: boolean): Promise<string> => (await takeSnapshotAndWait(h, h.alice, wid, full, 30_000)).id as string;

  /** Selective restore into a new instance; returns the restore record and the new disk's hash. */
  async function restore(sid: string): Promise<{ status: string; error_msg: string | null; sha: string | null }> {
    const done = await selectiveRestoreAndWait(h, h.alice, wid, sid, vmId, 30_000);
    const inst = done.status === 'available' ? inventory().find((i) => i.id === done.instances[0].id) : undefined;
    return { status: done.status, error_msg: done.error_msg, sha: inst ? sha256File(inst.disks[0]!.path) : null };
  }

  const flipByte = (path: string, at: number) => {
    const b = readFileSync(path);
    b[at] = b[at]! ^ 0xff;
    writeFileSync(path, b);
  };

  test('flip a pack byte → the next full snapshot re-uploads, restores byte-exact; the old snapshot shows the damage', async () => {
    const truth = sha256File(diskPath);
    const [s1, made] = await withNewPacks(() => snapshot(true));
    assert.equal((await getSnap(s1)).warning_msg, null);
    s1Pack = made[0]!;
    flipByte(s1Pack, 10); // inside the first stored chunk
    const s2 = await snapshot(true);
    assert.equal((await getSnap(s2)).warning_msg, null, 'the new snapshot is whole');
    // The older snapshots are marked right after the new one is available: wait for it.
    const w1 = await waitFor(async () => (await getSnap(s1)).warning_msg as string | null, 10_000, 'damage warning on the old snapshot');
    assert.match(w1, /damaged/i);
    assert.match(w1, new RegExp(s2), 'names the snapshot that stored the data again');
    assert.equal((await restore(s2)).sha, truth);
    assert.equal((await restore(s1)).sha, truth, 'the old snapshot restores again from the re-uploaded copy');
  });

  test('delete a pack → the next full snapshot re-uploads; the snapshots that lost data show it', async () => {
    const truth = sha256File(diskPath);
    const before = (await h.api(h.alice, 'GET', `/snapshots?workload_id=${wid}`)).json.snapshots.map((s: { id: string }) => s.id) as string[];
    rmSync(s1Pack);
    const s3 = await snapshot(true);
    // Every older snapshot referenced the lost pack; the report ends with the "reported" marker.
    await waitFor(async () => files(join(target(), 'bad')).some((f) => /lost-/.test(f)), 10_000, 'lost pack reported');
    for (const sid of before) assert.match((await getSnap(sid)).warning_msg ?? '', /pack [0-9a-f-]+ is missing.*stored again by snapshot/, sid);
    assert.equal(files(join(target(), 'bad')).filter((f) => /lost-/.test(f)).length, 1);
    assert.equal((await getSnap(s3)).warning_msg, null);
    assert.equal((await restore(s3)).sha, truth);
  });

  test('a restore that meets a corrupt chunk fails, marks the snapshot, and the next (incremental) snapshot heals it', async () => {
    mutateDisk(diskPath, 3); // new chunks: the snapshot writes a pack only it references
    const truth = sha256File(diskPath);
    const [s4, made] = await withNewPacks(() => snapshot(true));
    flipByte(made[0]!, 10);
    const r1 = await restore(s4);
    assert.equal(r1.status, 'error');
    assert.match(r1.error_msg ?? '', /corrupt/);
    assert.match((await getSnap(s4)).warning_msg ?? '', /damaged/i, 'the failed restore marked the snapshot');
    const [s5, healed] = await withNewPacks(() => snapshot(false));
    s5Pack = healed[0]!;
    // The warning now says the data was stored again (written right after s5 became available).
    await waitFor(async () => new RegExp(`stored again by snapshot ${s5}`).test((await getSnap(s4)).warning_msg ?? ''), 10_000, 'healed warning');
    assert.equal((await restore(s5)).sha, truth);
    assert.equal((await restore(s4)).sha, truth, 'healed: the old snapshot restores again');
  });

  test('truncate a pack index → the next snapshot rebuilds it and succeeds', async () => {
    const truth = sha256File(diskPath);
    const idx = files(join(target(), 'index'));
    assert.ok(idx.length > 0);
    for (const k of idx) writeFileSync(k, readFileSync(k).subarray(0, 20));
    const s6 = await snapshot(false);
    assert.equal((await restore(s6)).sha, truth);
    assert.ok(files(join(target(), 'index')).every((k) => !idx.includes(k) || statSync(k).size > 20), 'the truncated indexes were replaced');
  });

  test('repo verify marks every snapshot a damaged chunk affects (warning_msg); after the heal a complete verify clears it', async () => {
    const last = await snapshot(true);
    flipByte(s5Pack, 10); // the only intact copy of the chunk healed above
    const config = loadConfig({ LIFEBOAT_HOME: h.home }, h.home);
    const v = await verifyTarget(config, { markBad: true });
    assert.equal(v.ok, false);
    assert.ok(v.failedSnapshots.includes(last));
    assert.match((await getSnap(last)).warning_msg ?? '', /damaged/i);
    assert.deepEqual('marked' in v.recorded ? v.recorded.marked.sort() : v.recorded, [...v.failedSnapshots].sort());
    const healer = await snapshot(true); // skips the copy verify marked bad and stores the chunk again
    await waitFor(async () => new RegExp(`stored again by snapshot ${healer}`).test((await getSnap(last)).warning_msg ?? ''), 10_000, 'healed warning');
    const v2 = await verifyTarget(config, { markBad: true });
    assert.equal(v2.ok, true, JSON.stringify(v2.problems.slice(0, 2)));
    assert.equal((await getSnap(last)).warning_msg, null, 'a complete verify clears the damage warning');
    assert.equal((await restore(healer)).sha, sha256File(diskPath));
  });

  test('lifeboat repo repair-index and repo verify --read-data-subset from the command line', async () => {
    for (const k of files(join(target(), 'index'))) rmSync(k);
    const env = { LIFEBOAT_HOME: h.home };
    const rep = runLifeboat(env, ['repo', 'repair-index']);
    assert.equal(rep.status, 0, rep.stdout + rep.stderr);
    assert.match(rep.stdout, new RegExp(`project ${h.alice.projectId}: 0 unreadable pack index\\(es\\) removed; [1-9]\\d* pack\\(s\\) re-indexed`));
    const again = runLifeboat(env, ['repo', 'repair-index']);
    assert.match(again.stdout, /; 0 pack\(s\) re-indexed/);
    const v = runLifeboat(env, ['repo', 'verify', '--read-data-subset=50%']);
    assert.equal(v.status, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /sampled 50\.0% of the packs/);
    assert.match(v.stdout, /OK: every referenced chunk/);
    const bad = runLifeboat(env, ['repo', 'verify', '--read-data-subset=0%']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /read-data-subset must be a percentage/);
  });
});
