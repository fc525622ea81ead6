import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restoreDisk } from '../src/datamover/restore.js';
import { MemDiskSink } from '../src/datamover/testing.js';
import { diskKey } from '../src/jobs/snapshot.job.js';
import type { LibvirtPlatform } from '../src/platform/libvirt/libvirt.platform.js';
import type { BackupReadStats } from '../src/platform/libvirt/stats.js';
import { run } from '../src/nbd/testing.js';
import { after, before } from 'node:test';
import { startHarness, takeSnapshotAndWait, waitFor, type Harness } from './harness.js';
import { startLibvirtd, testDomainXml, type Libvirtd } from './libvirtd.js';

/**
 * A test domain of a private libvirtd (test/libvirtd.ts) whose disks the test models byte for
 * byte: `expected` of each disk is kept in step with every guest write, made through the QEMU
 * monitor (HMP qemu-io on the virtio backend; no guest OS needed).
 */
export interface GuestDiskSpec {
  target: string;
  format: 'qcow2' | 'raw';
  size: number;
  /** Fills the initial content (zero-filled buffer of `size`). */
  fill?: (b: Buffer) => void;
}

export interface GuestDisk {
  target: string;
  format: 'qcow2' | 'raw';
  file: string;
  expected: Buffer;
  /** QOM path of the virtio backend (HMP qemu-io needs it, not the qdev id). */
  backend: string;
}

export class TestGuest {
  private constructor(
    readonly lv: Libvirtd,
    readonly name: string,
    readonly uuid: string,
    readonly disks: GuestDisk[],
  ) {}

  /** Creates the images under the daemon's data dir, defines the domain and starts it. */
  static create(lv: Libvirtd, name: string, specs: GuestDiskSpec[]): TestGuest {
    const disks: GuestDisk[] = specs.map((s, i) => {
      const expected = Buffer.alloc(s.size);
      s.fill?.(expected);
      const file = join(lv.dataDir, `${name}-${s.target}.${s.format}`);
      const seed = join(lv.dataDir, `${name}-${s.target}.seed`);
      writeFileSync(seed, expected);
      run('qemu-img', ['convert', '-q', '-S', '4k', '-f', 'raw', '-O', s.format, seed, file]);
      rmSync(seed);
      lv.own(file);
      return { target: s.target, format: s.format, file, expected, backend: `/machine/peripheral/virtio-disk${i}/virtio-backend` };
    });
    const [first, ...rest] = disks;
    if (!first || first.format !== 'qcow2') throw new Error('the first disk of a test guest is qcow2');
    const extra = rest
      .map((d) => `<disk type='file' device='disk'><driver name='qemu' type='${d.format}'/><source file='${d.file}'/><target dev='${d.target}' bus='virtio'/></disk>`)
      .join('\n');
    const xml = testDomainXml(name, lv.domainType, first.file).replace('</disk>', `</disk>\n${extra}`);
    writeFileSync(join(lv.dataDir, `${name}.xml`), xml);
    lv.virsh('define', join(lv.dataDir, `${name}.xml`));
    lv.virsh('start', name);
    return new TestGuest(lv, name, lv.virsh('domuuid', name).trim(), disks);
  }

  disk(target: string): GuestDisk {
    const d = this.disks.find((x) => x.target === target);
    if (!d) throw new Error(`no disk ${target}`);
    return d;
  }

  /** A guest write of `length` bytes of `pattern` at `offset`, mirrored into `expected`. */
  write(target: string, pattern: number, offset: number, length: number): void {
    const d = this.disk(target);
    this.hmp(`qemu-io -d ${d.backend} "write -P 0x${pattern.toString(16)} ${offset} ${length}"`);
    d.expected.fill(pattern, offset, offset + length);
  }

  hmp(command: string): string {
    return this.lv.virsh('qemu-monitor-command', this.name, '--hmp', command);
  }

  qmp(execute: string, args?: object): unknown {
    return (JSON.parse(this.lv.virsh('qemu-monitor-command', this.name, JSON.stringify(args ? { execute, arguments: args } : { execute }))) as { return: unknown }).return;
  }

  /** Lifeboat's dirty bitmaps QEMU holds, per disk node: `{node, name, recording}`. */
  lifeboatBitmaps(): { node: string; name: string; recording: boolean }[] {
    const nodes = this.qmp('query-named-block-nodes', { flat: true }) as { 'node-name': string; 'dirty-bitmaps'?: { name?: string; recording?: boolean }[] }[];
    return nodes.flatMap((n) => (n['dirty-bitmaps'] ?? []).filter((b) => b.name?.startsWith('lifeboat-')).map((b) => ({ node: n['node-name'], name: b.name!, recording: b.recording === true })));
  }

  state(): string {
    return this.lv.virsh('domstate', this.name).trim();
  }

  /** PID of the domain's QEMU process (found by its `-name guest=<name>` argument). */
  qemuPid(): number {
    const r = spawnSync('pgrep', ['-f', `guest=${this.name},`], { encoding: 'utf8' });
    const pids = r.stdout.split('\n').map(Number).filter((n) => n > 0);
    if (pids.length !== 1) throw new Error(`expected one QEMU process of ${this.name}, found ${pids.length}`);
    return pids[0]!;
  }

  /** Destroys (if running) and undefines the domain, checkpoint metadata included. */
  remove(): void {
    if (this.state() !== 'shut off') this.lv.virsh('destroy', this.name);
    this.lv.virsh('undefine', this.name, '--checkpoints-metadata');
  }
}

/** The bytes of one disk of a snapshot, read back from the repository (what a restore writes). */
export async function snapshotDisk(h: Harness, snapshotId: string, uuid: string, target: string, size: number): Promise<Buffer> {
  const sink = new MemDiskSink(size);
  await restoreDisk({ repo: h.lb.repo, snapshotId, diskKey: diskKey(uuid, `/dev/${target}`), sink });
  return sink.data;
}

/**
 * A private libvirtd, one running test guest, the service on LIFEBOAT_PLATFORM=libvirt (an
 * in-process harness), the guest assigned to alice's project with `lifeboat libvirt-assign`
 * and a workload of it, available. `close()` stops all of it (the guest is removed).
 */
export interface LibvirtService {
  lv: Libvirtd;
  h: Harness;
  g: TestGuest;
  wid: string;
  close(): Promise<void>;
}

export async function startLibvirtService(dom: string, specs: GuestDiskSpec[], env: Record<string, string> = {}): Promise<LibvirtService> {
  const lv = await startLibvirtd();
  const cliHome = mkdtempSync(join(tmpdir(), 'lifeboat-cli-'));
  let h: Harness | null = null;
  let g: TestGuest | null = null;
  const close = async () => {
    try {
      await h?.close();
    } finally {
      rmSync(cliHome, { recursive: true, force: true });
      try {
        g?.remove();
      } finally {
        await lv.stop();
      }
    }
  };
  try {
    g = TestGuest.create(lv, dom, specs);
    const scratchDir = join(lv.dataDir, 'scratch');
    mkdirSync(scratchDir, { mode: 0o750 });
    lv.own(scratchDir);
    h = await startHarness({ env: { LIFEBOAT_PLATFORM: 'libvirt', LIFEBOAT_LIBVIRT_URI: lv.uri, LIFEBOAT_LIBVIRT_SCRATCH_DIR: scratchDir, ...env } });
    const hh = h;
    const assign = spawnSync(process.execPath, ['dist/src/main.js', 'libvirt-assign', g.uuid, hh.alice.projectId], { encoding: 'utf8', env: { ...process.env, LIFEBOAT_HOME: cliHome, LIFEBOAT_LIBVIRT_URI: lv.uri } });
    if (assign.status !== 0) throw new Error(`libvirt-assign failed: ${assign.stderr}`);
    const r = await hh.api(hh.alice, 'POST', '/workloads', { workload: { name: dom, instances: [{ 'instance-id': g.uuid }] } });
    if (r.status !== 202) throw new Error(`workload: ${r.status} ${r.text}`);
    const wid = r.json.workload.id as string;
    await waitFor(async () => (await hh.api(hh.alice, 'GET', `/workloads/${wid}`)).json.workload.status === 'available', 20_000, 'workload');
    return { lv, h: hh, g, wid, close };
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
}

/**
 * The setup of a describe block that tests one guest through the service: the service of
 * `startLibvirtService` (domain `<prefix>-<random>`) started in `before` and stopped in
 * `after`; its fields are set once `before` ran. `snapshot()` goes through the API and adds
 * the platform's read statistics of that backup (its end() ran before it became available, so
 * they are final); `assertExact()` compares every disk of a snapshot with the model.
 */
export interface LibvirtFixture extends LibvirtService {
  dom: string;
  platform(): LibvirtPlatform;
  snapshot(full?: boolean): Promise<{ id: string; size: number; warning_msg: string | null; stats: BackupReadStats | null }>;
  assertExact(snapshotId: string, what: string): Promise<void>;
}

export function libvirtServiceFixture(prefix: string, specs: GuestDiskSpec[]): LibvirtFixture {
  const f = {
    dom: `${prefix}-${randomBytes(3).toString('hex')}`,
    platform: () => f.h.lb.platform as LibvirtPlatform,
    async snapshot(full = false) {
      const s = await takeSnapshotAndWait(f.h, f.h.alice, f.wid, full);
      return { ...s, stats: f.platform().lastBackupStats(f.g.uuid) };
    },
    async assertExact(snapshotId: string, what: string) {
      for (const d of f.g.disks) assert.ok((await snapshotDisk(f.h, snapshotId, f.g.uuid, d.target, d.expected.length)).equals(d.expected), `${what}: ${d.target} restores byte-exact`);
    },
  } as LibvirtFixture;
  before(async () => {
    Object.assign(f, await startLibvirtService(f.dom, specs));
  });
  after(async () => {
    await f.close?.();
  });
  return f;
}
