import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSecret, sealSecret, secretAad, settingsKeyFrom } from './setting.store.js';

test('sealed secrets open only with the same key, project and name', () => {
  const key = settingsKeyFrom('k'.repeat(64));
  const aad = secretAad('p1', 'smtp_server_password');
  const sealed = sealSecret(key, aad, 'hunter2');
  assert.match(sealed, /^enc:v1:[A-Za-z0-9+/=]+$/);
  assert.ok(!sealed.includes('hunter2'));
  assert.notEqual(sealSecret(key, aad, 'hunter2'), sealed, 'a fresh IV each time');
  assert.equal(openSecret(key, aad, sealed), 'hunter2');
  assert.equal(openSecret(settingsKeyFrom('x'.repeat(64)), aad, sealed), null);
  assert.equal(openSecret(key, secretAad('p2', 'smtp_server_password'), sealed), null);
  const raw = Buffer.from(sealed.slice('enc:v1:'.length), 'base64');
  raw.writeUInt8(raw.readUInt8(raw.length - 1) ^ 1, raw.length - 1);
  assert.equal(openSecret(key, aad, `enc:v1:${raw.toString('base64')}`), null);
  assert.equal(openSecret(key, aad, 'plain'), null);
  assert.equal(openSecret(key, aad, 'enc:v1:AAAA'), null);
});
