import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listAll } from './backend.js';
import { backendConformance } from './backend.conformance.js';
import { FsBackend } from './fs.backend.js';

async function fresh() {
  const dir = await mkdtemp(join(tmpdir(), 'lb-fsb-'));
  return { dir, backend: new FsBackend(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

backendConformance('fs', fresh);

test('fs: a put leaves no temp file behind and listings skip crash leftovers', async () => {
  const { dir, backend, cleanup } = await fresh();
  try {
    await backend.put('x/obj', Buffer.from('data'));
    assert.deepEqual(await readdir(join(dir, 'x')), ['obj']);
    await writeFile(join(dir, 'x', '.tmp-deadbeef'), 'partial'); // a writer killed mid-put
    assert.deepEqual(await listAll(backend, 'x/'), ['x/obj']);
  } finally {
    await cleanup();
  }
});

test('fs: a listing that fails throws instead of looking empty', { skip: process.getuid?.() === 0 }, async () => {
  const { dir, backend, cleanup } = await fresh();
  try {
    await backend.put('locked/a', Buffer.from('1'));
    await chmod(join(dir, 'locked'), 0o000);
    await assert.rejects(listAll(backend, 'locked/'));
  } finally {
    await chmod(join(dir, 'locked'), 0o755);
    await cleanup();
  }
});

test('fs: a prefix that is a file, not a folder, makes list throw', async () => {
  const { dir, backend, cleanup } = await fresh();
  try {
    await mkdir(join(dir, 'a'), { recursive: true });
    await writeFile(join(dir, 'a', 'b'), 'x');
    await assert.rejects(listAll(backend, 'a/b/'));
  } finally {
    await cleanup();
  }
});
