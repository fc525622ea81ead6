import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileDiskSink } from '../disk-io/file-disk.js';
import { Qcow2DiskSink } from '../disk-io/qcow2-sink.js';
import { uploadsAsQcow2 } from './qemu-img.js';
import { openLocalDisks } from './restore.js';

/**
 * The local files an OpenStack restore writes before uploading them to Glance: a disk the
 * snapshot says is mostly holes is written as qcow2 straight away (uploaded as it is, no
 * conversion); a dense one, or one whose data is not known, as a sparse raw file (which
 * uploadableImage may still convert). The upload through a real Glance and Cinder, byte for
 * byte, is test/openstack-restore.test.ts.
 */
test('openLocalDisks: qcow2 for a disk known to be mostly holes, raw for a dense or unknown one', async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'lb-os-local-'));
  try {
    const GiB = 2 ** 30;
    const local = await openLocalDisks(scratch, { restoreId: '0123456789abcdef0123456789abcdef' }, [
      { device: '/dev/vda', size: GiB, data_bytes: 3 * 2 ** 20 },
      { device: '/dev/vdb', size: GiB, data_bytes: 0.9 * GiB },
      { device: '/dev/vdc', size: GiB },
    ]);
    try {
      assert.ok(local.sinks.get('/dev/vda') instanceof Qcow2DiskSink);
      assert.equal(local.files.get('/dev/vda')?.format, 'qcow2');
      assert.match(local.files.get('/dev/vda')!.file, /vda\.qcow2$/);
      for (const dev of ['/dev/vdb', '/dev/vdc']) {
        assert.ok(local.sinks.get(dev) instanceof FileDiskSink, dev);
        assert.equal(local.files.get(dev)?.format, 'raw', dev);
      }
    } finally {
      await Promise.all([...local.sinks.values()].map((s) => s.abort()));
      rmSync(local.dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('uploadsAsQcow2: below three quarters of the size holding data; never for an empty disk', () => {
  assert.equal(uploadsAsQcow2(0, 100), true);
  assert.equal(uploadsAsQcow2(74, 100), true);
  assert.equal(uploadsAsQcow2(75, 100), false);
  assert.equal(uploadsAsQcow2(0, 0), false);
});
