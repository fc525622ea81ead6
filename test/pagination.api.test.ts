import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createWorkloadAndWait, selectiveRestoreAndWait, startHarness, takeSnapshotAndWait, type Harness, type TestUser } from './harness.js';

/**
 * Reliability item F22 (shared/spec/reliability.md §2), paging: `limit`, `offset` and `marker`
 * on the workload, snapshot and restore lists, checked and refused as Nova does ("limit param
 * must be an integer", "... must be positive", "marker [<id>] not found"), a `<key>_links` next
 * link on a full page, and no change at all to a list asked without them.
 */
describe('list paging: limit, offset, marker and next links (reliability F22)', () => {
  let h: Harness;
  const workloads: string[] = [];
  const snapshots: string[] = [];
  const restores: string[] = [];
  /** The workloads in list order: newest first, ties (one second) by id. */
  let workloadOrder: string[] = [];
  const vm = (name: string) => h.vms.find((v) => v.name === name)!;
  const ids = (list: { id: string }[]) => list.map((x) => x.id);
  /** GET `path` as `u`: asserts 200 and returns the body. */
  async function get(u: TestUser, path: string) {
    const r = await h.api(u, 'GET', path);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    return r.json;
  }
  /** Follows the next links from `path` and returns the pages' ids, asserting every link's form. */
  async function follow(u: TestUser, path: string, key: string): Promise<string[][]> {
    const pages: string[][] = [];
    let next: string | undefined = path;
    while (next) {
      const body = await get(u, next);
      pages.push(ids(body[key]));
      const links = body[`${key}_links`] as { rel: string; href: string }[] | undefined;
      if (!links) break;
      assert.equal(links.length, 1);
      assert.equal(links[0]!.rel, 'next');
      const url = new URL(links[0]!.href);
      assert.equal(url.origin, h.url);
      assert.equal(url.searchParams.get('marker'), pages.at(-1)!.at(-1));
      assert.equal(url.searchParams.get('offset'), null);
      next = `${url.pathname.replace(`/v1/${u.projectId}`, '')}${url.search}`;
      assert.ok(pages.length < 10, 'the walk does not end');
    }
    return pages;
  }

  before(async () => {
    h = await startHarness();
    for (const name of ['vm-a1', 'vm-a2', 'vm-a3']) workloads.push(await createWorkloadAndWait(h, h.alice, [vm(name).id], `page-${name}`));
    for (let i = 0; i < 3; i++) snapshots.push((await takeSnapshotAndWait(h, h.alice, workloads[2]!, i === 0)).id as string);
    for (const sid of snapshots.slice(0, 2)) {
      const r = await selectiveRestoreAndWait(h, h.alice, workloads[2]!, sid, vm('vm-a3').id);
      assert.equal(r.status, 'available', r.error_msg);
      restores.push(r.id as string);
    }
    workloadOrder = ids((await get(h.alice, '/workloads')).workloads);
  });
  after(async () => h?.close());

  test('without paging parameters every list is whole and has no links (as before)', async () => {
    const w = await get(h.alice, '/workloads');
    assert.deepEqual(Object.keys(w), ['workloads']);
    assert.deepEqual([...ids(w.workloads)].sort(), [...workloads].sort());
    const s = await get(h.alice, `/workloads/${workloads[2]}/snapshots`);
    assert.deepEqual(Object.keys(s), ['snapshots']);
    assert.deepEqual(ids(s.snapshots), snapshots);
    const r = await get(h.alice, '/restores');
    assert.deepEqual(Object.keys(r), ['restores']);
    assert.deepEqual(ids(r.restores), restores);
  });

  test('pages of one and two walk each list once, in its order, by the next links', async () => {
    for (const size of [1, 2]) {
      const w = await follow(h.alice, `/workloads?limit=${size}`, 'workloads');
      assert.deepEqual(w.flat(), workloadOrder, `workloads by ${size}`);
      const wd = await follow(h.alice, `/workloads/detail?limit=${size}`, 'workloads');
      assert.deepEqual(wd.flat(), workloadOrder, `workload details by ${size}`);
      for (const path of [`/snapshots?workload_id=${workloads[2]}&limit=${size}`, `/workloads/${workloads[2]}/snapshots/detail?limit=${size}`]) {
        assert.deepEqual((await follow(h.alice, path, 'snapshots')).flat(), snapshots, path);
      }
      const nested = `/workloads/${workloads[2]}/snapshots/${snapshots[0]}/restores?limit=${size}`;
      assert.deepEqual((await follow(h.alice, nested, 'restores')).flat(), restores.slice(0, 1), nested);
      assert.deepEqual((await follow(h.alice, `/restores/detail?limit=${size}`, 'restores')).flat(), restores);
    }
    // The filter is kept in the next link: a page of snapshots of one workload stays in it.
    const s = await get(h.alice, `/snapshots?workload_id=${workloads[2]}&limit=1`);
    assert.equal(new URL(s.snapshots_links[0].href).searchParams.get('workload_id'), workloads[2]);
  });

  test('marker and offset: after the marker, skip offset; a short page has no next link', async () => {
    const s = await get(h.alice, `/snapshots?marker=${snapshots[0]}`);
    assert.deepEqual(ids(s.snapshots), snapshots.slice(1));
    assert.equal(s.snapshots_links, undefined);
    assert.deepEqual(ids((await get(h.alice, `/snapshots?marker=${snapshots[0]}&offset=1`)).snapshots), snapshots.slice(2));
    assert.deepEqual(ids((await get(h.alice, '/snapshots?offset=2&limit=5')).snapshots), snapshots.slice(2));
    assert.deepEqual(ids((await get(h.alice, `/workloads?marker=${workloadOrder[0]}&limit=1`)).workloads), [workloadOrder[1]]);
    assert.deepEqual(ids((await get(h.alice, `/restores?marker=${restores[1]}`)).restores), []);
    // limit=0 is no limit, as in Nova; so is " +2 " read as 2.
    assert.deepEqual(ids((await get(h.alice, '/snapshots?limit=0')).snapshots), snapshots);
    assert.deepEqual(ids((await get(h.alice, '/snapshots?limit=%20%2B2%20')).snapshots), snapshots.slice(0, 2));
  });

  test('bad limit, offset and marker: 400 in the fault envelope, in Nova words', async () => {
    const cases: [string, string][] = [
      ['/workloads?limit=-1', 'limit param must be positive'],
      ['/workloads?limit=abc', 'limit param must be an integer'],
      ['/snapshots?limit=1.5', 'limit param must be an integer'],
      ['/snapshots?limit=99999999999999999999', 'limit param must be an integer'],
      ['/snapshots?offset=-5', 'offset param must be positive'],
      ['/restores?offset=x', 'offset param must be an integer'],
      ['/restores/detail?limit=', 'limit param must be an integer'],
      [`/snapshots?marker=${workloads[0]}`, `marker [${workloads[0]}] not found`],
      ['/workloads?marker=not-a-uuid', 'marker not found'],
      [`/workloads/${workloads[2]}/snapshots?marker=${restores[0]}`, `marker [${restores[0]}] not found`],
    ];
    for (const [path, message] of cases) {
      const r = await h.api(h.alice, 'GET', path);
      assert.equal(r.status, 400, `${path}: ${r.text}`);
      assert.deepEqual(r.json, { badRequest: { code: 400, message } }, path);
    }
  });

  test("another project's item is no marker (400, as for an unknown id), and an admin's all-projects list pages across projects", async () => {
    const r = await h.api(h.bob, 'GET', `/workloads?marker=${workloads[0]}`);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.badRequest.message, `marker [${workloads[0]}] not found`);
    const b = await h.api(h.bob, 'GET', `/snapshots?marker=${snapshots[0]}`);
    assert.equal(b.json.badRequest.message, `marker [${snapshots[0]}] not found`);
    const all = await get(h.admin, '/workloads?all_workloads=true');
    const pages = await follow(h.admin, '/workloads?all_workloads=true&limit=2', 'workloads');
    assert.deepEqual(pages.flat(), ids(all.workloads));
    assert.ok(pages.flat().length >= workloads.length);
  });

  test('boolean query params take true/false/1/0 (not "any non-empty string"), anything else is a 400', async () => {
    const own = ids((await get(h.admin, '/workloads')).workloads);
    const every = ids((await get(h.admin, '/workloads?all_workloads=true')).workloads);
    assert.ok(every.length > own.length);
    assert.deepEqual(ids((await get(h.admin, '/workloads?all_workloads=1')).workloads), every);
    assert.deepEqual(ids((await get(h.admin, '/workloads?all_workloads=0')).workloads), own);
    assert.deepEqual(ids((await get(h.admin, '/workloads?all_workloads=false')).workloads), own);
    for (const path of ['/workloads?all_workloads=maybe', '/snapshots?all=2', `/workloads/${workloads[2]}/snapshots?get_instances=yesplease`]) {
      const r = await h.api(h.admin, 'GET', path);
      assert.equal(r.status, 400, `${path}: ${r.text}`);
      assert.match(r.json.badRequest.message, /^Invalid value for \w+: expected true or false$/, path);
    }
  });
});
