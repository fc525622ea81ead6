import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { CorruptMetadataError, IntegrityError, MissingObjectError, NotFoundError, ValidationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { installFaultHandling } from './faults.js';

const quiet: Logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {}, child: () => quiet };

/**
 * Engine faults (damaged or missing backup data) are the service's problem, not the caller's:
 * never a 400 "bad request" or a 404 about the caller's id, and never a key of the target.
 */
test('engine faults answer 500 with an operator hint, naming nothing on the target', async () => {
  const app = Fastify();
  installFaultHandling(app, { log: quiet, keystoneUri: 'http://k/v3' });
  const errors: Record<string, Error> = {
    corrupt: new CorruptMetadataError('manifests/0123abcd.json is corrupt (checksum mismatch)'),
    missing: new MissingObjectError('object packs/aa/bb-000001.pack not found'),
    integrity: new IntegrityError('chunk 1f2e in pack bb-000001 failed its hash check'),
    // Controls: the caller's own mistakes keep their 4xx.
    validation: new ValidationError('bad name'),
    notfound: NotFoundError.of('Snapshot', 'x'),
  };
  app.get('/:what', async (req) => {
    throw errors[(req.params as { what: string }).what]!;
  });
  for (const what of ['corrupt', 'missing', 'integrity']) {
    const r = await app.inject({ method: 'GET', url: `/${what}` });
    assert.equal(r.statusCode, 500, what);
    const fault = Object.values(r.json() as Record<string, { code: number; message: string }>)[0]!;
    assert.equal(fault.code, 500);
    assert.match(fault.message, /damaged or missing on the backup target.*repo verify/, what);
    assert.doesNotMatch(fault.message, /manifests\/|packs\/|pack bb|checksum/, what);
  }
  assert.equal((await app.inject({ method: 'GET', url: '/validation' })).statusCode, 400);
  assert.equal((await app.inject({ method: 'GET', url: '/notfound' })).statusCode, 404);
  await app.close();
});
