import { spawnSync } from 'node:child_process';

/** Lazy FUSE unmount (works while the FUSE server is hung or dead; never waits for it). */
export function unmountFuse(path: string): void {
  spawnSync('fusermount3', ['-u', '-z', path], { stdio: 'ignore' });
}
