import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLiteral } from './py-literal.parser.js';
import { pyRepr } from './table.format.js';

test('parses JSON unchanged', () => {
  const v = { a: [1, 2.5, -3e2], b: { c: null, d: true, e: false }, s: 'x"y\\n\u00e9' };
  assert.deepEqual(parseLiteral(JSON.stringify(v)), v);
});

test("parses tempest's Python dict repr of an in-place restore file", () => {
  const text =
    "{'openstack': {'instances': [{'id': 'a1', 'availability_zone': 'nova', 'include': True, 'restore_boot_disk': True, " +
    "'vdisks': [{'id': 'v1', 'availability_zone': 'nova', 'new_volume_type': 'lvm', 'restore_cinder_volume': True}]}, " +
    "{'id': 'a2', 'include': False, 'vdisks': []}], 'networks_mapping': {'networks': []}}, 'restore_type': 'inplace', 'type': 'openstack', 'zone': None}";
  assert.deepEqual(parseLiteral(text), {
    openstack: {
      instances: [
        { id: 'a1', availability_zone: 'nova', include: true, restore_boot_disk: true, vdisks: [{ id: 'v1', availability_zone: 'nova', new_volume_type: 'lvm', restore_cinder_volume: true }] },
        { id: 'a2', include: false, vdisks: [] },
      ],
      networks_mapping: { networks: [] },
    },
    restore_type: 'inplace',
    type: 'openstack',
    zone: null,
  });
});

test('accepts u-prefixes, tuples, trailing commas, comments, escapes and double quotes', () => {
  assert.deepEqual(parseLiteral("# restore options\n{u'a': (1, 2,), \"b\": 'it\\'s', 'c': \"q'q\", 'd': 'tab\\tx\\x41',}"), { a: [1, 2], b: "it's", c: "q'q", d: 'tab\txA' });
});

test('pyRepr output parses back (round trip)', () => {
  const v = { id: 'x', list: [{ n: 1, ok: true, none: null }], q: "it's", qq: 'say "hi"', nl: 'a\nb' };
  assert.deepEqual(parseLiteral(pyRepr(v)), v);
  assert.equal(pyRepr({ a: true, b: null, c: 'x' }), "{'a': True, 'b': None, 'c': 'x'}");
});

test('errors name the position', () => {
  assert.throws(() => parseLiteral("{'a': 1"), /line 1 column 8/);
  assert.throws(() => parseLiteral("{'a': foo}"), /unknown name 'foo'/);
  assert.throws(() => parseLiteral('{"a": 1} x'), /unexpected text/);
  assert.throws(() => parseLiteral("'abc"), /unterminated string/);
});
