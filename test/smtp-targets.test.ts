import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { startHarness, type Harness, type TestUser } from './harness.js';

/**
 * No SSRF through settings, on the real service: only an admin may choose where the server
 * opens SMTP connections or trigger the test e-mail; targets outside LIFEBOAT_SMTP_ALLOW are
 * refused before any connection; a failing exchange answers 502/400 without echoing anything
 * the remote end said.
 */

const BANNER = 'SSH-2.0-OpenSSH_9.2 internal-secret-banner';

const item = (name: string, value: string) => ({ name, value, category: '', is_public: false, is_hidden: false, metadata: {}, type: '', description: '' });
const target = (host: string, port: number) => [
  item('smtp_default_recipient', 'ops@example.test'),
  item('smtp_default_sender', 'lifeboat@example.test'),
  item('smtp_server_name', host),
  item('smtp_port', String(port)),
  item('smtp_timeout', '5'),
];

describe('SMTP targets: admin only, allowlisted, no banner echo', () => {
  let h: Harness;
  let banner: Server;
  let bannerPort: number;
  let connections = 0;

  before(async () => {
    // A TCP service that is no SMTP server: it greets with its own banner.
    banner = createServer((sock) => {
      connections++;
      sock.on('error', () => undefined);
      sock.end(`${BANNER}\r\n`);
    });
    await new Promise<void>((r) => banner.listen(0, '127.0.0.1', () => r()));
    bannerPort = (banner.address() as { port: number }).port;
    h = await startHarness({ env: { LIFEBOAT_SMTP_ALLOW: `127.0.0.1,Mail.Example.test:587` } });
  });
  after(async () => {
    await h.close();
    await new Promise<void>((r) => banner.close(() => r()));
  });

  const post = (u: TestUser, settings: unknown) => h.api(u, 'POST', '/settings', { settings });

  test('a member setting the SMTP host or port, or sending the test e-mail → 403; other settings are fine', async () => {
    const r = await post(h.alice, target('127.0.0.1', bannerPort));
    assert.equal(r.status, 403);
    assert.equal(r.json.forbidden.message, "Policy doesn't allow workload:settings_smtp_update to be performed.");
    assert.equal((await h.api(h.alice, 'PUT', '/settings', { settings: [item('smtp_port', '25')] })).status, 403);
    assert.equal((await h.api(h.alice, 'POST', '/workloads/settings', { settings: { smtp_server_name: 'example.org' } })).status, 403);
    assert.equal((await h.api(h.alice, 'GET', '/workloads/email/test_email')).status, 403);
    assert.equal((await post(h.alice, [item('smtp_timeout', '7'), item('smtp_server_name', '')])).status, 200, 'clearing the host is no SSRF');
    assert.equal(connections, 0);
  });

  test('an admin cannot save a target outside LIFEBOAT_SMTP_ALLOW (host, or port of a host:port entry)', async () => {
    for (const [host, port] of [
      ['169.254.169.254', 80],
      ['localhost', 25],
      ['mail.example.test', 25],
    ] as const) {
      const r = await post(h.admin, target(host, port));
      assert.equal(r.status, 400, `${host}:${port}`);
      assert.equal(r.json.badRequest.message, `SMTP server ${host}:${port} is not allowed on this server (LIFEBOAT_SMTP_ALLOW).`);
    }
    assert.equal((await post(h.admin, target('MAIL.example.test.', 587))).status, 200, 'names compare case-insensitively');
    // A port change alone is checked against the stored host too.
    const portOnly = await post(h.admin, [item('smtp_port', '2525')]);
    assert.equal(portOnly.status, 400);
    assert.match(portOnly.json.badRequest.message, /MAIL\.example\.test\.:2525 is not allowed/);
    assert.equal(connections, 0);
  });

  test('a server that is no SMTP server: 502 badGateway, its banner never echoed', async () => {
    assert.equal((await post(h.admin, target('127.0.0.1', bannerPort))).status, 200);
    const r = await h.api(h.admin, 'GET', '/workloads/email/test_email');
    assert.equal(r.status, 502, r.text);
    assert.deepEqual(r.json, { badGateway: { code: 502, message: `SMTP server 127.0.0.1:${bannerPort} did not answer as an SMTP server.` } });
    assert.ok(!r.text.includes('OpenSSH') && !r.text.includes('internal-secret'));
    assert.ok(connections >= 1);
  });

  test('nothing listening: 502 badGateway naming the target only', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    assert.equal((await post(h.admin, target('127.0.0.1', port))).status, 200);
    const r = await h.api(h.admin, 'GET', '/workloads/email/test_email');
    assert.equal(r.status, 502);
    assert.equal(r.json.badGateway.message, `SMTP server 127.0.0.1:${port} cannot be reached.`);
  });
});
