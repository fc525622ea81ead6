import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenStackSession } from './session.js';

/**
 * Which POSTs are sent again after a 5xx, against a local HTTP server playing Keystone and
 * Cinder (the layer below the session). The real services are in test/openstack-client.test.ts.
 */
describe('OpenStackSession: a POST after a 5xx', () => {
  let server: Server;
  let base = '';
  /** Answers each POST to /action: 500 while `failures` lasts, then 202; counts them. */
  const seen = { posts: 0, failures: 0 };

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/v3/auth/tokens') {
          const token = { expires_at: new Date(Date.now() + 3600_000).toISOString(), user: { id: 'u' }, project: { id: 'p' }, roles: [], catalog: [{ type: 'volumev3', endpoints: [{ interface: 'public', region_id: 'r', url: `${base}/volume` }] }] };
          res.writeHead(201, { 'content-type': 'application/json', 'x-subject-token': 'tok' }).end(JSON.stringify({ token }));
          return;
        }
        seen.posts++;
        if (seen.failures > 0) {
          seen.failures--;
          res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ computeFault: { code: 500, message: 'database is locked' } }));
          return;
        }
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const session = () =>
    new OpenStackSession({ authUrl: `${base}/v3`, auth: { kind: 'password', username: 'a', password: 'b', userDomainName: 'Default', projectName: 'p', projectDomainName: 'Default' }, interface: 'public', region: null, retries: 2 });

  it('one the caller marks idempotent is sent again and succeeds', async () => {
    seen.posts = 0;
    seen.failures = 1;
    const r = await session().call('volumev3', 'POST', '/snapshots/s/action', { json: { 'os-reset_status': { status: 'error' } }, expect: [202], idempotent: true });
    assert.equal(r.status, 202);
    assert.equal(seen.posts, 2);
  });

  it('any other is sent once: the 5xx is the caller\'s error', async () => {
    seen.posts = 0;
    seen.failures = 1;
    await assert.rejects(session().call('volumev3', 'POST', '/snapshots', { json: { snapshot: {} } }), /HTTP 500/);
    assert.equal(seen.posts, 1);
  });
});
