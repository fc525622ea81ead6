import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runLifeboat } from './process.js';

/**
 * The operator tools open the backup target through the same registry as the service
 * (backend/open.ts): the URL scheme picks the backend, and a target that cannot be opened as
 * configured stops the command with a configuration error (exit 2) naming the target.
 */
const home = mkdtempSync(join(tmpdir(), 'lb-target-'));
after(() => rmSync(home, { recursive: true, force: true }));

test('repo tools refuse an unknown scheme, an s3:// target they cannot reach and a missing directory, clearly', () => {
  const run = (target: string) => runLifeboat({ LIFEBOAT_HOME: home, LIFEBOAT_TARGET: target }, ['repo', 'verify']);
  const unknown = run('nfs://server/export');
  assert.equal(unknown.status, 2, unknown.stderr);
  assert.match(unknown.stderr, /configuration error: LIFEBOAT_TARGET must be file:\/\/.* or s3:\/\//);

  // Nothing listens on port 1: the bucket check at open fails, naming the target, not the secret.
  const s3 = runLifeboat(
    { LIFEBOAT_HOME: home, LIFEBOAT_TARGET: 's3://lifeboat-backups/site1?endpoint=http://127.0.0.1:1&region=us-east-1', AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'not-a-real-secret' },
    ['repo', 'verify'],
  );
  assert.equal(s3.status, 2, s3.stderr);
  assert.match(s3.stderr, /configuration error: backup target s3:\/\/lifeboat-backups\/site1: the S3 endpoint cannot be reached \(.*ECONNREFUSED/);
  assert.doesNotMatch(s3.stderr, /not-a-real-secret/);

  const missing = run(`file://${join(home, 'no-such-dir')}`);
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /configuration error: backup target file:\/\/.*no-such-dir does not exist/);
  assert.equal(missing.stdout, '');
});
