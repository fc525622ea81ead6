import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NotFoundError } from '../lib/errors.js';
import { LifeboatMetrics } from '../lib/metrics.js';
import { listAll } from './backend.js';
import { backendConformance } from './backend.conformance.js';
import { MemBackend } from './mem/mem.backend.js';
import { withConcurrencyLimit } from './limit.backend.js';
import { withMetrics, type BackendOutcome } from './metrics.backend.js';
import { withRetry } from './retry.backend.js';
import { faultyBackend, transient } from './testing.js';

const silentObserver = { observeBackend() {} };
backendConformance('mem via metrics', async () => ({ backend: withMetrics(new MemBackend(), silentObserver) }));
backendConformance('mem via the service stack retry(limit(metrics))', async () => ({
  backend: withRetry(withConcurrencyLimit(withMetrics(new MemBackend(), silentObserver), 2), { sleep: async () => {} }),
}));

describe('metrics wrapper', () => {
  const recorder = () => {
    const seen: { op: string; outcome: BackendOutcome; seconds: number }[] = [];
    return { seen, observeBackend: (op: string, seconds: number, outcome: BackendOutcome) => void seen.push({ op, seconds, outcome }) };
  };

  test('every try of a retried request is one observation, with its outcome; a missing key by stat is a success', async () => {
    const mem = new MemBackend();
    await mem.put('k/1', Buffer.from('v'));
    const rec = recorder();
    const flaky = faultyBackend(mem, (op, _k, call) => (op === 'get' && call <= 2 ? transient() : null));
    const b = withRetry(withMetrics(flaky, rec), { sleep: async () => {} });
    assert.equal((await b.get('k/1')).toString(), 'v');
    assert.deepEqual(rec.seen.map((x) => [x.op, x.outcome]), [['get', 'transient'], ['get', 'transient'], ['get', null]]);
    assert.ok(rec.seen.every((x) => x.seconds >= 0 && x.seconds < 5));

    rec.seen.length = 0;
    assert.equal(await b.stat('k/none'), null);
    await assert.rejects(b.get('k/none'), NotFoundError);
    await assert.rejects(withMetrics(faultyBackend(mem, () => new Error('disk on fire')), rec).put('k/2', Buffer.from('x')), /disk on fire/);
    assert.deepEqual(rec.seen.map((x) => [x.op, x.outcome]), [['stat', null], ['get', 'not_found'], ['put', 'permanent']]);
  });

  test('a listing is observed per page step, writers per write/commit', async () => {
    const mem = new MemBackend();
    for (const k of ['p/a', 'p/b']) await mem.put(k, Buffer.from(k));
    const rec = recorder();
    const b = withMetrics(mem, rec);
    assert.deepEqual((await listAll(b, 'p/')).sort(), ['p/a', 'p/b']);
    assert.deepEqual(rec.seen.map((x) => x.op), ['list', 'list', 'list']); // two keys and the end
    if (b.openWriter) {
      rec.seen.length = 0;
      const w = await b.openWriter('p/c');
      await w.write([Buffer.from('c')]);
      await w.commit();
      assert.deepEqual(rec.seen.map((x) => x.op), ['openWriter', 'writer.write', 'writer.commit']);
    }
  });

  test('feeds the Prometheus histogram and error counter', async () => {
    const metrics = new LifeboatMetrics({ defaultMetrics: false });
    const b = withMetrics(new MemBackend(), metrics);
    await b.put('k/1', Buffer.from('v'));
    await assert.rejects(b.get('k/2'), NotFoundError);
    const text = (await metrics.render()).text;
    assert.match(text, /^lifeboat_backend_request_duration_seconds_count\{op="put"\} 1$/m);
    assert.match(text, /^lifeboat_backend_request_duration_seconds_count\{op="get"\} 1$/m);
    assert.match(text, /^lifeboat_backend_request_errors_total\{op="get",kind="not_found"\} 1$/m);
  });
});
