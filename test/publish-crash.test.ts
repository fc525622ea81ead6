import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FsBackend } from '../src/backend/fs/fs.backend.js';
import { ChunkPool } from '../src/datamover/chunk-pool.js';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import { newHexId } from '../src/lib/ids.js';
import { skipUnlessInstalled } from '../src/nbd/testing.js';
import { Repository } from '../src/repository/repository.js';

/**
 * Reliability item A3 (shared/spec/reliability.md §2): a crash during the publish of a snapshot.
 * A child process (publish-child.ts) writes and commits one snapshot into an fs repository; strace
 * kills it with SIGKILL on entering its n-th rename, fsync or fdatasync (the publish steps: temp
 * file written, synced, renamed, directory synced), for every n until the commit gets through.
 * After each kill: the manifest is absent, or whole and restorable byte-exact; verify passes (a
 * temp file or an unreferenced pack is not damage); the next commit into the same repository
 * succeeds. Needs strace (Debian `strace`; .ci/run installs it).
 */
const CHILD = join(import.meta.dirname, 'publish-child.js');
const SYSCALLS = ['rename', 'fsync', 'fdatasync'] as const;
/** The child's disk: 1 MiB, the bytes publish-child.ts makes. */
const DATA = Buffer.concat(Array.from({ length: 1 << 15 }, (_, i) => createHash('sha256').update(`publish/${i}`).digest()));

describe('a crash at any step of publishing a snapshot (reliability A3)', { skip: skipUnlessInstalled('strace') }, () => {
  const pool = new ChunkPool(1);
  const dirs: string[] = [];
  after(async () => {
    await pool.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Runs the child (under strace killing it at the n-th `call` when given); true when it exited 0. */
  function publish(dir: string, snapshotId: string, projectId: string, kill?: { call: string; n: number }): boolean {
    const child = [process.execPath, CHILD, dir, snapshotId, projectId];
    const cmd = kill ? ['strace', '-f', '-qq', '-o', '/dev/null', '-e', `trace=${kill.call}`, '-e', `inject=${kill.call}:signal=KILL:when=${kill.n}`, ...child] : child;
    // strace counts calls per thread: one libuv thread does every file operation, so the n-th is the n-th.
    const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 120_000, env: { ...process.env, UV_THREADPOOL_SIZE: '1' } });
    if (r.status === 0) return true;
    assert.ok(kill && (r.signal === 'SIGKILL' || r.status === 137), `${cmd.join(' ')}: status ${r.status} signal ${r.signal}\n${r.stderr}`);
    return false;
  }

  /**
   * What a crash may leave: no manifest, or a whole one that restores byte-exact; never damage.
   * Returns whether the snapshot was published.
   */
  async function checkAfterCrash(dir: string, snapshotId: string, what: string): Promise<boolean> {
    if (!existsSync(join(dir, 'config.json'))) {
      assert.equal(existsSync(join(dir, 'manifests')) && readdirSync(join(dir, 'manifests')).some((f) => !f.startsWith('.')), false, `${what}: a manifest without a config`);
      return false;
    }
    const repo = await Repository.open(new FsBackend(dir));
    const manifest = join(dir, 'manifests', `${snapshotId}.json`);
    if (existsSync(manifest)) {
      assert.ok(statSync(manifest).size > 0, `${what}: an empty manifest`);
      const sink = new MemDiskSink(DATA.length);
      await restoreDisk({ repo, snapshotId, diskKey: 'vda', sink, pool });
      assert.ok(sink.data.equals(DATA), `${what}: the published snapshot does not restore byte-exact`);
    }
    const v = await repo.verify();
    assert.equal(v.ok, true, `${what}: ${JSON.stringify([...v.problems, ...v.metadataProblems].slice(0, 3))}`);
    return existsSync(manifest);
  }

  test('killed at every rename, fsync and fdatasync of a commit: the manifest is absent or whole, verify passes, the next commit succeeds', async (t) => {
    const kills: Record<string, number> = {};
    const outcomes = { published: 0, absent: 0 };
    for (const call of SYSCALLS) {
      for (let n = 1; ; n++) {
        const dir = mkdtempSync(join(tmpdir(), 'lifeboat-publish-crash-'));
        dirs.push(dir);
        const projectId = newHexId();
        const sid = randomUUID();
        if (publish(dir, sid, projectId, { call, n })) break; // fewer than n such calls: nothing left to crash
        kills[call] = n;
        const what = `killed at ${call} #${n}`;
        outcomes[(await checkAfterCrash(dir, sid, what)) ? 'published' : 'absent']++;
        const next = randomUUID();
        assert.ok(publish(dir, next, projectId), `${what}: the next commit failed`);
        await checkAfterCrash(dir, next, `${what}, then committed again`);
        assert.ok(existsSync(join(dir, 'manifests', `${next}.json`)), `${what}: the next commit left no manifest`);
        rmSync(dir, { recursive: true, force: true });
      }
    }
    t.diagnostic(`kills at the last call of each kind: ${JSON.stringify(kills)}; snapshot published before the kill ${outcomes.published}×, not ${outcomes.absent}×`);
    // The commit renames and syncs several objects (config, packs, indexes, disk index, manifest);
    // a kill at the manifest's directory sync finds it published, an earlier one does not.
    assert.ok((kills.rename ?? 0) >= 4 && (kills.fsync ?? 0) + (kills.fdatasync ?? 0) >= 4, JSON.stringify(kills));
    assert.ok(outcomes.published > 0 && outcomes.absent > 0, JSON.stringify(outcomes));
  });
});
