import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { RequestContext } from '../domain/context.js';
import { UnauthenticatedError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { redactPaths } from '../lib/redact.js';
import { buildHttpServer } from './server.js';
import { policy } from './route-policy.js';

/**
 * The edge of the HTTP server: errors Fastify and Node raise before a route runs come back as
 * OpenStack faults, after the token check under /v1; one access-log line per request.
 */

const TENANT = 'd'.repeat(32);
const TOKEN = 'good-token-0123456789';

function ctx(requestId: string): RequestContext {
  return { requestId, userId: 'u1', userName: 'alice', projectId: TENANT, projectName: 'demo', roles: ['member'], isAdmin: false };
}

interface Line {
  obj: Record<string, unknown>;
  msg: string | undefined;
}

function recordingLogger(lines: Line[]): Logger {
  const rec = (obj: object | string, msg?: string) => void lines.push({ obj: typeof obj === 'string' ? { text: obj } : (obj as Record<string, unknown>), msg });
  const l: Logger = { info: rec, warn: rec, error: rec, debug: rec, child: () => l };
  return l;
}

/** Sends raw bytes and returns status, headers and body of the answer. */
async function raw(port: number, text: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const answer = await new Promise<string>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end(text));
    let data = '';
    s.on('data', (c) => (data += c.toString('latin1')));
    s.on('close', () => resolve(data));
    s.on('error', reject);
  });
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  const [statusLine = '', ...hs] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const h of hs) {
    const i = h.indexOf(':');
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

function get(path: string, headers: Record<string, string> = {}): string {
  const hs = Object.entries({ host: 'lb.test', connection: 'close', ...headers })
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n');
  return `GET ${path} HTTP/1.1\r\n${hs}\r\n\r\n`;
}

describe('HTTP edge: every error is a fault, auth first', () => {
  let app: FastifyInstance;
  let port: number;
  const lines: Line[] = [];

  before(async () => {
    app = await buildHttpServer({
      log: recordingLogger(lines),
      publicUrl: 'http://lb.test',
      validator: {
        validate: async (token, requestId) => {
          if (token !== TOKEN) throw new UnauthenticatedError();
          return ctx(requestId);
        },
      },
      policy: { check: () => true },
      keystoneUri: 'http://lb.test/identity/v3',
      v1Routes: [
        async (v1) => {
          v1.get('/workloads/:workload_id', policy('workload:workload_show'), async () => ({ ok: true }));
          v1.post('/workloads', policy('workload:workload_create'), async () => ({ ok: true }));
        },
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const a = app.server.address();
    port = typeof a === 'object' && a ? a.port : 0;
  });
  after(async () => {
    await app.close();
  });

  it('bad %-encoding: 401 without a token, then 400 badRequest in the fault envelope', async () => {
    const path = `/v1/${TENANT}/workloads/%E0%A4%A`;
    const anon = await raw(port, get(path));
    assert.equal(anon.status, 401);
    assert.deepEqual(JSON.parse(anon.body), { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } });
    assert.match(anon.headers['www-authenticate'] ?? '', /^Keystone uri=/);
    const r = await raw(port, get(path, { 'x-auth-token': TOKEN }));
    assert.equal(r.status, 400);
    assert.deepEqual(JSON.parse(r.body), { badRequest: { code: 400, message: 'Malformed request url' } });
    assert.match(r.headers['x-openstack-request-id'] ?? '', /^req-/);
    const logged = lines.filter((l) => l.msg === 'request' && l.obj.reqId === r.headers['x-openstack-request-id']);
    assert.deepEqual(logged.map((l) => l.obj.status), [400], 'refused before routing, and still in the access log, once');
  });

  it('a path element over the length limit: 401 without a token, then 414 uriTooLong', async () => {
    const path = `/v1/${TENANT}/workloads/${'a'.repeat(300)}`;
    assert.equal((await raw(port, get(path))).status, 401);
    const r = await raw(port, get(path, { 'x-auth-token': TOKEN }));
    assert.equal(r.status, 414);
    const body = JSON.parse(r.body);
    assert.equal(body.uriTooLong.code, 414);
    assert.doesNotMatch(r.body, /aaaaaaaaaa/, 'the URL is not echoed');
  });

  it('outside /v1 a bad URL is a 400 fault with no auth involved', async () => {
    const r = await raw(port, get('/%E0%A4%A'));
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).badRequest.code, 400);
  });

  it('headers too large: 431 headersTooLarge with a request id', async () => {
    const r = await raw(port, get(`/v1/${TENANT}/workloads/x`, { 'x-big': 'x'.repeat(20_000), 'x-auth-token': TOKEN }));
    assert.equal(r.status, 431);
    assert.deepEqual(JSON.parse(r.body), { headersTooLarge: { code: 431, message: 'Request header fields too large.' } });
    assert.match(r.headers['x-openstack-request-id'] ?? '', /^req-/);
  });

  it('a body that is not JSON: 401 without a token, then 415 badMediaType (text/plain included)', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const send = (headers: Record<string, string>) =>
        app.inject({ method: 'POST', url: `/v1/${TENANT}/workloads`, headers: { 'content-type': type, ...headers }, payload: 'a=b' });
      assert.equal((await send({})).statusCode, 401, type);
      const r = await send({ 'x-auth-token': TOKEN });
      assert.equal(r.statusCode, 415, type);
      assert.deepEqual(r.json(), { badMediaType: { code: 415, message: 'Unsupported Content-Type' } });
    }
  });

  it('writes one access-log line per request: address, method, route, status, latency, request id; never the token', async () => {
    lines.length = 0;
    const r = await app.inject({ method: 'GET', url: `/v1/${TENANT}/workloads/w1`, headers: { 'x-auth-token': TOKEN }, remoteAddress: '192.0.2.7' });
    assert.equal(r.statusCode, 200);
    const access = lines.filter((l) => l.msg === 'request');
    assert.equal(access.length, 1);
    const a = access[0]!.obj;
    assert.equal(a.remoteAddress, '192.0.2.7');
    assert.equal(a.method, 'GET');
    assert.equal(a.route, '/v1/:tenant_id/workloads/:workload_id');
    assert.equal(a.status, 200);
    assert.equal(typeof a.ms, 'number');
    assert.equal(a.reqId, r.headers['x-openstack-request-id']);
    assert.doesNotMatch(JSON.stringify(lines), new RegExp(TOKEN));
    // Refused and unrouted requests are logged too.
    lines.length = 0;
    await app.inject({ method: 'GET', url: `/v1/${TENANT}/nothing-here`, headers: { 'x-auth-token': 'wrong' } });
    assert.deepEqual(
      lines.filter((l) => l.msg === 'request').map((l) => [l.obj.status, l.obj.route]),
      [[401, '(no route)']],
    );
  });
});

describe('redactPaths', () => {
  it('hides absolute server paths and keeps dates, device names and plain words', () => {
    assert.equal(redactPaths("ENOENT: no such file or directory, open '/var/lib/lifeboat/disks/a.img'"), "ENOENT: no such file or directory, open '[path]'");
    assert.equal(redactPaths('target file:///srv/backup/target is full'), 'target file:[path] is full');
    assert.equal(redactPaths('Invalid start_date: expected MM/DD/YYYY'), 'Invalid start_date: expected MM/DD/YYYY');
    assert.equal(redactPaths('disk /dev/vda of vm-1 failed'), 'disk /dev/vda of vm-1 failed');
  });
});
