import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { silentLogger } from '../lib/logger.js';
import { LifeboatMetrics } from '../lib/metrics.js';
import { installOps, type ReadinessCheck } from './ops.routes.js';

async function app(readiness: ReadinessCheck[]) {
  const a = Fastify();
  installOps(a, { metrics: new LifeboatMetrics({ defaultMetrics: false }), metricsAccess: 'open', readiness, readinessTimeoutMs: 200 }, {
    log: silentLogger,
    policy: { check: () => false },
    authenticate: async () => {
      throw new Error('no tokens here');
    },
  });
  await a.ready();
  return a;
}

test('/readyz: a failing or hanging check is 503 naming it, the others still run; /healthz stays 200', async () => {
  const never = new Promise<void>(() => {});
  const a = await app([
    { name: 'store', check: async () => {} },
    { name: 'target', check: () => never },
    { name: 'queue', check: async () => Promise.reject(new Error('connection refused at /var/run/secret.sock')) },
  ]);
  const r = await a.inject({ method: 'GET', url: '/readyz' });
  assert.equal(r.statusCode, 503);
  assert.deepEqual(r.json(), { status: 'not ready', checks: { store: 'ok', target: 'unreachable', queue: 'unreachable' } });
  assert.ok(!r.body.includes('secret'), 'the reason stays in the log');
  assert.equal((await a.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  await a.close();
});

test('/metrics with access open needs no token; unmatched URLs count under one label', async () => {
  const a = await app([]);
  await a.inject({ method: 'GET', url: '/no/such/thing/123' });
  const r = await a.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.9' });
  assert.equal(r.statusCode, 200);
  assert.match(r.body, /^lifeboat_http_requests_total\{method="GET",route="\(unmatched\)",status_code="404"\} 1$/m);
  assert.ok(!r.body.includes('/no/such/thing'));
  await a.close();
});
