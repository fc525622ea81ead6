import { mkdtempSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/nbd/testing.js';
import { unmountFuse } from '../src/recovery/fuse.js';

/** A read-only disk image file whose reads are slow; close() unmounts it and ends its processes. */
export interface SlowDisk {
  /** The image file (a FUSE file: stat says a regular file of `sizeBytes`). */
  readonly path: string;
  close(): Promise<void>;
}

/**
 * A disk image below the platform whose reads are throttled: nbdkit's random plugin (incompressible
 * bytes, nothing on disk) behind the rate filter, served as a local file by nbdfuse (Debian
 * `nbdkit`, `libnbd-bin`, `fuse3`). The throttle bounds the whole read rate, not one request, so a
 * backup of it takes at least `sizeBytes / bytesPerSecond` seconds however fast the machine is or
 * however many reads run at once, while each single read stays short (a cancel takes effect soon).
 */
export async function startSlowDisk(sizeBytes: number, bytesPerSecond: number): Promise<SlowDisk> {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-slow-disk-'));
  const path = join(dir, 'nbd');
  const nbdkit = ['nbdkit', '--exit-with-parent', '--filter=rate', 'random', `size=${sizeBytes}`, `rate=${bytesPerSecond * 8}`];
  // The file appears once the FUSE mount is up (async polling: never block this event loop).
  const server = await startServer('nbdfuse', ['-r', dir, '[', ...nbdkit, ']'], () => stat(path).then((s) => s.isFile() && s.size === sizeBytes, () => false));
  return {
    path,
    async close() {
      unmountFuse(dir);
      const killLater = setTimeout(() => void server.stop('SIGKILL'), 10_000);
      await server.exited;
      clearTimeout(killLater);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
