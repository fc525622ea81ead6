import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { hostBridges } from '../src/platform/libvirt/networks.js';
import { startHarness, type Harness } from './harness.js';
import { LIBVIRT_TOOLS, startLibvirtd, type Libvirtd } from './libvirtd.js';

/**
 * The libvirt platform's restore network targets (issue 16: the wizard maps networks to the
 * platform's networks): every libvirt network of the host as `network:<name>` (active or not),
 * through GET /platform/networks of the real service on a private libvirtd; host bridges from
 * sysfs, except a libvirt network's own bridge.
 */
const RUN = randomBytes(3).toString('hex');

describe('libvirt networks as restore targets', { skip: skipUnlessInstalled(...LIBVIRT_TOOLS) }, () => {
  let lv: Libvirtd;
  let h: Harness;
  const nets = [`lbn-${RUN}-a`, `lbn-${RUN}-b`];

  before(async () => {
    lv = await startLibvirtd();
    for (const [i, net] of nets.entries()) {
      writeFileSync(join(lv.dataDir, `${net}.xml`), `<network><name>${net}</name><bridge name='lbn${RUN}${i}'/><ip address='192.168.${200 + i}.1' netmask='255.255.255.0'/></network>`);
      lv.virsh('net-define', join(lv.dataDir, `${net}.xml`)); // defined, never started: a session libvirtd cannot make bridges
    }
    h = await startHarness({ env: { LIFEBOAT_PLATFORM: 'libvirt', LIFEBOAT_LIBVIRT_URI: lv.uri, LIFEBOAT_LIBVIRT_SCRATCH_DIR: join(lv.dataDir, 'scratch') } });
  });
  after(async () => {
    try {
      await h?.close();
    } finally {
      if (lv) {
        for (const net of nets) lv.virsh('net-undefine', net);
        await lv.stop();
      }
    }
  });

  test('GET /platform/networks lists the libvirt networks of the host, the same for every project', async () => {
    const r = await h.api(h.alice, 'GET', '/platform/networks');
    assert.equal(r.status, 200, r.text);
    const ours = r.json.networks.filter((n: { name: string }) => nets.includes(n.name));
    assert.deepEqual(ours, nets.map((name) => ({ id: `network:${name}`, name, shared: true, active: false, subnets: [] })));
    const ids = r.json.networks.map((n: { id: string }) => n.id);
    for (const id of ids) assert.match(id, /^(network|bridge):/);
    assert.ok(!ids.some((id: string) => id.startsWith(`bridge:lbn${RUN}`)), 'a network\'s own bridge is not listed twice');
    assert.deepEqual((await h.api(h.bob, 'GET', '/platform/networks')).json.networks, r.json.networks);
    lv.virsh('net-undefine', nets[1]!);
    try {
      const after = (await h.api(h.alice, 'GET', '/platform/networks')).json.networks.map((n: { name: string }) => n.name);
      assert.ok(after.includes(nets[0]) && !after.includes(nets[1]), 'an undefined network is gone at once');
    } finally {
      lv.virsh('net-define', join(lv.dataDir, `${nets[1]}.xml`));
    }
  });

  test('host bridges: interfaces with a bridge/ directory in sysfs, nothing else', async () => {
    const sys = mkdtempSync(join(tmpdir(), 'dash-sysnet-'));
    try {
      for (const [name, bridge] of [['br-ex', true], ['eth0', false], ['virbr0', true], ['bad name', true]] as const) {
        mkdirSync(join(sys, name, ...(bridge ? ['bridge'] : [])), { recursive: true });
      }
      assert.deepEqual(await hostBridges(sys), ['br-ex', 'virbr0']);
      assert.deepEqual(await hostBridges(join(sys, 'missing')), []);
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  });
});
