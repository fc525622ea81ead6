import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { openSecret, sealedKeyId, sealSecret, secretAad, settingsKeyFrom, settingsKeyId } from './setting.store.js';

test('sealed secrets open only with the same key, project and name; they name their key id', () => {
  const key = settingsKeyFrom('k'.repeat(64));
  const other = settingsKeyFrom('x'.repeat(64));
  const aad = secretAad('p1', 'smtp_server_password');
  const sealed = sealSecret(key, aad, 'hunter2');
  assert.match(sealed, /^enc:v2:[0-9a-f]{16}:[A-Za-z0-9+/=]+$/);
  assert.equal(sealedKeyId(sealed), settingsKeyId(key));
  assert.notEqual(settingsKeyId(key), settingsKeyId(other));
  assert.ok(!sealed.includes('hunter2'));
  assert.notEqual(sealSecret(key, aad, 'hunter2'), sealed, 'a fresh IV each time');
  assert.equal(openSecret(key, aad, sealed), 'hunter2');
  assert.equal(openSecret(other, aad, sealed), null);
  assert.equal(openSecret(key, secretAad('p2', 'smtp_server_password'), sealed), null);
  const prefix = `enc:v2:${settingsKeyId(key)}:`;
  const raw = Buffer.from(sealed.slice(prefix.length), 'base64');
  raw.writeUInt8(raw.readUInt8(raw.length - 1) ^ 1, raw.length - 1);
  assert.equal(openSecret(key, aad, `${prefix}${raw.toString('base64')}`), null);
  assert.equal(openSecret(key, aad, 'plain'), null);
  assert.equal(openSecret(key, aad, `${prefix}AAAA`), null);
});

test('values sealed before key ids (enc:v1:) still open', () => {
  const key = settingsKeyFrom('k'.repeat(64));
  const aad = secretAad('p1', 'smtp_server_password');
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([c.update('old', 'utf8'), c.final()]);
  const v1 = `enc:v1:${Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64')}`;
  assert.equal(sealedKeyId(v1), null);
  assert.equal(openSecret(key, aad, v1), 'old');
  assert.equal(openSecret(key, aad, 'enc:v1:AAAA'), null);
});
