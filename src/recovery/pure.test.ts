import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRange, pathComponents } from './browse.js';
import { applianceDrive, quoteArg } from './guestfish.js';
import { mountDirName, readOnlyOptions, snapshotDisks } from './filesystems.js';
import { parseStat, toJsonResp } from './search.js';
import type { Manifest } from '../repository/manifest.format.js';
import { probeFileSystem, readPartitions } from './partitions.js';
import { componentMatcher, debugfsArg, parseDebugfsStat, parseLsP } from './ext-search.js';

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
  const unnamed = snapshotDisks({ disks: [{ diskKey: 'a1b2:/dev/vda' }, { diskKey: 'a1b2:' }] } as unknown as Manifest);
  assert.deepEqual(unnamed[1], { instanceId: 'a1b2', device: '/dev/disk1', diskKey: 'a1b2:' }, 'an attachment without a device name');
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

test('partition tables: MBR, GPT (BIOS boot marked), none, extended refused', async () => {
  const disk = Buffer.alloc(64 * 1024);
  const at = (b: Buffer) => async (o: number, n: number) => b.subarray(o, o + n);
  assert.deepEqual(await readPartitions(at(disk)), [{ number: null, offset: 0, biosBoot: false }], 'no table: the whole disk');
  disk.writeUInt16LE(0xaa55, 510);
  disk[446 + 16 + 4] = 0x83;
  disk.writeUInt32LE(2048, 446 + 16 + 8);
  assert.deepEqual(await readPartitions(at(disk)), [{ number: 2, offset: 2048 * 512, biosBoot: false }]);
  disk[446 + 4] = 0x05;
  assert.equal(await readPartitions(at(disk)), null, 'logical partitions are left to the appliance');
  const gpt = Buffer.alloc(64 * 1024);
  gpt.writeUInt16LE(0xaa55, 510);
  gpt.write('EFI PART', 512, 'latin1');
  gpt.writeBigUInt64LE(2n, 512 + 72);
  gpt.writeUInt32LE(4, 512 + 80);
  gpt.writeUInt32LE(128, 512 + 84);
  gpt.write('Hah!IdontNeedEFI', 1024, 'latin1');
  gpt.writeBigUInt64LE(34n, 1024 + 32);
  gpt.fill(7, 1024 + 256, 1024 + 256 + 16);
  gpt.writeBigUInt64LE(4096n, 1024 + 256 + 32);
  assert.deepEqual(await readPartitions(at(gpt)), [
    { number: 1, offset: 34 * 512, biosBoot: true },
    { number: 3, offset: 4096 * 512, biosBoot: false },
  ]);
  const fs = Buffer.alloc(70 * 1024);
  assert.equal(await probeFileSystem(at(fs), 0), 'none');
  fs.writeUInt16LE(0xef53, 1080);
  assert.equal(await probeFileSystem(at(fs), 0), 'ext');
  fs.writeUInt16LE(0, 1080);
  fs.write('XFSB', 0, 'latin1');
  assert.equal(await probeFileSystem(at(fs), 0), 'other');
});

test('ext search without the appliance: glob components, ls -p and stat parsing', () => {
  const m = componentMatcher('File_?');
  assert.ok(m('File_1') && !m('File_10') && !m('file_1'));
  assert.ok(componentMatcher('[od]*')('opt') && !componentMatcher('[!od]*')('opt'));
  assert.ok(!componentMatcher('*')('.hidden') && componentMatcher('.h*')('.hidden'));
  assert.ok(componentMatcher('a.b')('a.b') && !componentMatcher('a.b')('axb'));
  assert.deepEqual(parseLsP(['/13/040755/0/0/.//', '/2/040755/0/0/..//', '/0/000000/0/0//0/', '/15/100644/1000/100/File 1/3/']), [{ ino: 15, mode: 0o100644, uid: 1000, gid: 100, name: 'File 1' }]);
  const st = parseDebugfsStat(['Inode: 15   Type: regular    Mode:  0644   Flags: 0x80000', 'User:     0   Group:     0   Project:     0   Size: 3000000', 'Links: 1   Blockcount: 5864', ' ctime: 0x6b0dc3a9:00000000 -- Mon Nov 30 18:42:49 2026', ' atime: 0x6b0dc3aa:00000000 -- x', ' mtime: 0x6b0dc3ab:00000000 -- x'], { ino: 15, mode: 0o100644, uid: 0, gid: 0, name: 'f' }, 4096);
  assert.deepEqual(st, { dev: 0, ino: 15, mode: 0o100644, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 3000000, blksize: 4096, blocks: 5864, atime: 0x6b0dc3aa, mtime: 0x6b0dc3ab, ctime: 0x6b0dc3a9 });
  assert.equal(debugfsArg('/a "b'), null);
});
