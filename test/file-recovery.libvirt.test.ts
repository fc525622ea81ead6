import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { processesTagged } from '../src/recovery/mounts.js';
import { takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { buildExt4Disk } from './fs-images.js';
import { LIBVIRT_TOOLS } from './libvirtd.js';
import { startLibvirtService, type TestGuest } from './libvirt-guest.js';
import { pseudoRandom } from './recovery-fixtures.js';

/**
 * A snapshot taken by the libvirt platform (a running domain, qcow2 disk, backed up through
 * libvirt's backup job) is searched and mounted like any other: the disks are in the
 * repository whichever platform took them. The recovery VM (`mount_vm_id`) is the domain
 * itself, an instance of the project.
 */
const MiB = 1024 * 1024;

describe('file recovery of a libvirt snapshot', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS, 'guestfish', 'sgdisk', 'mkfs.ext4', 'debugfs', 'nbdfuse', 'fusermount3') }, () => {
  let h: Harness;
  let g: TestGuest;
  let wid = '';
  let sid = '';
  let close: () => Promise<void>;
  const report = pseudoRandom(1_500_000, 'libvirt-report');
  const dom = `lb-frm-${randomBytes(3).toString('hex')}`;

  before(async () => {
    const work = mkdtempSync(join(tmpdir(), 'lifeboat-frm-libvirt-'));
    let image: Buffer;
    try {
      await buildExt4Disk(join(work, 'vda.raw'), 32, { 'etc/hostname': `${dom}\n`, 'srv/report.bin': report });
      image = readFileSync(join(work, 'vda.raw'));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    ({ h, g, wid, close } = await startLibvirtService(dom, [{ target: 'vda', format: 'qcow2', size: 32 * MiB, fill: (b) => image.copy(b, 0) }], { LIFEBOAT_APPLIANCE_TCG: '1' }));
    sid = (await takeSnapshotAndWait(h, h.alice, wid, true, 300_000)).id as string;
  });
  after(async () => {
    await close?.();
  });

  test('search finds the file with its size', async () => {
    const r = await h.api(h.alice, 'POST', '/search', { file_search: { filepath: '/srv/*.bin', vm_id: g.uuid, snapshot_ids: [sid] } });
    assert.equal(r.status, 200, r.text);
    const done = await waitFor(async () => {
      const f = (await h.api(h.alice, 'GET', `/search/${r.json.file_search.id}`)).json.file_search;
      return ['completed', 'error'].includes(f.status) ? f : delay(250).then(() => null);
    }, 600_000, 'search done');
    assert.equal(done.status, 'completed', done.error_msg);
    const fss = (JSON.parse(done.json_resp) as Record<string, Record<string, unknown>[]>[])[0]![sid]!;
    assert.deepEqual(fss.map((f) => Object.keys(f)[0]), ['/dev/vda1']);
    assert.deepEqual(fss[0]!['/dev/vda1'], ['/srv/report.bin']);
    assert.equal((fss[0]!['/srv/report.bin'] as { size: number }).size, report.length);
  });

  test('mount with the domain as mount_vm_id, browse, download byte-exact, dismount', async () => {
    const m = await h.api(h.alice, 'POST', `/snapshots/${sid}/mount`, { mount: { mount_vm_id: g.uuid, options: {} } });
    assert.equal(m.status, 200, m.text);
    await waitFor(async () => {
      const s = (await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.status;
      assert.notEqual(s, 'available', 'the mount failed');
      return s === 'mounted' || delay(250).then(() => false);
    }, 900_000, 'mounted');
    const list = await h.api(h.alice, 'GET', `/snapshots/${sid}/files?path=/vda1/srv`);
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.json.files.map((f: { name: string; size: number }) => [f.name, f.size]), [['report.bin', report.length]]);
    const token = await h.token(h.alice);
    const d = await fetch(`${h.url}/v1/${h.alice.projectId}/snapshots/${sid}/files/content?path=/vda1/srv/report.bin`, { headers: { 'x-auth-token': token } });
    assert.equal(d.status, 200);
    assert.ok(Buffer.from(await d.arrayBuffer()).equals(report), 'byte for byte');
    assert.equal((await h.api(h.alice, 'POST', `/snapshots/${sid}/dismount`)).status, 200);
    assert.equal((await h.api(h.alice, 'GET', `/snapshots/${sid}`)).json.snapshot.status, 'available');
    await waitFor(() => processesTagged(`lifeboat:${h.home}`).length === 0, 30_000, 'no appliance left');
  });
});
