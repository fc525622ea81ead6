import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './harness.js';
import type { Libvirtd } from './libvirtd.js';
import { protectDomain, signedInClient, startProcess, writeTestIdentity, type LifeboatProcess, type ProcessApi } from './process.js';

/**
 * `lifeboat serve` as a child process on a private libvirtd (LIFEBOAT_PLATFORM=libvirt), for the
 * tests that kill, hold or restart the service (libvirt-cancel, libvirt-inplace): its own home
 * (identity: member `u` and admin `a` of `projectId`), its environment, the member's client, and
 * the workload of one domain. The `after` hook of the test calls close().
 */
export interface LibvirtServe {
  readonly projectId: string;
  readonly home: string;
  readonly env: Record<string, string>;
  /** The running process; null once closed. */
  readonly proc: LifeboatProcess | null;
  /** The member's client of the running process (renewed by restart). */
  readonly api: ProcessApi;
  /** Stops the process and starts it again, with `extra` over the environment. */
  restart(extra?: Record<string, string>): Promise<void>;
  /** Assigns the domain to the project and makes a workload of it (available); its id. */
  protect(domainUuid: string): Promise<string>;
  /** Waits until the workload is available again (unlocked). */
  workloadAvailable(wid: string, timeoutMs?: number): Promise<void>;
  /**
   * Takes a snapshot through the API (an incremental unless `full`), waits for its end and for
   * the workload to be unlocked; asserts it is available.
   */
  snapshot(wid: string, full?: boolean): Promise<{ id: string; snapshot_type: string; warning_msg: string | null }>;
  /** Stops the process and removes the home. */
  close(): Promise<void>;
}

/** A directory under the daemon's data dir that QEMU's user may write (scratch, restores). */
export function libvirtOwnedDir(lv: Libvirtd, name: string): string {
  const dir = join(lv.dataDir, name);
  mkdirSync(dir, { mode: 0o750 });
  lv.own(dir);
  return dir;
}

export async function startLibvirtServe(lv: Libvirtd, o: { nodeName: string; homePrefix: string; scratchDir: string; env?: Record<string, string> }): Promise<LibvirtServe> {
  const projectId = randomBytes(16).toString('hex');
  const home = mkdtempSync(join(tmpdir(), o.homePrefix));
  writeTestIdentity(home, projectId);
  const env: Record<string, string> = {
    LIFEBOAT_HOME: home,
    LIFEBOAT_LISTEN: `127.0.0.1:${await freePort()}`,
    LIFEBOAT_JOB_LEASE: '2',
    LIFEBOAT_NODE_NAME: o.nodeName,
    LIFEBOAT_PLATFORM: 'libvirt',
    LIFEBOAT_LIBVIRT_URI: lv.uri,
    LIFEBOAT_LIBVIRT_SCRATCH_DIR: o.scratchDir,
    ...o.env,
  };
  let proc: LifeboatProcess | null = null;
  let api: ProcessApi | null = null;
  const s: LibvirtServe = {
    projectId,
    home,
    env,
    get proc() {
      return proc;
    },
    get api() {
      if (!api) throw new Error('lifeboat serve is not running');
      return api;
    },
    async restart(extra = {}) {
      await proc?.stop();
      proc = await startProcess({ ...env, ...extra });
      api = await signedInClient(proc.url!, projectId, 'u');
    },
    protect: (domainUuid) => protectDomain(env, domainUuid, projectId, s.api),
    async workloadAvailable(wid, timeoutMs = 30_000) {
      await waitFor(async () => (await s.api('GET', `/workloads/${wid}`)).json.workload.status === 'available', timeoutMs, 'workload available');
    },
    async snapshot(wid, full = false) {
      const r = await s.api('POST', `/workloads/${wid}${full ? '?full=1' : ''}`, { snapshot: { name: 's', snapshot_type: full ? 'full' : 'incremental' } });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const done = await waitFor(async () => {
        const x = (await s.api('GET', `/snapshots/${r.json.snapshot.id}`)).json.snapshot;
        return ['available', 'error', 'cancelled'].includes(x.status) ? x : null;
      }, 60_000, 'snapshot done');
      assert.equal(done.status, 'available', done.error_msg);
      await s.workloadAvailable(wid);
      return done;
    },
    async close() {
      try {
        await proc?.stop();
      } finally {
        proc = null;
        rmSync(home, { recursive: true, force: true });
      }
    },
  };
  await s.restart();
  return s;
}
