import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../lib/testing.js';
import { Appliance, ApplianceError, applianceDirs } from './guestfish.js';

const haveGuestfish = spawnSync('sh', ['-c', 'command -v guestfish && command -v qemu-system-x86_64'], { stdio: 'ignore' }).status === 0;
const skip = !haveGuestfish && process.env.CI !== 'true' ? 'guestfish or qemu-system-x86_64 missing (apt-get install libguestfs-tools qemu-system-x86)' : false;

/**
 * A hypervisor below libguestfs that answers libguestfs' feature probes with the real QEMU but
 * aborts every appliance launch (a command line with -kernel), recording its -machine option:
 * what a host whose /dev/kvm opens but whose QEMU aborts with KVM does (SIGABRT), cheaply.
 */
function abortingHypervisor(dir: string): { path: string; launches: () => string[] } {
  const log = join(dir, 'launches');
  const path = join(dir, 'qemu');
  writeFileSync(path, `#!/bin/sh
case " $* " in *" -kernel "*)
  prev=; for a in "$@"; do [ "$prev" = -machine ] && echo "$a" >> '${log}'; prev=$a; done
  kill -ABRT $$ ;;
esac
exec /usr/bin/qemu-system-x86_64 "$@"
`);
  chmodSync(path, 0o755);
  return { path, launches: () => readFileSync(log, 'utf8').trim().split('\n') };
}

test('a launch that fails with KVM is retried once under TCG, and later launches go to TCG at once', { skip, timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-appliance-'));
  const hv = abortingHypervisor(dir);
  const saved = process.env.LIBGUESTFS_HV;
  process.env.LIBGUESTFS_HV = hv.path;
  try {
    await assert.rejects(Appliance.launch({ drives: [], scratchRoot: true, forceTcg: false, tag: 'lifeboat:test' }), ApplianceError);
    const first = hv.launches();
    assert.equal(first.length, 2, first.join(' | '));
    assert.match(first[0]!, /accel=kvm:tcg/);
    assert.match(first[1]!, /accel=tcg(,|$)/);
    await assert.rejects(Appliance.launch({ drives: [], scratchRoot: true, forceTcg: false, tag: 'lifeboat:test' }), ApplianceError);
    const later = hv.launches().slice(2);
    assert.equal(later.length, 1, later.join(' | '));
    assert.match(later[0]!, /accel=tcg(,|$)/);
  } finally {
    if (saved === undefined) delete process.env.LIBGUESTFS_HV;
    else process.env.LIBGUESTFS_HV = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A hypervisor whose appliance never boots: the launch command records its PID and sleeps. */
function hangingHypervisor(dir: string): { path: string; pid: () => number | null } {
  const pidFile = join(dir, 'pid');
  const path = join(dir, 'qemu');
  writeFileSync(path, `#!/bin/sh
case " $* " in *" -kernel "*) echo $$ > '${pidFile}'; exec sleep 600 ;; esac
exec /usr/bin/qemu-system-x86_64 "$@"
`);
  chmodSync(path, 0o755);
  return { path, pid: () => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) || null : null) };
}

test('a launch killed by its abort signal leaves no libguestfs directory behind (socket, overlays)', { skip, timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-appliance-'));
  const hv = hangingHypervisor(dir);
  const saved = process.env.LIBGUESTFS_HV;
  const tag = `lifeboat:abort-test-${process.pid}`;
  const libguestfsDirs = () => new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('libguestfs')));
  const before = libguestfsDirs();
  process.env.LIBGUESTFS_HV = hv.path;
  try {
    const ac = new AbortController();
    const launching = Appliance.launch({ drives: [], scratchRoot: true, forceTcg: true, tag, signal: ac.signal });
    await waitFor(() => hv.pid(), 120_000, 'the appliance launched');
    assert.equal(applianceDirs(tag).length, 1, 'the launch has its own directory');
    ac.abort(new Error('cancelled'));
    await assert.rejects(launching);
    await waitFor(() => applianceDirs(tag).length === 0, 10_000, "the launch's directory removed");
    assert.deepEqual([...libguestfsDirs()].filter((n) => !before.has(n)), [], 'nothing of libguestfs left in the temp dir');
  } finally {
    if (saved === undefined) delete process.env.LIBGUESTFS_HV;
    else process.env.LIBGUESTFS_HV = saved;
    const pid = hv.pid();
    if (pid) spawnSync('kill', ['-9', String(pid)]);
    rmSync(dir, { recursive: true, force: true });
  }
});
