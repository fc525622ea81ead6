import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipUnlessInstalled, run } from '../../nbd/testing.js';
import { silentLogger } from '../../lib/logger.js';
import type { DomainDisk } from './domain-xml.js';
import { precreateScratch } from './scratch.js';

/**
 * The scratch images Lifeboat makes before `backup-begin --reuse-external` (real qemu-img; the
 * backup through libvirt that uses them is test/libvirt-platform.test.ts).
 */
const disk = (target: string) => ({ target }) as DomainDisk;
const skip = skipUnlessInstalled('qemu-img');

test('each disk gets an empty qcow2 of its size, owned like the job directory; the next job of the same sizes too, from the kept bytes', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-scratch-'));
  try {
    chownSync(dir, 65534, 65534); // as the private libvirtd's QEMU user would own it (tests run as root)
    const sizes = new Map([['vda', 3 << 20], ['vdb', 1 << 30]]);
    for (const job of ['t1', 't2']) {
      const file = (d: DomainDisk) => join(dir, `${d.target}.${job}.scratch`);
      assert.equal(await precreateScratch(dir, [disk('vda'), disk('vdb')], Promise.resolve(sizes), file, silentLogger), true);
      for (const [target, size] of sizes) {
        const info = JSON.parse(run('qemu-img', ['info', '--output=json', file(disk(target))])) as { format: string; 'virtual-size': number };
        assert.deepEqual([info.format, info['virtual-size']], ['qcow2', size]);
        assert.deepEqual([statSync(file(disk(target))).uid, statSync(file(disk(target))).gid], [65534, 65534]);
        run('qemu-img', ['check', '-q', file(disk(target))]);
      }
    }
    assert.deepEqual(readdirSync(dir).sort(), ['vda.t1.scratch', 'vda.t2.scratch', 'vdb.t1.scratch', 'vdb.t2.scratch'], 'nothing else is left in the job directory');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a disk without a size, or sizes that could not be read: false, and no file is left', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-scratch-'));
  try {
    const file = (d: DomainDisk) => join(dir, `${d.target}.t2.scratch`);
    const partial = Promise.resolve(new Map([['vda', 1 << 20]]));
    assert.equal(await precreateScratch(dir, [disk('vda'), disk('vdb')], partial, file, silentLogger), false);
    assert.deepEqual(readdirSync(dir), []);
    assert.equal(await precreateScratch(dir, [disk('vda')], Promise.reject(new Error('domain gone')), file, silentLogger), false);
    assert.equal(existsSync(file(disk('vda'))), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
