import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange, pathComponents } from './browse.js';
import { applianceDrive, quoteArg } from './guestfish.js';
import { mountDirName, readOnlyOptions, snapshotDisks } from './filesystems.js';
import { parseStat, toJsonResp } from './search.js';
import type { Manifest } from '../repository/manifest.format.js';

test('paths: absolute, no . or .. components, no NUL', () => {
  assert.deepEqual(pathComponents('/'), []);
  assert.deepEqual(pathComponents('//vda1//etc/'), ['vda1', 'etc']);
  for (const bad of ['etc', '/vda1/../x', '/..', '/./a', '/a\0b', '']) assert.throws(() => pathComponents(bad), /path/);
});

test('ranges: one bytes= range, suffix ranges, unsatisfiable ones', () => {
  assert.equal(parseRange(undefined, 10), null);
  assert.equal(parseRange('items=1-2', 10), null);
  assert.deepEqual(parseRange('bytes=2-4', 10), { start: 2, end: 4 });
  assert.deepEqual(parseRange('bytes=7-', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=5-100', 10), { start: 5, end: 9 });
  assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=4-2', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=-0', 10), 'unsatisfiable');
});

test('guestfish quoting and drive names', () => {
  assert.equal(quoteArg('/a "b"\\c'), '"/a \\"b\\"\\\\c"');
  assert.throws(() => quoteArg('a\nb'));
  assert.deepEqual([0, 1, 25, 26, 27].map(applianceDrive), ['/dev/sda', '/dev/sdb', '/dev/sdz', '/dev/sdaa', '/dev/sdab']);
});

test('disk keys → VM disks; file system names; read-only options', () => {
  const m = { disks: [{ diskKey: 'a1b2:/dev/vda' }, { diskKey: 'a1b2:/dev/vdb' }] } as unknown as Manifest;
  const disks = snapshotDisks(m);
  assert.deepEqual(disks[1], { instanceId: 'a1b2', device: '/dev/vdb', diskKey: 'a1b2:/dev/vdb' });
  const fs = { applianceDevice: '/dev/sdb1', guestDevice: '/dev/vdb1', vfsType: 'xfs', disk: disks[1]! };
  assert.equal(mountDirName(fs, false), 'vdb1');
  assert.equal(mountDirName(fs, true), 'a1b2-vdb1');
  assert.equal(mountDirName({ ...fs, guestDevice: '/dev/vg0/lv0' }, false), 'vg0-lv0');
  assert.equal(readOnlyOptions('xfs'), 'ro,norecovery,nouuid');
  assert.equal(readOnlyOptions('ext4'), 'ro,noload');
});

test('json_resp: device key first, stat records of numbers, the vendor text for a missing VM', () => {
  const stat = parseStat(['st_dev: 2049', 'st_ino: 15', 'st_mode: 33188', 'st_size: 3000000', 'st_mtime_sec: 1700000000', 'st_spare1: 0']);
  assert.equal(stat.size, 3000000);
  assert.equal(stat.mtime, 1700000000);
  assert.equal(stat.nlink, 0);
  const text = toJsonResp([
    { snapshotId: 's2', result: [{ device: '/dev/vda1', matches: [{ path: '/opt/File_1', stat }] }, { device: '/dev/vda15', matches: [] }] },
    { snapshotId: 's1', result: 'Snapshot VM deleted' },
  ]);
  const v = JSON.parse(text) as Record<string, unknown>[];
  assert.deepEqual(Object.keys((v[0]!.s2 as Record<string, unknown>[])[0]!), ['/dev/vda1', '/opt/File_1']);
  assert.deepEqual((v[0]!.s2 as Record<string, unknown>[])[1], { '/dev/vda15': [] });
  assert.equal(v[1]!.s1, 'Snapshot VM deleted');
  assert.ok(!/true|false|null/.test(text));
});
