import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openDirect } from '../../lib/direct-io.js';
import { DirectStream, STAGE } from './direct-stream.js';

/** Parts of odd sizes that straddle stage boundaries; each is overwritten once written (the caller reuses its buffer). */
async function streamInto(s: DirectStream, total: number): Promise<Buffer> {
  const expected = randomBytes(total);
  const scratch = Buffer.alloc(700_001);
  for (let off = 0; off < total; ) {
    const n = Math.min(total - off, 1 + ((off * 7919) % scratch.length));
    expected.copy(scratch, 0, off, off + n);
    await s.write([scratch.subarray(0, n)]);
    scratch.fill(0xee, 0, n);
    off += n;
  }
  return expected;
}

async function withFile(f: (file: string, fh: FileHandle) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lb-direct-'));
  const file = join(dir, 'obj');
  const fh = await open(file, 'wx');
  try {
    await f(file, fh);
  } finally {
    await fh.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

test('direct stream: whole stages and a tail read back byte for byte', async () => {
  await withFile(async (file, fh) => {
    let opened = 0;
    const s = new DirectStream(file, fh, async (f) => {
      opened++;
      return openDirect(f);
    });
    const expected = await streamInto(s, 3 * STAGE + 12_345);
    await s.finish();
    await fh.sync();
    assert.equal(opened, 1, 'the direct descriptor is opened once, at the first full stage');
    assert.deepEqual(await readFile(file), expected);
  });
});

test('direct stream: an object smaller than a stage never opens O_DIRECT', async () => {
  await withFile(async (file, fh) => {
    const s = new DirectStream(file, fh, () => assert.fail('opened O_DIRECT for a small object'));
    const expected = await streamInto(s, STAGE - 1);
    await s.finish();
    assert.deepEqual(await readFile(file), expected);
  });
});

test('direct stream: a filesystem without O_DIRECT, and a direct write refused with EINVAL, fall back to buffered writes', async () => {
  await withFile(async (file, fh) => {
    const s = new DirectStream(file, fh, async () => null);
    const expected = await streamInto(s, 2 * STAGE + 1);
    await s.finish();
    assert.deepEqual(await readFile(file), expected);
  });
  await withFile(async (file, fh) => {
    let writes = 0;
    let closed = false;
    const refusing = {
      write: async () => {
        writes++;
        throw Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' });
      },
      close: async () => {
        closed = true;
      },
    } as unknown as FileHandle;
    const s = new DirectStream(file, fh, async () => refusing);
    const expected = await streamInto(s, 3 * STAGE + 5);
    await s.finish();
    assert.equal(writes, 1, 'after one refusal the rest goes buffered');
    assert.equal(closed, true);
    assert.deepEqual(await readFile(file), expected);
  });
});

test('direct stream: another write error fails the stream (no silent fallback), abandon then settles', async () => {
  await withFile(async (file, fh) => {
    const failing = {
      write: async () => {
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      },
      close: async () => undefined,
    } as unknown as FileHandle;
    const s = new DirectStream(file, fh, async () => failing);
    await assert.rejects(async () => {
      await streamInto(s, 3 * STAGE);
      await s.finish();
    }, /EIO/);
    await s.abandon();
  });
});
