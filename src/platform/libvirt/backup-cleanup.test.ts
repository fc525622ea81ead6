import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../lib/logger.js';
import { cleanupDeadBackup } from './backup.js';
import { LibvirtError, type Virsh } from './virsh.js';

/**
 * cleanupDeadBackup against a virsh that behaves as libvirt 9.0 does (CI, 3 Dec): `domjobabort`
 * of a pull backup returns while the job still exists; domjobinfo reports it, or fails with
 * 'backup job data missing', until QEMU's block jobs have ended. The real-libvirt flows are in
 * test/libvirt-platform.test.ts and test/openstack-host.test.ts; this one pins the order.
 */
const UUID = '6f1c2a52-3b59-4c1e-9d51-2f0f4f0a7c11';
const BACKUP = 'Job type:         Unbounded\nOperation:        Backup\n';
const NONE = 'Job type:         None\n';

function fakeVirsh(pollsUntilEnded: number, calls: string[]): Virsh {
  let aborted = false;
  let polls = 0;
  let checkpoints = ['lifeboat-1', 'lifeboat-2'];
  const run = async (args: readonly string[]): Promise<string> => {
    const [op, , name] = args;
    calls.push([op, name].filter(Boolean).join(' '));
    switch (op) {
      case 'domjobinfo':
        if (!aborted) return BACKUP;
        polls++;
        if (polls > pollsUntilEnded) return NONE;
        if (polls === 2) throw new LibvirtError('domjobinfo', 'Operation not supported: backup job data missing');
        return BACKUP;
      case 'domjobabort':
        aborted = true;
        return '';
      case 'checkpoint-list':
        return checkpoints.join('\n');
      case 'checkpoint-delete':
        assert.ok(!aborted || polls > pollsUntilEnded, 'no checkpoint is deleted while the job still holds its bitmaps');
        checkpoints = checkpoints.filter((c) => c !== name);
        return '';
      default:
        throw new Error(`unexpected virsh ${op}`);
    }
  };
  return { run } as unknown as Virsh;
}

test('a dead backup is cleaned up only once libvirt reports its aborted job gone; then checkpoints and scratch files go', async () => {
  const scratchDir = mkdtempSync(join(tmpdir(), 'lb-lvclean-'));
  try {
    mkdirSync(join(scratchDir, UUID));
    writeFileSync(join(scratchDir, UUID, 'vda.scratch'), 'x');
    mkdirSync(join(scratchDir, `${UUID}.xml`));
    const calls: string[] = [];
    await cleanupDeadBackup({ virsh: fakeVirsh(4, calls), scratchDir, log: silentLogger }, UUID);
    const abortAt = calls.indexOf('domjobabort');
    assert.ok(abortAt > 0, 'the job is aborted');
    const polls = calls.slice(abortAt + 1).filter((c) => c === 'domjobinfo');
    assert.equal(polls.length, 5, 'polled until the job was gone (through one "backup job data missing")');
    assert.deepEqual(calls.slice(-3), ['checkpoint-list --name', 'checkpoint-delete lifeboat-2', 'checkpoint-delete lifeboat-1'], 'newest checkpoint first, after the job ended');
    assert.equal(existsSync(join(scratchDir, UUID)), false, 'the job directory is gone');
    assert.equal(existsSync(join(scratchDir, `${UUID}.xml`)), false, 'the XML directory is gone');
  } finally {
    rmSync(scratchDir, { recursive: true, force: true });
  }
});
