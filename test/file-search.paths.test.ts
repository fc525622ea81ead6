import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { RepositorySet } from '../src/repository/repository-set.js';
import { applianceTag, fuseMountsUnder, processesTagged } from '../src/recovery/mounts.js';
import { searchSnapshots, type SearchOptions, type SnapshotMatches } from '../src/recovery/search.js';
import { buildExt4Disk } from './fs-images.js';
import { fsRepository, newProjectId, pseudoRandom, snapshotFiles } from './recovery-fixtures.js';

/**
 * The two ways a search reads a file system give the same answer: ext4 snapshots are searched
 * without the appliance (debugfs over nbdfuse), everything else in the appliance; here the same
 * snapshots go both ways and every match, size, mode, owner, link count, block count and time
 * must agree (`dev` excepted: the appliance's device number means nothing to the caller).
 */
describe('file search: the ext path without the appliance answers as the appliance does', { skip: skipUnlessInstalled('guestfish', 'sgdisk', 'mkfs.ext4', 'debugfs', 'nbdfuse', 'fusermount3') }, () => {
  let dir = '';
  const pool = new ChunkPool(1);
  let base: Omit<SearchOptions, 'pattern'>;
  const vm = '11111111-2222-4333-8444-555555555555';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lifeboat-search-paths-'));
    const repo = await fsRepository(join(dir, 'repo'));
    const disk = join(dir, 'vda.raw');
    const ids: string[] = [];
    for (let k = 0; k < 2; k++) {
      await buildExt4Disk(disk, 24, {
        'opt/File_1': pseudoRandom(10_000 + k, `f${k}`),
        'opt/File_2': 'two\n',
        'opt/Fdir/inner': 'x',
        'opt/.File_hidden': 'h',
        'opt/File link': { symlink: '/opt/File_1' },
        'etc/hosts': `snapshot ${k}\n`,
      });
      ids.unshift(await snapshotFiles(repo, newProjectId(), { [`${vm}:/dev/vda`]: disk }, pool));
    }
    base = { repos: RepositorySet.only(repo), home: join(dir, 'home'), forceTcg: true, tag: applianceTag(join(dir, 'home')), snapshots: ids.map((id) => ({ id, target: null })), vmId: vm };
  });
  after(async () => {
    await pool.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Results with `dev` zeroed (the only field the two paths may differ in). */
  const comparable = (r: SnapshotMatches[]) =>
    r.map((s) => ({ ...s, result: s.result === 'Snapshot VM deleted' ? s.result : s.result.map((fs) => ({ ...fs, matches: fs.matches.map((m) => ({ ...m, stat: { ...m.stat, dev: 0 } })) })) }));

  test('same matches and stat records over two snapshots (one appliance launch)', async () => {
    const pattern = '/*/*'; // two levels, dot files, a directory, a symbolic link, lost+found
    const fast = await searchSnapshots({ ...base, pattern });
    const slow = await searchSnapshots({ ...base, pattern, applianceOnly: true });
    assert.deepEqual(comparable(fast), comparable(slow));
    const paths = (fast[0]!.result as { matches: { path: string }[] }[])[0]!.matches.map((m) => m.path);
    assert.deepEqual(paths, ['/etc/hosts', '/opt/Fdir/', '/opt/File link', '/opt/File_1', '/opt/File_2'], 'sorted, dot files left out, directories with a slash');
    assert.deepEqual(comparable(await searchSnapshots({ ...base, pattern: '/nothing/*' })), base.snapshots.map((s) => ({ snapshotId: s.id, result: [{ device: '/dev/vda1', matches: [] }] })));
    assert.deepEqual(fuseMountsUnder(join(dir, 'home', 'mounts')), [], 'no nbdfuse mount left');
    assert.deepEqual(existsSync(join(dir, 'home', 'mounts')) ? readdirSync(join(dir, 'home', 'mounts')) : [], []);
    assert.deepEqual(processesTagged(base.tag), [], 'no nbdfuse or appliance process left');
  });
});
