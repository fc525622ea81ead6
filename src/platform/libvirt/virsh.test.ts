import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { skipUnlessInstalled } from '../../nbd/testing.js';
import { Virsh } from './virsh.js';

/**
 * The virsh shell pool against libvirt's built-in test driver (`test:///default`: no daemon,
 * one running domain "test"): shells are reused, and close() leaves no virsh process behind.
 */
const URI = 'test:///default';

/** The virsh processes this process started (the pool's shells; spawned ones exit on their own). */
function virshChildren(): number[] {
  const r = spawnSync('pgrep', ['-P', String(process.pid), '-x', 'virsh'], { encoding: 'utf8' });
  return r.stdout.split('\n').map(Number).filter((n) => n > 0);
}

describe('Virsh: the shell pool', { skip: skipUnlessInstalled('virsh') }, () => {
  test('commands go through long-lived shells; close() ends every one of them', async () => {
    const virsh = new Virsh(URI);
    const outs = await Promise.all([virsh.run(['domstate', 'test']), virsh.run(['domstate', 'test']), virsh.run(['list', '--name'])]);
    assert.deepEqual(outs.map((o) => o.trim()), ['running', 'running', 'test']);
    const shells = virshChildren();
    assert.ok(shells.length >= 1 && shells.length <= 4, `shells running between commands: ${shells.length}`);
    await virsh.close();
    assert.deepEqual(virshChildren(), [], 'no virsh shell left after close()');
  });

  test('a command running while close() is called still answers; nothing is left; later calls still work', async () => {
    const virsh = new Virsh(URI);
    await virsh.run(['domstate', 'test']); // one shell up
    const running = virsh.run(['dominfo', 'test']);
    const closed = virsh.close();
    assert.match(await running, /^State:\s+running/m);
    await closed;
    assert.deepEqual(virshChildren(), []);
    assert.equal((await virsh.run(['domstate', 'test'])).trim(), 'running', 'after close() a call spawns its own virsh');
    assert.deepEqual(virshChildren(), [], 'and opens no shell');
  });

  test('failures are LibvirtErrors naming the operation, with or without a shell', async () => {
    const virsh = new Virsh(URI);
    try {
      await assert.rejects(virsh.run(['domstate', 'no-such-domain']), /libvirt domstate failed: .*failed to get domain/);
    } finally {
      await virsh.close();
    }
    await assert.rejects(virsh.run(['domstate', 'no-such-domain']), /libvirt domstate failed: .*failed to get domain/);
  });
});
