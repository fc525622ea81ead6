import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError } from './config.js';

/** The scale-out settings of config.ts (issue 14): several targets, worker concurrency, shutdown grace. */
test('LIFEBOAT_TARGETS: several named targets, the default first; bad lists are refused', () => {
  const one = loadConfig({}, '/srv');
  assert.deepEqual([one.defaultTarget, one.targets.map((t) => t.name)], ['default', ['default']]);
  const c = loadConfig({ LIFEBOAT_TARGETS: 'nfs1=file:///a; objects=s3://bkt/p?endpoint=http://127.0.0.1:9000 ;', LIFEBOAT_DEFAULT_TARGET: 'objects' }, '/srv');
  assert.equal(c.defaultTarget, 'objects');
  assert.deepEqual(c.targets.map((t) => t.name), ['objects', 'nfs1']);
  assert.deepEqual(c.target, { kind: 's3', bucket: 'bkt', prefix: 'p', endpoint: 'http://127.0.0.1:9000', region: null });
  assert.equal(loadConfig({ LIFEBOAT_TARGETS: 'a=file:///a;b=file:///b' }, '/srv').defaultTarget, 'a');
  const bad: [Record<string, string>, RegExp][] = [
    [{ LIFEBOAT_TARGETS: 'a=file:///a', LIFEBOAT_TARGET: 'file:///b' }, /either LIFEBOAT_TARGET .* or LIFEBOAT_TARGETS/],
    [{ LIFEBOAT_TARGETS: 'a=file:///a;a=file:///b' }, /names target a twice/],
    [{ LIFEBOAT_TARGETS: 'Big Name=file:///a' }, /name=url with a name of a-z 0-9/],
    [{ LIFEBOAT_TARGETS: 'file:///a' }, /name=url/],
    [{ LIFEBOAT_TARGETS: ' ; ' }, /declares no target/],
    [{ LIFEBOAT_TARGETS: 'a=file:///a', LIFEBOAT_DEFAULT_TARGET: 'b' }, /LIFEBOAT_DEFAULT_TARGET "b" is not one of the targets in LIFEBOAT_TARGETS \(a\)/],
    [{ LIFEBOAT_DEFAULT_TARGET: 'b' }, /needs LIFEBOAT_TARGETS/],
    [{ LIFEBOAT_TARGETS: 'a=ftp://x' }, /unknown scheme/],
  ];
  for (const [env, re] of bad) assert.throws(() => loadConfig(env, '/srv'), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(env));
});

test('LIFEBOAT_WORKER_CONCURRENCY and LIFEBOAT_SHUTDOWN_GRACE', () => {
  const d = loadConfig({}, '/srv');
  assert.deepEqual([d.workerConcurrency, d.shutdownGraceSeconds], [2, 20]);
  const c = loadConfig({ LIFEBOAT_WORKER_CONCURRENCY: '5', LIFEBOAT_SHUTDOWN_GRACE: '0' }, '/srv');
  assert.deepEqual([c.workerConcurrency, c.shutdownGraceSeconds], [5, 0]);
  assert.throws(() => loadConfig({ LIFEBOAT_WORKER_CONCURRENCY: '0' }, '/srv'), /LIFEBOAT_WORKER_CONCURRENCY must be a positive integer/);
  assert.throws(() => loadConfig({ LIFEBOAT_SHUTDOWN_GRACE: '-1' }, '/srv'), /LIFEBOAT_SHUTDOWN_GRACE must be a non-negative integer/);
});
