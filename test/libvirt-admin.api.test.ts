import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, skipUnlessInstalled } from '../src/nbd/testing.js';
import { startHarness, type Harness } from './harness.js';
import { LIBVIRT_TOOLS, startLibvirtd, testDomainXml, type Libvirtd } from './libvirtd.js';

/**
 * The admin API of `lifeboat libvirt-assign` (issue 11), a Lifeboat extension under
 * /v1/{tenant}/lifeboat-ext/libvirt/…: an admin gives a domain to a project and takes it away;
 * a member is refused (403) before any lookup; an unknown domain is 404; bad input is 400 and
 * changes nothing. Real private libvirtd; the domain is defined, not started.
 */
describe('libvirt domain assignment API', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let h: Harness;
  let uuid: string;
  const dom = `lb-assign-${randomBytes(3).toString('hex')}`;
  const path = () => `/lifeboat-ext/libvirt/domains/${uuid}/assignment`;

  before(async () => {
    lv = await startLibvirtd();
    const disk = join(lv.dataDir, `${dom}.qcow2`);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    lv.own(disk);
    writeFileSync(join(lv.dataDir, `${dom}.xml`), testDomainXml(dom, lv.domainType, disk));
    lv.virsh('define', join(lv.dataDir, `${dom}.xml`));
    uuid = lv.virsh('domuuid', dom).trim();
    h = await startHarness({ env: { LIFEBOAT_PLATFORM: 'libvirt', LIFEBOAT_LIBVIRT_URI: lv.uri, LIFEBOAT_LIBVIRT_SCRATCH_DIR: lv.dataDir } });
  });

  after(async () => {
    try {
      await h?.close();
    } finally {
      if (lv) {
        try {
          lv.virsh('undefine', dom);
        } finally {
          await lv.stop();
        }
      }
    }
  });

  const visibleTo = async (projectId: string) => (await h.lb.platform.getInstance(projectId, uuid)) !== null;

  test('a member gets 403 for assign and unassign, and nothing changes', async () => {
    for (const [method, body] of [['PUT', { assignment: { project_id: h.alice.projectId } }], ['DELETE', undefined]] as const) {
      const r = await h.api(h.alice, method, path(), body);
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /Policy doesn't allow lifeboat:libvirt_assign to be performed/);
    }
    assert.equal(await visibleTo(h.alice.projectId), false);
  });

  test('an admin assigns a domain to a project (the tenant then sees it, others do not) and unassigns it', async () => {
    const r = await h.api(h.admin, 'PUT', path(), { assignment: { project_id: h.alice.projectId } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { assignment: { domain_id: uuid, name: dom, project_id: h.alice.projectId } });
    assert.equal(await visibleTo(h.alice.projectId), true);
    assert.equal(await visibleTo(h.bob.projectId), false);
    assert.match(lv.virsh('dumpxml', dom, '--inactive'), new RegExp(`project="${h.alice.projectId}"`), 'in the persistent definition');
    const w = await h.api(h.alice, 'POST', '/workloads', { workload: { name: 'assigned', instances: [{ 'instance-id': uuid }] } });
    assert.equal(w.status, 202, `the tenant can protect it: ${w.text}`);

    const moved = await h.api(h.admin, 'PUT', path(), { assignment: { project_id: h.bob.projectId } });
    assert.equal(moved.status, 200, moved.text);
    assert.deepEqual([await visibleTo(h.alice.projectId), await visibleTo(h.bob.projectId)], [false, true], 'reassigned');

    const removed = await h.api(h.admin, 'DELETE', path());
    assert.equal(removed.status, 200, removed.text);
    assert.deepEqual(removed.json, { assignment: { domain_id: uuid, name: dom, project_id: null } });
    assert.equal(await visibleTo(h.bob.projectId), false, 'invisible again');
    assert.doesNotMatch(lv.virsh('dumpxml', dom, '--inactive'), /urn:lifeboat/);
  });

  test('unknown domain → 404 (a UUID libvirt does not know, or not a UUID); bad project id → 400; nothing changes', async () => {
    const unknown = await h.api(h.admin, 'PUT', '/lifeboat-ext/libvirt/domains/00000000-0000-4000-8000-000000000000/assignment', { assignment: { project_id: h.alice.projectId } });
    assert.equal(unknown.status, 404, unknown.text);
    assert.doesNotMatch(unknown.text, /\/tmp|socket=/, 'no path in the message');
    assert.equal((await h.api(h.admin, 'DELETE', `/lifeboat-ext/libvirt/domains/${dom}/assignment`)).status, 404, 'names are not accepted');
    for (const body of [{}, { assignment: {} }, { assignment: { project_id: 'alpha' } }, { assignment: { project_id: 42 } }, { assignment: { project_id: h.alice.projectId.toUpperCase() } }]) {
      const r = await h.api(h.admin, 'PUT', path(), body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.match(r.text, /"badRequest"/);
    }
    assert.equal(await visibleTo(h.alice.projectId), false);
  });
});
