import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../../lib/logger.js';
import type { OpenStackApi } from '../../openstack/api.js';
import type { WaitClock } from '../../openstack/wait.js';
import { removeSnapshot, SNAPSHOT_LOST_MS, takeVolumeSnapshot } from './cinder-snapshot.js';
import { Temporaries } from './temporaries.js';

/**
 * takeVolumeSnapshot and removeSnapshot against a fake Cinder (the layer below) and a fake
 * clock: a snapshot lost in `creating` (cinder-volume died without marking it) or ending in
 * `error` is reset, deleted and taken again; three such fail the step naming the last.
 */
type Behaviour = 'lost' | 'available' | 'error' | 'slow';

function fakeCinder(behaviours: Behaviour[]) {
  const snaps = new Map<string, { status: string; name: string; readyAt: number }>();
  const calls: string[] = [];
  const warnings: string[] = [];
  let made = 0;
  let t = 0;
  const clock: WaitClock = { now: () => t, sleep: async (ms) => void (t += ms) };
  const statusAt = (s: { status: string; readyAt: number }) => (s.status === 'creating' && t >= s.readyAt ? 'available' : s.status);
  const api = {
    async createSnapshot(volumeId: string, name: string) {
      const id = `snap${++made}`;
      const b = behaviours[made - 1] ?? 'lost';
      const status = b === 'error' ? 'error' : 'creating';
      const readyAt = b === 'available' ? 2_000 + t : b === 'slow' ? t + 60_000 : Infinity;
      snaps.set(id, { status, name, readyAt });
      calls.push(`create ${id} ${name}`);
      return { id, name, status, size: 1, volume_id: volumeId };
    },
    async getSnapshot(id: string) {
      const s = snaps.get(id);
      return s ? { id, name: s.name, status: statusAt(s), size: 1, volume_id: 'v' } : null;
    },
    async resetSnapshotStatus(id: string, status: string) {
      calls.push(`reset ${id} ${status}`);
      snaps.get(id)!.status = status;
    },
    async deleteSnapshot(id: string) {
      const s = snaps.get(id);
      if (s && statusAt(s) === 'creating') throw new Error('400 Snapshot status must be available or error');
      calls.push(`delete ${id}`);
      snaps.delete(id);
    },
  } as unknown as OpenStackApi;
  const log = { info() {}, warn: (_o: unknown, msg?: string) => void warnings.push(msg ?? ''), error() {}, debug() {}, child: () => log } as unknown as Logger;
  return { api, clock, calls, warnings, snaps, now: () => t, temps: new Temporaries(log), log };
}

describe('a temporary Cinder snapshot lost in creating or failed', () => {
  it('is reset, deleted and taken again; the second one is returned and is the only temporary left', async () => {
    const c = fakeCinder(['lost', 'available']);
    const s = await takeVolumeSnapshot(c.api, 'vol-1', 'lifeboat-tmp-x', c.temps, { log: c.log, clock: c.clock });
    assert.equal(s.id, 'snap2');
    assert.equal(s.status, 'available');
    assert.deepEqual(c.calls, ['create snap1 lifeboat-tmp-x', 'reset snap1 error', 'delete snap1', 'create snap2 lifeboat-tmp-x-2']);
    assert.ok(c.now() > SNAPSHOT_LOST_MS && c.now() < SNAPSHOT_LOST_MS + 10_000, `gave the first one up after ${c.now()} ms`);
    assert.match(c.warnings.join('\n'), /Cinder snapshot snap1 of volume vol-1 stayed creating for 300 s: removing it and taking another/);
    assert.equal(c.temps.size, 1);
    assert.deepEqual(await c.temps.removeAll(), []);
    assert.equal(c.snaps.size, 0, 'removed at the end like any temporary');
  });

  it('fails after three snapshots, naming the last and the bound; none is left', async () => {
    const c = fakeCinder(['lost', 'error', 'lost']);
    await assert.rejects(takeVolumeSnapshot(c.api, 'vol-1', 't', c.temps, { log: c.log, clock: c.clock }), /Cinder snapshot snap3 of volume vol-1 stayed creating for 300 s \(3 snapshots tried\)/);
    const failedAt = c.now();
    assert.deepEqual(await c.temps.removeAll(), []);
    assert.ok(c.now() - failedAt < 10_000, 'the last lost one is reset at once, not waited out again');
    assert.equal(c.snaps.size, 0);
    assert.deepEqual(c.calls.filter((x) => x.startsWith('reset')), ['reset snap1 error', 'reset snap3 error']);
  });

  it('a snapshot that takes a minute is waited for, not taken again', async () => {
    const c = fakeCinder(['slow']);
    const s = await takeVolumeSnapshot(c.api, 'vol-1', 't', c.temps, { log: c.log, clock: c.clock });
    assert.equal(s.id, 'snap1');
    assert.deepEqual(c.warnings, []);
  });
});

describe('removeSnapshot', () => {
  it('waits for a creating snapshot to settle before deleting it (a cancel right after the create)', async () => {
    const c = fakeCinder(['slow']);
    await c.api.createSnapshot('vol-1', 't');
    await removeSnapshot(c.api, 'snap1', { clock: c.clock });
    assert.deepEqual(c.calls, ['create snap1 t', 'delete snap1']);
    assert.ok(c.now() >= 60_000);
  });

  it('a snapshot already gone is done', async () => {
    const c = fakeCinder([]);
    await removeSnapshot(c.api, 'nope', { clock: c.clock });
    assert.deepEqual(c.calls, []);
  });
});
