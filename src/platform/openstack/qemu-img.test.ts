import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, writeSync, ftruncateSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qemuImg, uploadableImage } from './qemu-img.js';

const MiB = 1 << 20;

/** A raw file of `size` bytes holding `data` at `at` (a hole elsewhere). */
function rawFile(dir: string, name: string, size: number, at: number, data: Buffer): string {
  const f = join(dir, name);
  const fd = openSync(f, 'w');
  ftruncateSync(fd, size);
  writeSync(fd, data, 0, data.length, at);
  closeSync(fd);
  return f;
}

describe('uploadableImage: what a restore uploads to Glance', () => {
  it('a mostly-hole disk becomes a small qcow2 with the same bytes; a dense one stays raw', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-qimg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const data = randomBytes(MiB);
    const sparse = rawFile(dir, 'sparse.raw', 64 * MiB, 40 * MiB, data);
    const up = await uploadableImage(sparse, 64 * MiB);
    assert.equal(up.format, 'qcow2');
    assert.ok(up.size < 4 * MiB, `qcow2 of 1 MiB of data is ${up.size} bytes`);
    const back = join(dir, 'back.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', up.file, back]);
    assert.ok(readFileSync(back).equals(readFileSync(sparse)), 'the qcow2 holds the raw bytes exactly');

    const dense = rawFile(dir, 'dense.raw', 2 * MiB, 0, randomBytes(2 * MiB));
    assert.deepEqual(await uploadableImage(dense, 2 * MiB), { file: dense, format: 'raw', size: 2 * MiB });
    assert.equal(existsSync(`${dense}.qcow2`), false);
  });

  it('a qemu-img failure names what it was converting, never a path', async () => {
    await assert.rejects(qemuImg(['info', '/nonexistent/secret/dir/disk.raw'], 'a restored disk'), (e: Error) => {
      assert.match(e.message, /^qemu-img info of a restored disk failed: /);
      assert.doesNotMatch(e.message, /secret/);
      return true;
    });
  });
});
