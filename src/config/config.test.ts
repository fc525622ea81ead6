import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError } from './config.js';

test('defaults live under LIFEBOAT_HOME', () => {
  const c = loadConfig({}, '/srv');
  assert.equal(c.home, '/srv/.lifeboat');
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 8780 });
  assert.equal(c.db, 'sqlite:/srv/.lifeboat/lifeboat.db');
  assert.deepEqual(c.target, { kind: 'file', path: '/srv/.lifeboat/target' });
  assert.equal(c.targetConnections, null);
  assert.equal(c.platform, 'local');
  assert.equal(c.inventory, '/srv/.lifeboat/inventory.json');
  assert.equal(c.identity, '/srv/.lifeboat/identity.json');
  assert.equal(c.restoreDir, '/srv/.lifeboat/instances');
  assert.equal(c.keystone, null);
  assert.equal(c.policy, null);
  assert.equal(c.publicUrl, 'http://127.0.0.1:8780');
});

test('bad values name the variable', () => {
  const bad: Record<string, string>[] = [
    { LIFEBOAT_LISTEN: 'nope' },
    { LIFEBOAT_LISTEN: '127.0.0.1:99999' },
    { LIFEBOAT_DB: 'mysql://x' },
    { LIFEBOAT_DB: 'sqlite:' },
    { LIFEBOAT_TARGET: 'file://relative/dir' },
    { LIFEBOAT_TARGET: 'nfs://server/export' },
    { LIFEBOAT_TARGET: '/srv/backups' },
    { LIFEBOAT_TARGET: 's3://Bad_Bucket' },
    { LIFEBOAT_TARGET: 's3://bucket:9000/x' },
    { LIFEBOAT_TARGET: 's3://key:secret@bucket/x' },
    { LIFEBOAT_TARGET: 's3://bucket/a%20b' },
    { LIFEBOAT_TARGET: 's3://bucket?endpoint=ftp://x' },
    { LIFEBOAT_TARGET: 's3://bucket?endpoint=http://u:p@minio:9000' },
    { LIFEBOAT_TARGET: 's3://bucket?acl=public' },
    { LIFEBOAT_TARGET: 's3://bucket?region=Mars%201' },
    { LIFEBOAT_TARGET: 's3://bucket?upload_buffer_mib=4' },
    { LIFEBOAT_TARGET: 's3://bucket?upload_buffer_mib=1e3' },
    { LIFEBOAT_TARGET_CONNECTIONS: '0' },
    { LIFEBOAT_KEYSTONE_URL: 'http://k:5000/v3' },
    { LIFEBOAT_KEYSTONE_URL: 'not a url', LIFEBOAT_KEYSTONE_USER: 'u', LIFEBOAT_KEYSTONE_PASSWORD: 'p', LIFEBOAT_KEYSTONE_PROJECT: 's' },
    { LIFEBOAT_TOKEN_TTL: '-5' },
    { LIFEBOAT_HOME: '' },
    { LIFEBOAT_PLATFORM: 'vmware' },
    { LIFEBOAT_PLATFORM: 'Local' },
    { LIFEBOAT_PLATFORM: '' },
    { LIFEBOAT_METRICS_ACCESS: 'everyone' },
    { LIFEBOAT_METRICS_LISTEN: '9100' },
    { LIFEBOAT_AUDIT_RETENTION_DAYS: '0' },
  ];
  for (const env of bad) {
    const name = Object.keys(env)[0]!;
    assert.throws(() => loadConfig(env, '/srv'), (e: unknown) => e instanceof ConfigError && e.message.includes(name), JSON.stringify(env));
  }
});

test('postgres url and keystone settings are taken as given', () => {
  const c = loadConfig(
    {
      LIFEBOAT_DB: 'postgres://postgres@127.0.0.1:5432/test',
      LIFEBOAT_KEYSTONE_URL: 'http://keystone:5000/v3/',
      LIFEBOAT_KEYSTONE_USER: 'lifeboat',
      LIFEBOAT_KEYSTONE_PASSWORD: 'pw',
      LIFEBOAT_KEYSTONE_PROJECT: 'service',
      LIFEBOAT_LISTEN: '0.0.0.0:9000',
      LIFEBOAT_NODE_NAME: 'TVM1',
    },
    '/srv',
  );
  assert.equal(c.db, 'postgres://postgres@127.0.0.1:5432/test');
  assert.equal(c.keystone?.url, 'http://keystone:5000/v3');
  assert.equal(c.nodeName, 'TVM1');
  assert.equal(c.listen.port, 9000);
});

test('login limits and the SMTP allowlist: defaults, parsing, refusals', () => {
  const d = loadConfig({}, '/srv');
  assert.deepEqual(d.login, { userFailures: 6, addressFailures: 30, lockoutMs: 900_000, issuesPerMinute: 120 });
  assert.equal(d.smtpAllow, null, 'unset: no list, only admins can save a target');
  const c = loadConfig(
    {
      LIFEBOAT_LOCKOUT_FAILURES: '0',
      LIFEBOAT_LOCKOUT_ADDRESS_FAILURES: '12',
      LIFEBOAT_LOCKOUT_DURATION: '60',
      LIFEBOAT_TOKEN_RATE: '5',
      LIFEBOAT_SMTP_ALLOW: 'Mail.Example.com:587, relay.internal., 192.0.2.5:25,[2001:db8::1]:465,::1',
    },
    '/srv',
  );
  assert.deepEqual(c.login, { userFailures: 0, addressFailures: 12, lockoutMs: 60_000, issuesPerMinute: 5 });
  assert.deepEqual(c.smtpAllow, [
    { host: 'mail.example.com', port: 587 },
    { host: 'relay.internal', port: null },
    { host: '192.0.2.5', port: 25 },
    { host: '2001:db8::1', port: 465 },
    { host: '::1', port: null },
  ]);
  for (const env of [
    { LIFEBOAT_SMTP_ALLOW: 'mail.example.com:0' },
    { LIFEBOAT_SMTP_ALLOW: 'a b' },
    { LIFEBOAT_SMTP_ALLOW: 'mail.example.com,' },
    { LIFEBOAT_LOCKOUT_FAILURES: '-1' },
    { LIFEBOAT_LOCKOUT_DURATION: '0' },
    { LIFEBOAT_TOKEN_RATE: 'lots' },
  ]) {
    const name = Object.keys(env)[0]!;
    assert.throws(() => loadConfig(env, '/srv'), (e: unknown) => e instanceof ConfigError && e.message.includes(name), JSON.stringify(env));
  }
});

test('LIFEBOAT_TARGET: the scheme picks the kind; s3 URLs parse into the union (opened later by the backend)', () => {
  const t = (v: string) => loadConfig({ LIFEBOAT_TARGET: v }, '/srv').target;
  assert.deepEqual(t('file:///var/backups/'), { kind: 'file', path: '/var/backups' });
  assert.deepEqual(t('s3://lifeboat-backups'), { kind: 's3', bucket: 'lifeboat-backups', prefix: '', endpoint: null, region: null });
  assert.deepEqual(t('s3://lb.backups/site-1/prod/?endpoint=http://127.0.0.1:9000/&region=eu-west-1'), {
    kind: 's3',
    bucket: 'lb.backups',
    prefix: 'site-1/prod',
    endpoint: 'http://127.0.0.1:9000',
    region: 'eu-west-1',
  });
  assert.equal((t('s3://b-1?upload_buffer_mib=80') as { uploadBufferMiB?: number }).uploadBufferMiB, 80);
  assert.equal(loadConfig({ LIFEBOAT_TARGET_CONNECTIONS: '4' }, '/srv').targetConnections, 4);
  // A credential in the URL is refused without being echoed.
  assert.throws(
    () => loadConfig({ LIFEBOAT_TARGET: 's3://AKIAXXX:topsecret@bucket/x' }, '/srv'),
    (e: unknown) => e instanceof ConfigError && !e.message.includes('topsecret') && /AWS_ACCESS_KEY_ID/.test(e.message),
  );
});

test('LIFEBOAT_PLATFORM=openstack: needs Keystone service credentials; interface, region and domains', () => {
  assert.throws(() => loadConfig({ LIFEBOAT_PLATFORM: 'openstack' }, '/srv'), /LIFEBOAT_PLATFORM=openstack needs LIFEBOAT_KEYSTONE_URL/);
  const ks = { LIFEBOAT_KEYSTONE_URL: 'http://ks:5000/v3', LIFEBOAT_KEYSTONE_USER: 'lifeboat', LIFEBOAT_KEYSTONE_PASSWORD: 'pw', LIFEBOAT_KEYSTONE_PROJECT: 'service' };
  const d = loadConfig({ LIFEBOAT_PLATFORM: 'openstack', ...ks }, '/srv');
  assert.equal(d.platform, 'openstack');
  assert.deepEqual(d.openstack, { interface: 'public', region: null, dataPath: 'auto' });
  assert.equal(d.keystone?.userDomain, 'Default');
  assert.equal(d.keystone?.projectDomain, 'Default');
  const c = loadConfig({ LIFEBOAT_PLATFORM: 'openstack', ...ks, LIFEBOAT_OS_INTERFACE: 'internal', LIFEBOAT_OS_REGION: 'RegionTwo', LIFEBOAT_KEYSTONE_USER_DOMAIN: 'svc', LIFEBOAT_KEYSTONE_PROJECT_DOMAIN: 'svcp', LIFEBOAT_OS_DATA_PATH: 'host' }, '/srv');
  assert.deepEqual(c.openstack, { interface: 'internal', region: 'RegionTwo', dataPath: 'host' });
  assert.equal(c.keystone?.userDomain, 'svc');
  assert.equal(c.keystone?.projectDomain, 'svcp');
  assert.throws(() => loadConfig({ LIFEBOAT_PLATFORM: 'openstack', ...ks, LIFEBOAT_OS_INTERFACE: 'private' }, '/srv'), /LIFEBOAT_OS_INTERFACE must be public, internal or admin/);
  assert.throws(() => loadConfig({ LIFEBOAT_PLATFORM: 'openstack', ...ks, LIFEBOAT_OS_DATA_PATH: 'nfs' }, '/srv'), /LIFEBOAT_OS_DATA_PATH must be auto, host or api/);
});
