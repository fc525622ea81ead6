import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../../lib/errors.js';
import { isHexId } from '../../lib/ids.js';
import { hasCode, writeFileAtomic } from '../disk-io/atomic-file.js';
import { validateInventory, type InventoryInstance } from './inventory.js';

/**
 * Demo VMs for `serve --demo`, and a tiny helper that writes inventories for tests.
 *
 * Demo disks are reproducible: their bytes depend only on the VM name and size (seeded PRNG for
 * text, AES-CTR keystream for "random" data), so two runs give identical images. Ids are
 * derived from project id and name, so re-creating the demo for a project gives the same ids.
 */

const MiB = 1024 * 1024;

export interface DemoInventoryOptions {
  inventoryPath: string;
  /** Directory for the demo images (`demo-vm-1-vda.raw`, ...); created if needed. */
  diskDir: string;
  /** 32-hex project that owns the demo VMs. */
  projectId: string;
  sizeMiB?: number;
}

export interface DemoInventoryResult {
  /** false when the inventory file already existed: nothing was touched. */
  created: boolean;
  inventoryPath: string;
  /** The instances written, with image paths (empty when created is false). */
  instances: InventoryInstance[];
}

/**
 * Creates two demo VMs (demo-vm-1 image-backed, demo-vm-2 volume-backed), each with one sparse
 * raw disk /dev/vda of `sizeMiB`: about 20 % text-like data, 12 % random data, the rest holes;
 * the first 4 MiB are the same "base image" on both (so dedup has something to find).
 *
 * Only when the inventory file does not exist. The images are written first and the inventory
 * last, published with no-clobber semantics, so a crash leaves no inventory (the next call
 * simply rewrites the images) and a concurrent caller that won the race is not overwritten.
 */
export async function ensureDemoInventory(opts: DemoInventoryOptions): Promise<DemoInventoryResult> {
  const inventoryPath = path.resolve(opts.inventoryPath);
  const diskDir = path.resolve(opts.diskDir);
  const sizeMiB = opts.sizeMiB ?? 256;
  if (!isHexId(opts.projectId)) throw new ValidationError(`Demo project id must be 32 lowercase hex characters (got ${JSON.stringify(opts.projectId)})`);
  if (!Number.isSafeInteger(sizeMiB) || sizeMiB < 8) throw new ValidationError(`Demo disk size must be an integer >= 8 MiB (got ${sizeMiB})`);
  if (await exists(inventoryPath)) return { created: false, inventoryPath, instances: [] };

  const pid = opts.projectId;
  const id = (label: string): string => stableUuid(`${pid}:${label}`);
  const privateNet = {
    id: id('net-private'),
    name: 'private',
    subnet: { id: id('subnet-private'), name: 'private-subnet', cidr: '10.0.0.0/24', ip_version: 4, gateway_ip: '10.0.0.1' },
  };
  const publicNet = {
    id: id('net-public'),
    name: 'public',
    subnet: { id: id('subnet-public'), name: 'public-subnet', cidr: '172.24.4.0/24', ip_version: 4, gateway_ip: '172.24.4.1' },
  };
  const instances: InventoryInstance[] = [
    {
      id: id('demo-vm-1'),
      name: 'demo-vm-1',
      project_id: pid,
      status: 'ACTIVE',
      availability_zone: 'nova',
      flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
      security_groups: ['default'],
      nics: [{ mac_address: 'fa:16:3e:1b:00:01', ip_address: '10.0.0.11', network: privateNet }],
      disks: [
        {
          device: '/dev/vda',
          path: path.join(diskDir, 'demo-vm-1-vda.raw'),
          format: 'raw',
          image_id: id('image-cirros'),
          image_name: 'cirros-0.6.2-x86_64-disk',
        },
      ],
      metadata: { role: 'web', demo: 'true' },
    },
    {
      id: id('demo-vm-2'),
      name: 'demo-vm-2',
      project_id: pid,
      status: 'ACTIVE',
      availability_zone: 'nova',
      flavor: { vcpus: 2, ram: 2048, disk: 0, ephemeral: 0 },
      security_groups: ['default', 'ssh'],
      nics: [
        { mac_address: 'fa:16:3e:1b:00:02', ip_address: '10.0.0.12', network: privateNet },
        { mac_address: 'fa:16:3e:1b:00:03', ip_address: '172.24.4.12', network: publicNet },
      ],
      disks: [
        {
          device: '/dev/vda',
          path: path.join(diskDir, 'demo-vm-2-vda.raw'),
          format: 'raw',
          volume_id: id('volume-demo-vm-2'),
          volume_type: 'local',
        },
      ],
      metadata: { role: 'db', demo: 'true' },
    },
  ];
  validateInventory({ instances }, 'demo inventory'); // a bug here should fail loudly, not write junk

  await mkdir(diskDir, { recursive: true });
  await Promise.all(instances.map((inst) => writeDemoDisk((inst.disks[0] as { path: string }).path, inst.name, sizeMiB)));
  try {
    await writeFileAtomic(inventoryPath, `${JSON.stringify({ instances }, null, 2)}\n`, { noClobber: true, mode: 0o600 });
  } catch (e) {
    if (hasCode(e, 'EEXIST')) return { created: false, inventoryPath, instances: [] };
    throw e;
  }
  return { created: true, inventoryPath, instances };
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (e) {
    if (hasCode(e, 'ENOENT')) return false;
    throw e;
  }
}

/** A UUID (version-4 layout) derived from a label: stable across runs, distinct per label. */
function stableUuid(label: string): string {
  const h = createHash('sha256').update(`lifeboat-demo:${label}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x40;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** mulberry32: a tiny seeded PRNG (not cryptographic; only for reproducible demo content). */
function prng(seed: string): () => number {
  let a = createHash('sha256').update(seed).digest().readUInt32LE(0);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'to', 'sa', 'vi', 'den', 'mor', 'tal', 'pex', 'qui', 'zor', 'bel', 'fin', 'ga', 'hu', 'jo', 'ster', 'wen', 'dra', 'cor', 'lin'];

/** 512 pseudo-words built from syllables, fixed for every run. */
const WORDS: Uint8Array[] = (() => {
  const rnd = prng('lifeboat-demo-words');
  const out: Uint8Array[] = [];
  for (let i = 0; i < 512; i++) {
    let w = '';
    const n = 1 + Math.floor(rnd() * 4);
    for (let j = 0; j < n; j++) w += SYLLABLES[Math.floor(rnd() * SYLLABLES.length)];
    out.push(Buffer.from(w, 'latin1'));
  }
  return out;
})();

/** Fills `buf` with lines of pseudo-words (compressible, but no two MiB alike). */
function fillText(buf: Buffer, rnd: () => number): void {
  let pos = 0;
  let inLine = 0;
  const n = buf.length;
  while (pos < n) {
    const w = WORDS[Math.floor(rnd() * WORDS.length)] as Uint8Array;
    for (let k = 0; k < w.length && pos < n; k++) buf[pos++] = w[k] as number;
    if (pos >= n) break;
    inLine++;
    if (inLine >= 8 + ((w.length * 7) & 7)) {
      buf[pos++] = 0x0a; // '\n'
      inLine = 0;
    } else {
      buf[pos++] = 0x20; // ' '
    }
  }
}

type Region = 'text' | 'random' | 'hole';

/**
 * Writes one demo image: truncate to size (all holes), then positional writes of the data
 * regions only, so unwritten MiBs stay holes. Regions come in runs of 1–8 MiB.
 */
async function writeDemoDisk(file: string, seed: string, sizeMiB: number): Promise<void> {
  const rnd = prng(`disk:${seed}:${sizeMiB}`);
  const baseRnd = prng('base-image');
  const key = createHash('sha256').update(`lifeboat-demo-random:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(MiB);
  const buf = Buffer.allocUnsafe(MiB);

  const fh = await open(file, 'w', 0o600); // a tenant's disk: owner only
  try {
    await fh.truncate(sizeMiB * MiB);
    let mib = 0;
    while (mib < sizeMiB) {
      let kind: Region;
      let len: number;
      if (mib < 4) {
        kind = 'text'; // the shared "base image" at the start of every demo disk
        len = 4;
      } else {
        const r = rnd();
        kind = r < 0.2 ? 'text' : r < 0.32 ? 'random' : 'hole';
        len = 1 + Math.floor(rnd() * 8);
      }
      len = Math.min(len, sizeMiB - mib);
      for (let i = 0; i < len; i++, mib++) {
        if (kind === 'hole') continue;
        if (kind === 'random') {
          await fh.write(cipher.update(zeros), 0, MiB, mib * MiB);
        } else {
          fillText(buf, mib < 4 ? baseRnd : rnd);
          await fh.write(buf, 0, MiB, mib * MiB);
        }
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Test helper (used by tests of other layers too).

export interface TestDiskSpec {
  device?: string; // default /dev/vda, /dev/vdb, ...
  sizeMiB?: number; // default 4
  /** Data to put at offsets; everything else is holes. Default: 64 KiB of the VM name at 0 and at 1 MiB. */
  content?: { offset: number; data: Buffer }[];
  volume_id?: string;
}

export interface TestVmSpec {
  name: string;
  projectId: string;
  id?: string; // default: a stable uuid from projectId and name
  disks?: TestDiskSpec[]; // default: one disk with the defaults above
}

/**
 * Writes small sparse raw images `<dir>/disks/<instance-id>-<vda>.raw` and `<dir>/inventory.json`
 * listing the VMs (replacing any previous one). Returns the inventory path and the entries.
 */
export async function writeTestInventory(dir: string, vms: TestVmSpec[]): Promise<{ inventoryPath: string; instances: InventoryInstance[] }> {
  const root = path.resolve(dir);
  const diskDir = path.join(root, 'disks');
  await mkdir(diskDir, { recursive: true });
  const instances: InventoryInstance[] = [];
  for (const vm of vms) {
    const id = vm.id ?? stableUuid(`test:${vm.projectId}:${vm.name}`);
    const specs = vm.disks ?? [{}];
    const disks = [];
    for (const [i, d] of specs.entries()) {
      const device = d.device ?? `/dev/vd${String.fromCharCode(97 + i)}`;
      const file = path.join(diskDir, `${id}-${path.basename(device)}.raw`);
      const fill = Buffer.alloc(64 * 1024, `${vm.name}:${device};`);
      const content = d.content ?? [
        { offset: 0, data: fill },
        { offset: MiB, data: fill },
      ];
      const fh = await open(file, 'w', 0o644);
      try {
        await fh.truncate((d.sizeMiB ?? 4) * MiB);
        for (const c of content) await fh.write(c.data, 0, c.data.length, c.offset);
      } finally {
        await fh.close();
      }
      disks.push({ device, path: file, format: 'raw', ...(d.volume_id ? { volume_id: d.volume_id, volume_type: 'local' } : {}) });
    }
    instances.push({
      id,
      name: vm.name,
      project_id: vm.projectId,
      status: 'ACTIVE',
      availability_zone: 'nova',
      flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
      security_groups: ['default'],
      nics: [],
      disks,
      metadata: {},
    });
  }
  const checked = validateInventory({ instances }, 'test inventory');
  const inventoryPath = path.join(root, 'inventory.json');
  await writeFileAtomic(inventoryPath, `${JSON.stringify({ instances }, null, 2)}\n`);
  return { inventoryPath, instances: checked };
}
