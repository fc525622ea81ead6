import { spawnSync } from 'node:child_process';
import { chownSync, constants, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../src/lib/testing.js';
import { startServer, type ServerProcess } from '../src/nbd/testing.js';

/**
 * A private libvirtd for tests: no systemd, nothing shared with a system libvirtd.
 *
 * libvirtd run as root is always the system instance (fixed /run/libvirt, /var/lib/libvirt),
 * so the tests run a *session* daemon instead: as `nobody` when the tests run as root (as the
 * current user otherwise), with HOME and every XDG_* directory inside one temp dir. Its state,
 * logs, capabilities cache, sockets and QEMU processes all belong to that daemon; `virsh`
 * (as root, which may open the 0700 socket) reaches it through `qemu:///session?socket=…`.
 * Measured here: libvirt 9.0 + QEMU 7.2, first `virsh version` after ~4 s (capability probe).
 *
 * virtlogd is started by hand too (QEMU's stdout/stderr go through it); both daemons are
 * stopped by PID. KVM is used only when the daemon's user can open /dev/kvm; TCG otherwise.
 */
export interface Libvirtd {
  /** The private directory (disks and NBD sockets may go under `dir/data`, owned by the daemon user). */
  readonly dir: string;
  /** Directory for images and sockets, owned by the daemon's user so QEMU can use it. */
  readonly dataDir: string;
  readonly uri: string;
  /** 'kvm' when the daemon's user can use /dev/kvm, else 'qemu' (TCG). */
  readonly domainType: 'kvm' | 'qemu';
  /** Runs `virsh -c <uri> args…`; throws with stderr on failure. */
  virsh(...args: string[]): string;
  /** Gives a file or directory created by the test to the daemon's user. */
  own(path: string): void;
  /**
   * `domjobabort` of a backup job, then waits until libvirt reports no job: the abort returns
   * before the job ends, and a backup-begin in between is refused.
   */
  endBackupJob(domain: string): Promise<void>;
  /** Destroys every domain of this daemon, stops libvirtd and virtlogd by PID, deletes `dir`. */
  stop(): Promise<void>;
}

export const LIBVIRT_TOOLS = ['libvirtd', 'virtlogd', 'virsh', 'qemu-system-x86_64', 'qemu-img'];

interface DaemonUser {
  uid: number;
  gid: number;
  self: boolean;
}

function daemonUser(): DaemonUser {
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return { uid, gid: process.getgid?.() ?? uid, self: true };
  const id = (flag: string) => Number(spawnSync('id', [flag, 'nobody'], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g'), self: false };
}

function kvmUsable(user: DaemonUser): boolean {
  try {
    if (!user.self) return (statSync('/dev/kvm').mode & 0o006) === 0o006;
    closeSync(openSync('/dev/kvm', constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

export async function startLibvirtd(): Promise<Libvirtd> {
  const user = daemonUser();
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-libvirt-'));
  const d = (...p: string[]) => join(dir, ...p);
  for (const sub of ['home', 'run', 'config', 'cache', 'log', 'data']) mkdirSync(d(sub), { mode: 0o700 });
  writeFileSync(d('libvirtd.conf'), `log_outputs = "3:file:${d('log', 'libvirtd.log')}"\n`);
  writeFileSync(d('virtlogd.conf'), `log_outputs = "3:file:${d('log', 'virtlogd.log')}"\n`);
  const own = (path: string) => chownSync(path, user.uid, user.gid);
  for (const p of [dir, 'home', 'run', 'config', 'cache', 'log', 'data', 'libvirtd.conf', 'virtlogd.conf']) own(p === dir ? dir : d(p));
  const as = {
    uid: user.uid,
    gid: user.gid,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: d('home'), XDG_RUNTIME_DIR: d('run'), XDG_CONFIG_HOME: d('config'), XDG_CACHE_HOME: d('cache') },
  };
  const sock = d('run', 'libvirt', 'libvirt-sock');
  const uri = `qemu:///session?socket=${sock}`;
  const virsh = (...args: string[]): string => {
    const r = spawnSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`virsh ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}`);
    return r.stdout;
  };
  const daemons: ServerProcess[] = [];
  const stop = async () => {
    try {
      for (const name of virshList(virsh)) virsh('destroy', name);
    } finally {
      for (const p of daemons.reverse()) await stopDaemon(p);
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    const logSock = d('run', 'libvirt', 'virtlogd-sock');
    daemons.push(await startServer('virtlogd', ['-f', d('virtlogd.conf')], async () => existsSock(logSock), 15_000, as));
    // ready = virsh answers (the first answer waits for QEMU's capability probe)
    daemons.push(await startServer('libvirtd', ['-f', d('libvirtd.conf')], async () => existsSock(sock) && virshAnswers(uri), 60_000, as));
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
  const endBackupJob = async (domain: string) => {
    virsh('domjobabort', domain);
    const jobEnded = () => {
      const r = spawnSync('virsh', ['-q', '-c', uri, 'domjobinfo', domain], { encoding: 'utf8' });
      return r.status === 0 && !/Operation:\s+Backup/.test(r.stdout);
    };
    await waitFor(jobEnded, 30_000, `the backup job of ${domain} ended`);
  };
  return { dir, dataDir: d('data'), uri, domainType: kvmUsable(user) ? 'kvm' : 'qemu', virsh, own, endBackupJob, stop };
}

function existsSock(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

function virshAnswers(uri: string): boolean {
  return spawnSync('virsh', ['-q', '-c', uri, 'version'], { encoding: 'utf8', timeout: 30_000 }).status === 0;
}

function virshList(virsh: (...a: string[]) => string): string[] {
  try {
    return virsh('list', '--name')
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** SIGTERM, then SIGKILL after 30 s: libvirtd's own shutdown sometimes hangs (libvirt README §6.10). */
async function stopDaemon(p: ServerProcess): Promise<void> {
  const timer = setTimeout(() => void p.stop('SIGKILL'), 30_000);
  try {
    await p.stop('SIGTERM');
  } finally {
    clearTimeout(timer);
  }
}

/** A minimal domain of `type` (TCG `qemu`, or `kvm` where usable) with one qcow2 virtio disk; no guest OS needed. */
export function testDomainXml(name: string, type: 'kvm' | 'qemu', disk: string): string {
  return `<domain type='${type}'>
  <name>${name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}
