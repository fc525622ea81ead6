import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../../lib/logger.js';
import type { OpenStackApi } from '../../openstack/api.js';
import type { OpenStackSession } from '../../openstack/session.js';
import type { WaitClock } from '../../openstack/wait.js';
import { startServer, stopServer, type RestoreDeps } from './restore-resources.js';

/**
 * Power actions of a restore against a fake Nova (the layer below) and a fake clock. Nova sets
 * the action's task before answering 202 and reverts it when the compute host fails the action:
 * the server is back with no task in its old state, and the action is asked again.
 */
function fakeNova(outcomes: ('done' | 'reverted' | 'error')[], initial: string) {
  let status = initial;
  let task: string | null = null;
  let pending: 'done' | 'reverted' | 'error' | null = null;
  let target = '';
  const asked: string[] = [];
  const warnings: string[] = [];
  let t = 0;
  const clock: WaitClock = { now: () => t, sleep: async (ms) => void (t += ms) };
  const tenant = {
    async call(_s: string, method: string, path: string, o: { json: Record<string, null> }) {
      assert.equal(method, 'POST');
      assert.match(path, /\/servers\/s1\/action$/);
      const action = Object.keys(o.json)[0]!;
      asked.push(action);
      target = action === 'os-start' ? 'ACTIVE' : 'SHUTOFF';
      task = action === 'os-start' ? 'powering-on' : 'powering-off';
      pending = outcomes[asked.length - 1] ?? 'done';
      return { status: 202, data: null };
    },
  } as unknown as OpenStackSession;
  const tenantApi = {
    async getServer(id: string) {
      // One read later the compute host has acted on the pending action.
      const seen = { id, status, 'OS-EXT-STS:task_state': task };
      if (pending) {
        if (pending === 'done') status = target;
        if (pending === 'error') status = 'ERROR';
        task = null;
        pending = null;
      }
      return seen;
    },
  } as unknown as OpenStackApi;
  const log = { info() {}, warn: (_o: unknown, msg?: string) => void warnings.push(msg ?? ''), error() {}, debug() {}, child: () => log } as unknown as Logger;
  const d: RestoreDeps = { service: tenantApi, tenant, tenantApi, scratchDir: '/nonexistent', log };
  return { d, clock, asked, warnings };
}

describe('restore power actions: a start or stop Nova reverted is asked again', () => {
  it('a reverted os-start is asked again; the second one starts the server', async () => {
    const n = fakeNova(['reverted', 'done'], 'SHUTOFF');
    await startServer(n.d, 's1', n.clock);
    assert.deepEqual(n.asked, ['os-start', 'os-start']);
    assert.equal(n.warnings.length, 1);
  });

  it('a stop that works is asked once; three reverted stops fail naming the state Nova left', async () => {
    const ok = fakeNova(['done'], 'ACTIVE');
    await stopServer(ok.d, 's1', ok.clock);
    assert.deepEqual(ok.asked, ['os-stop']);
    const never = fakeNova(['reverted', 'reverted', 'reverted'], 'ACTIVE');
    await assert.rejects(stopServer(never.d, 's1', never.clock), /Nova server s1 to stop: Nova left it ACTIVE 3 times/);
    assert.equal(never.asked.length, 3);
  });

  it('ERROR fails at once', async () => {
    const n = fakeNova(['error'], 'SHUTOFF');
    await assert.rejects(startServer(n.d, 's1', n.clock), /Nova server s1 to start failed: ERROR/);
    assert.deepEqual(n.asked, ['os-start']);
  });
});
