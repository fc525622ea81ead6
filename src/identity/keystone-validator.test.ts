import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UnauthenticatedError, UnavailableError } from '../lib/errors.js';
import { KEYSTONE_UNAVAILABLE, KeystoneValidator, keystoneV3Url } from './keystone-validator.js';

// Transport-level failures against bare node:http servers. The full protocol against a real
// (embedded) Keystone is tested in http/identity.routes.test.ts.

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
function validator(url: string, over: Partial<ConstructorParameters<typeof KeystoneValidator>[0]> = {}) {
  return new KeystoneValidator({ url, username: 'svc', password: 'pw', projectName: 'service', timeoutMs: 2000, ...over });
}
const isUnavailable = (e: unknown) => e instanceof UnavailableError && e.message === KEYSTONE_UNAVAILABLE;

describe('KeystoneValidator transport', () => {
  it('normalises the Keystone URL to .../v3', () => {
    assert.equal(keystoneV3Url('http://ks:5000'), 'http://ks:5000/v3');
    assert.equal(keystoneV3Url('http://ks:5000/v3/'), 'http://ks:5000/v3');
    assert.equal(keystoneV3Url('http://h/identity'), 'http://h/identity/v3');
  });

  it('Keystone down (closed port) → UnavailableError, after the configured retries', async () => {
    const s = createServer();
    const url = await listen(s);
    await close(s); // the port is now closed
    await assert.rejects(validator(url).validate('tok', 'r'), isUnavailable);
  });

  it('Keystone timing out → UnavailableError within the timeout', async () => {
    const s = createServer(() => {
      /* never answers */
    });
    const url = await listen(s);
    try {
      const t0 = Date.now();
      await assert.rejects(validator(url, { timeoutMs: 200 }).validate('tok', 'r'), isUnavailable);
      assert.ok(Date.now() - t0 < 1500, 'no retry after a timeout');
    } finally {
      await close(s);
    }
  });

  it('Keystone 5xx → UnavailableError; service credentials refused → UnavailableError', async () => {
    for (const status of [500, 503, 401]) {
      const s = createServer((_req, res) => {
        res.writeHead(status, { 'content-type': 'application/json' }).end('{"error": {}}');
      });
      const url = await listen(s);
      try {
        await assert.rejects(validator(url).validate('tok', 'r'), isUnavailable, `status ${status}`);
      } finally {
        await close(s);
      }
    }
  });

  it('a token that cannot be a header value is 401 without asking Keystone', async () => {
    let calls = 0;
    const s = createServer((_req, res) => {
      calls++;
      res.writeHead(500).end();
    });
    const url = await listen(s);
    try {
      const v = validator(url);
      await assert.rejects(v.validate('bad token\n', 'r'), (e: unknown) => e instanceof UnauthenticatedError);
      await assert.rejects(v.validate(undefined, 'r'), (e: unknown) => e instanceof UnauthenticatedError);
      assert.equal(calls, 0);
    } finally {
      await close(s);
    }
  });
});
