/**
 * Where a libvirt incremental's fixed cost goes, without the service around it (issue 11: the
 * ≤ 0.2 s target): on a private libvirtd, a running domain (TCG unless /dev/kvm works) with a
 * 2 GiB qcow2 disk; each iteration makes 20 scattered 64 KiB guest writes (not timed), then
 * through LibvirtPlatform: getInstance, beginBackup from the last checkpoint, the changed
 * extents read, readsDone, end('committed'). Beside it, the same libvirt work by bare virsh
 * calls (redefine the base, backup-begin with a new checkpoint, domjobabort until no job,
 * delete both checkpoints' metadata and the base's bitmap): the floor this host's libvirt and
 * QEMU put under any client. Medians per step and per virsh operation, in ms.
 *
 *   node dist/bench/libvirt-begin.js [--iterations N (30)]
 *
 * Quieter than the service bench for changes to the begin and end (one process, one domain,
 * no HTTP, no repository); run it from two builds in turn to compare them.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LibvirtPlatform } from '../src/platform/libvirt/libvirt.platform.js';
import { assignDomain } from '../src/platform/libvirt/assign.js';
import { VirshShell } from '../src/platform/libvirt/virsh-shell.js';
import type { Checkpoint } from '../src/platform/platform.js';
import type { Logger } from '../src/lib/logger.js';
import { startLibvirtd, testDomainXml } from '../test/libvirtd.js';
import { now, run } from './lib.js';

const KiB = 1024;
const MiB = 1024 * KiB;

type Samples = Record<string, number[]>;
const push = (s: Samples, k: string, v: number) => (s[k] ??= []).push(v);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const line = (s: Samples) =>
  Object.entries(s)
    .map(([k, a]) => `${k} ${median(a).toFixed(1)}`)
    .join(', ');

/** A logger that keeps the per-call virsh times of each backup ('libvirt backup timings'). */
function timingsLogger(calls: Samples): Logger {
  const log: Logger = {
    info(obj, msg) {
      const t = (obj as { timings?: { virsh?: Record<string, { ms: number }> } }).timings;
      if (msg === 'libvirt backup timings' && t?.virsh) for (const [op, v] of Object.entries(t.virsh)) push(calls, op, v.ms);
    },
    warn() {},
    error() {},
    debug() {},
    child: () => log,
  };
  return log;
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--iterations');
  const iterations = at > 0 ? Number(process.argv[at + 1]) : 30;
  if (!Number.isInteger(iterations) || iterations < 3) throw new Error('--iterations N: a whole number ≥ 3');
  const lv = await startLibvirtd();
  const shell = new VirshShell(lv.uri);
  const dom = `lb-begin-${randomBytes(3).toString('hex')}`;
  const virsh = async (...args: string[]) => {
    const r = await shell.exec(args, 60_000);
    if (r.failed) throw new Error(`virsh ${args[0]}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  let platform: LibvirtPlatform | null = null;
  try {
    const disk = join(lv.dataDir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '2G']);
    lv.own(disk);
    const scratch = join(lv.dataDir, 'scratch');
    mkdirSync(scratch, { mode: 0o750 });
    lv.own(scratch);
    writeFileSync(join(lv.dataDir, 'dom.xml'), testDomainXml(dom, lv.domainType, disk));
    await virsh('define', join(lv.dataDir, 'dom.xml'));
    await virsh('start', dom);
    const projectId = randomBytes(16).toString('hex');
    const { uuid } = await assignDomain(lv.uri, dom, projectId);
    const calls: Samples = {};
    platform = new LibvirtPlatform({ uri: lv.uri, scratchDir: scratch, restoreDir: join(lv.dataDir, 'restored'), logger: timingsLogger(calls) });
    const guestWrites = async (k: number) => {
      for (let w = 0; w < 20; w++) {
        const off = ((w * 97 + k * 13) % 2000) * MiB;
        await virsh('qemu-monitor-command', dom, '--hmp', `qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -P ${(k % 250) + 1} ${off} 64k"`);
      }
    };
    process.stdout.write(`libvirt begin/end: domain ${dom} (${lv.domainType === 'kvm' ? 'KVM' : 'TCG'}), ${iterations} iterations of 20 guest writes each\n`);

    const steps: Samples = {};
    let base: Checkpoint | null = null;
    for (let k = 0; k < iterations; k++) {
      await guestWrites(k);
      const t0 = now();
      const inst = (await platform.getInstance(projectId, uuid))!;
      const t1 = now();
      const s = await platform.beginBackup(inst, { baseCheckpoint: base });
      const t2 = now();
      const src = s.disks[0]!.source;
      const changed = base ? ((await src.changedExtentsSince!(base.name)) ?? []) : [];
      const buf = Buffer.alloc(128 * KiB);
      for (const e of changed) for (let o = e.offset; o < e.offset + e.length; o += buf.length) await src.read(buf, 0, Math.min(buf.length, e.offset + e.length - o), o);
      const t3 = now();
      s.readsDone?.();
      await s.end('committed');
      const t4 = now();
      if (k < 2) {
        base = s.checkpoint; // the first is a full, the second the first incremental: not counted
        for (const a of Object.values(calls)) a.length = 0;
        continue;
      }
      if (s.warnings.length > 0) throw new Error(`unexpected warnings: ${s.warnings.join('; ')}`);
      base = s.checkpoint;
      push(steps, 'lookup', t1 - t0);
      push(steps, 'begin', t2 - t1);
      push(steps, 'read', t3 - t2);
      push(steps, 'end', t4 - t3);
      push(steps, 'total', t4 - t0);
    }
    process.stdout.write(`Lifeboat (LibvirtPlatform), ms: ${line(steps)}\n  virsh calls: ${line(calls)}\n`);
    await platform.close();
    platform = null;
    process.stdout.write(`bare virsh, the same libvirt work, ms: ${line(await bareVirsh(virsh, dom, scratch, lv.own, iterations, guestWrites))}\n`);
  } finally {
    await platform?.close();
    await shell.close();
    await lv.stop();
  }
}

/**
 * The libvirt work of one incremental by virsh alone, after a first full: redefine the base
 * checkpoint (no parent, no domain XML), backup-begin (pull, a new checkpoint, libvirt makes
 * the scratch file), domjobabort and wait for no job, delete the new checkpoint's metadata and
 * the base with its bitmap. No data is read.
 */
async function bareVirsh(virsh: (...a: string[]) => Promise<string>, dom: string, scratch: string, own: (p: string) => void, iterations: number, guestWrites: (k: number) => Promise<void>): Promise<Samples> {
  const out: Samples = {};
  const xml = join(scratch, '..', 'bare-xml');
  mkdirSync(xml, { recursive: true });
  let base: { name: string; xml: string } | null = null;
  for (let k = 0; k < iterations; k++) {
    await guestWrites(1000 + k);
    const name = `bare-${k}`;
    const job = join(scratch, `bare-${k}`);
    mkdirSync(job, { mode: 0o750 });
    own(job);
    const t0 = now();
    if (base) {
      writeFileSync(join(xml, 'base.xml'), base.xml);
      await virsh('checkpoint-create', dom, join(xml, 'base.xml'), '--redefine');
    }
    const t1 = now();
    const mode = base ? `backupmode='incremental' incremental='${base.name}'` : "backupmode='full'";
    writeFileSync(join(xml, 'backup.xml'), `<domainbackup mode='pull'><server transport='unix' socket='${job}/nbd.sock'/><disks><disk name='vda' backup='yes' type='file' ${mode}><driver type='qcow2'/><scratch file='${job}/vda.scratch'/></disk></disks></domainbackup>`);
    writeFileSync(join(xml, 'cp.xml'), `<domaincheckpoint><name>${name}</name><disks><disk name='vda' checkpoint='bitmap'/></disks></domaincheckpoint>`);
    await virsh('backup-begin', dom, join(xml, 'backup.xml'), join(xml, 'cp.xml'));
    const t2 = now();
    const cpXml = (await virsh('checkpoint-dumpxml', dom, name)).replace(/<parent>[\s\S]*?<\/parent>/, '').replace(/<domain[\s>][\s\S]*<\/domain>/, '');
    await virsh('domjobabort', dom);
    while (/Operation:\s+Backup/.test(await virsh('domjobinfo', dom)));
    const t3 = now();
    await virsh('checkpoint-delete', dom, name, '--metadata');
    if (base) await virsh('checkpoint-delete', dom, base.name);
    const t4 = now();
    base = { name, xml: cpXml };
    if (k < 2) continue;
    push(out, 'redefine', t1 - t0);
    push(out, 'backup-begin', t2 - t1);
    push(out, 'job end', t3 - t2);
    push(out, 'checkpoint deletes', t4 - t3);
    push(out, 'total', t4 - t0);
  }
  return out;
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
