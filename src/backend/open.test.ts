import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { TransientError } from './backend.js';
import { BackendConfigError, openBackend } from './open.js';

test('file:// opens an fs backend behind the wrappers; the service creates the directory, tools require it', async () => {
  const root = await mkdtemp(join(tmpdir(), 'lb-open-'));
  try {
    const path = join(root, 'target');
    await assert.rejects(openBackend({ kind: 'file', path }, { create: false }), (e: unknown) => e instanceof BackendConfigError && e.message.includes('does not exist'));
    const b = await openBackend({ kind: 'file', path }, { create: true });
    assert.ok((await stat(path)).isDirectory());
    await b.put('a/b', Buffer.from('x'));
    assert.equal((await b.get('a/b')).toString(), 'x');
    // The streaming, read-into and sweep extensions survive the wrapping.
    assert.equal(typeof b.openWriter, 'function');
    assert.equal(typeof b.getRangeInto, 'function');
    assert.equal(await b.sweepLeftovers!(0), 0);
    const again = await openBackend({ kind: 'file', path }, { create: false, connections: 1 });
    assert.equal((await again.get('a/b')).toString(), 'x');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

// s3:// targets: see s3/s3.backend.test.ts (opened against a real S3 server; a missing bucket is a clear error).

test('TransientError reads as "unavailable" when retries run out, never as bad input', () => {
  const e = new TransientError('503');
  assert.equal(e.kind, 'unavailable');
});
