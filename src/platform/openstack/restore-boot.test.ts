import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../../lib/logger.js';
import type { OpenStackApi } from '../../openstack/api.js';
import type { OpenStackSession } from '../../openstack/session.js';
import type { WaitClock } from '../../openstack/wait.js';
import { bootServer, SCHEDULING_STUCK_MS } from './restore.js';
import type { RestoreDeps } from './restore-resources.js';
import { Temporaries } from './temporaries.js';

/**
 * bootServer against a fake Nova and Cinder (the layer below the one under test) and a fake
 * clock: a boot that sits in scheduling or ends in ERROR is deleted and made again, and one
 * that fails every time fails the step after three tries with the last reason.
 */
type Behaviour = 'stuck' | 'stuck-no-task' | 'active' | 'error';

function fakeCloud(behaviours: Behaviour[]) {
  const servers = new Map<string, Behaviour>();
  const deleted: string[] = [];
  const warnings: string[] = [];
  let made = 0;
  let t = 0;
  const clock: WaitClock = { now: () => t, sleep: async (ms) => void (t += ms) };
  const tenant = {
    async call(_service: string, method: string, path: string) {
      if (method === 'POST' && path === '/servers') {
        const id = `s${++made}`;
        servers.set(id, behaviours[made - 1] ?? 'stuck');
        return { status: 202, data: { server: { id } } };
      }
      if (method === 'DELETE') {
        const id = path.split('/').pop()!;
        servers.delete(id);
        deleted.push(id);
        return { status: 204, data: null };
      }
      throw new Error(`unexpected ${method} ${path}`);
    },
  } as unknown as OpenStackSession;
  const tenantApi = {
    async getServer(id: string) {
      const b = servers.get(id);
      if (!b) return null;
      if (b === 'active') return { id, status: 'ACTIVE', 'OS-EXT-STS:task_state': null };
      if (b === 'error') return { id, status: 'ERROR', fault: { message: 'No valid host was found.' } };
      return { id, status: 'BUILD', 'OS-EXT-STS:task_state': b === 'stuck' ? 'scheduling' : null };
    },
    async getVolume(id: string) {
      return { id, status: 'available' };
    },
  } as unknown as OpenStackApi;
  const log = { info() {}, warn: (_o: unknown, msg?: string) => void warnings.push(msg ?? ''), error() {}, debug() {}, child: () => log } as unknown as Logger;
  const d: RestoreDeps = { service: tenantApi, tenant, tenantApi, scratchDir: '/nonexistent', log };
  return { d, clock, deleted, warnings, now: () => t, temps: new Temporaries(log) };
}

describe('bootServer: a boot lost in scheduling or failed', () => {
  it('is deleted and booted again; the second boot is returned and is the only temporary left', async () => {
    const c = fakeCloud(['stuck', 'active']);
    const id = await bootServer(c.d, { name: 'x' }, ['vol-1'], c.temps, c.clock);
    assert.equal(id, 's2');
    assert.deepEqual(c.deleted, ['s1']);
    assert.equal(c.temps.size, 1, 'the published server stays registered until the restore keeps it');
    assert.ok(c.now() > SCHEDULING_STUCK_MS && c.now() < SCHEDULING_STUCK_MS + 10_000, `waited ${c.now()} ms before giving the first boot up`);
    assert.match(c.warnings.join('\n'), /s1 was not scheduled within 300 s: deleting it and booting again/);
  });

  it('fails after three boots, naming the server and the bound; the earlier two are deleted', async () => {
    const c = fakeCloud(['stuck', 'stuck-no-task', 'stuck']);
    await assert.rejects(bootServer(c.d, {}, [], c.temps, c.clock), /Nova server s3 was not scheduled within 300 s \(3 boots tried\)/);
    assert.deepEqual(c.deleted, ['s1', 's2']);
    assert.deepEqual(await c.temps.removeAll(), []);
    assert.deepEqual(c.deleted, ['s1', 's2', 's3']);
  });

  it('a boot in ERROR is deleted and booted again; three in ERROR fail with the last fault', async () => {
    const once = fakeCloud(['error', 'active']);
    assert.equal(await bootServer(once.d, {}, ['vol-1'], once.temps, once.clock), 's2');
    assert.deepEqual(once.deleted, ['s1']);
    assert.ok(once.now() < 10_000, 'an ERROR is acted on at once, not after the scheduling bound');
    assert.match(once.warnings.join('\n'), /Nova server s1 failed: ERROR: No valid host was found\.: deleting it and booting again/);

    const always = fakeCloud(['error', 'error', 'error']);
    await assert.rejects(bootServer(always.d, {}, [], always.temps, always.clock), /Nova server s3 failed: ERROR: No valid host was found\. \(3 boots tried\)/);
    assert.deepEqual(always.deleted, ['s1', 's2']);
  });
});
