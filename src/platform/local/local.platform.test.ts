import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, readlink, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppError } from '../../lib/errors.js';
import type { NewInstanceSpec } from '../platform.js';
import { writeTestInventory } from './demo-inventory.js';
import { parseInventory } from './inventory.js';
import { LocalPlatform } from './local.platform.js';

const MiB = 1024 * 1024;
const P1 = '11111111111111111111111111111111';
const P2 = '22222222222222222222222222222222';

async function readAll(p: LocalPlatform, projectId: string, id: string, device: string): Promise<Buffer> {
  const inst = await p.getInstance(projectId, id);
  assert.ok(inst);
  const disk = inst.disks.find((d) => d.device === device);
  assert.ok(disk);
  const src = await p.openDiskSource(inst, disk);
  try {
    const buf = Buffer.alloc(src.size);
    assert.equal(await src.read(buf, 0, src.size, 0), src.size);
    return buf;
  } finally {
    await src.close();
  }
}

/** This process's file descriptors open on `file` (Linux /proc). */
async function fdsOpenOn(file: string): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === file) out.push(fd);
  }
  return out;
}

function spec(over: Partial<NewInstanceSpec> = {}): NewInstanceSpec {
  return {
    name: 'restored-vm',
    availability_zone: 'nova',
    flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
    security_groups: ['default'],
    nics: [],
    metadata: { restored_from: 'snap' },
    disks: [
      { device: '/dev/vda', format: 'raw', size: 32 * MiB },
      { device: '/dev/vdb', format: 'raw', size: 4 * MiB, volume_type: 'local' },
    ],
    ...over,
  };
}

describe('LocalPlatform', () => {
  let dir: string;
  let restoreDir: string;
  let inventoryPath: string;
  let platform: LocalPlatform;
  let vm1: string;
  let vm2: string;
  let other: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-local-'));
    restoreDir = path.join(dir, 'restored');
    const inv = await writeTestInventory(dir, [
      { name: 'vm-1', projectId: P1, disks: [{ sizeMiB: 2 }, { sizeMiB: 1, content: [{ offset: 512, data: Buffer.from('vdb data') }] }] },
      { name: 'vm-2', projectId: P1 },
      { name: 'foreign', projectId: P2 },
    ]);
    inventoryPath = inv.inventoryPath;
    [vm1, vm2, other] = inv.instances.map((i) => i.id) as [string, string, string];
    platform = await LocalPlatform.open({ inventoryPath, restoreDir });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists and gets instances of one project only, without image paths', async () => {
    assert.deepEqual((await platform.listInstances(P1)).map((i) => i.name), ['vm-1', 'vm-2']);
    assert.deepEqual((await platform.listInstances(P2)).map((i) => i.name), ['foreign']);
    assert.deepEqual(await platform.listInstances('33333333333333333333333333333333'), []);
    const got = await platform.getInstance(P1, vm1);
    assert.equal(got?.name, 'vm-1');
    assert.deepEqual(got?.disks, [
      { device: '/dev/vda', format: 'raw' },
      { device: '/dev/vdb', format: 'raw' },
    ]);
    // Another project's instance answers exactly like a missing one.
    assert.equal(await platform.getInstance(P1, other), null);
    assert.equal(await platform.getInstance(P1, '00000000-0000-4000-8000-000000000000'), null);
    // Callers get copies: mutating one does not change the inventory.
    got!.name = 'mutated';
    assert.equal((await platform.getInstance(P1, vm1))?.name, 'vm-1');
  });

  it('opens disk sources by inventory lookup, scoped by project', async () => {
    const vdb = await readAll(platform, P1, vm1, '/dev/vdb');
    assert.equal(vdb.length, MiB);
    assert.equal(vdb.subarray(512, 520).toString(), 'vdb data');
    assert.ok(vdb.subarray(0, 512).equals(Buffer.alloc(512)));
    const vda = await readAll(platform, P1, vm1, '/dev/vda');
    assert.equal(vda.length, 2 * MiB);
    assert.equal(vda.subarray(0, 9).toString(), 'vm-1:/dev');
    // A forged Instance claiming P1 for the foreign id is not found.
    const foreign = (await platform.getInstance(P2, other))!;
    await assert.rejects(platform.openDiskSource({ ...foreign, project_id: P1 }, foreign.disks[0]!), { kind: 'not-found' });
    const inst = (await platform.getInstance(P1, vm1))!;
    await assert.rejects(platform.openDiskSource(inst, { device: '/dev/vdz', format: 'raw' }), /Disk \/dev\/vdz of instance vm-1/);
  });

  it('a missing image is a clear error naming instance and device', async () => {
    const inv = parseInventory(await readFile(inventoryPath, 'utf8'), inventoryPath);
    const entry = inv.find((i) => i.id === vm2)!;
    await rm(entry.disks[0]!.path);
    const inst = (await platform.getInstance(P1, vm2))!;
    await assert.rejects(platform.openDiskSource(inst, inst.disks[0]!), (e: unknown) => {
      assert.ok(e instanceof AppError);
      assert.equal(e.kind, 'unavailable');
      assert.equal(e.message, `Disk /dev/vda of instance vm-2 (${vm2}) is unavailable: its image file is missing.`);
      return true;
    });
  });

  it('createInstance + commit + publish adds a sparse restored instance to the inventory', async () => {
    const prepared = await platform.createInstance(P1, spec());
    const id = prepared.instance.id;
    assert.equal(prepared.instance.project_id, P1);
    assert.equal(await platform.getInstance(P1, id), null, 'invisible before publish');
    const data = randomBytes(MiB);
    const vda = prepared.sinks.get('/dev/vda')!;
    await vda.write(data, 5 * MiB);
    await vda.write(Buffer.alloc(8 * MiB), 16 * MiB);
    const vdb = prepared.sinks.get('/dev/vdb')!;
    await vdb.write(Buffer.from('second disk'), 0);
    await assert.rejects(prepared.publish(), /disks not committed: \/dev\/vda, \/dev\/vdb/);
    await vda.commit();
    await vdb.commit();
    const published = await prepared.publish();
    assert.equal(published.id, id);
    assert.deepEqual(await readdir(path.join(restoreDir, id)), ['vda.raw', 'vdb.raw'], 'named <id>/<device basename>.raw, no temp files');

    const listed = await platform.getInstance(P1, id);
    assert.equal(listed?.name, 'restored-vm');
    assert.deepEqual(listed?.metadata, { restored_from: 'snap' });
    assert.ok(listed?.disks[1]?.volume_id, 'a volume disk gets a new volume id');
    assert.equal(await platform.getInstance(P2, id), null);
    const file = path.join(restoreDir, id, 'vda.raw');
    const onDisk = parseInventory(await readFile(inventoryPath, 'utf8'), inventoryPath).find((i) => i.id === id);
    assert.equal(onDisk?.disks[0]?.path, file);

    const st = await stat(file);
    assert.equal(st.size, 32 * MiB);
    assert.ok(st.blocks * 512 < 4 * MiB, `sparse: ${st.blocks * 512} bytes allocated`);
    const back = await readAll(platform, P1, id, '/dev/vda');
    const want = Buffer.alloc(32 * MiB);
    data.copy(want, 5 * MiB);
    assert.ok(back.equals(want));
    assert.equal((await readAll(platform, P1, id, '/dev/vdb')).subarray(0, 11).toString(), 'second disk');
    await prepared.discard(); // no-op after publish
    assert.ok(await platform.getInstance(P1, id));
  });

  it('discard leaves no files and no inventory entry', async () => {
    const before = await readFile(inventoryPath, 'utf8');
    const prepared = await platform.createInstance(P1, spec());
    const id = prepared.instance.id;
    await prepared.sinks.get('/dev/vda')!.write(randomBytes(4096), 0);
    await prepared.sinks.get('/dev/vdb')!.commit(); // one committed, one not
    await prepared.discard();
    await assert.rejects(stat(path.join(restoreDir, id)), { code: 'ENOENT' });
    assert.equal(await readFile(inventoryPath, 'utf8'), before);
    assert.equal(await platform.getInstance(P1, id), null);
  });

  it('rejects bad specs before creating anything', async () => {
    const beforeDirs = await readdir(restoreDir);
    await assert.rejects(platform.createInstance(P1, spec({ disks: [{ device: '../../etc', format: 'raw', size: 1 }] })), /Invalid device name/);
    await assert.rejects(
      platform.createInstance(
        P1,
        spec({
          disks: [
            { device: '/dev/vda', format: 'raw', size: 1 },
            { device: '/dev/vda', format: 'raw', size: 1 },
          ],
        }),
      ),
      /listed twice/,
    );
    await assert.rejects(platform.createInstance(P1, spec({ disks: [{ device: '/dev/vda', format: 'qcow2', size: 1 }] })), /only raw/);
    await assert.rejects(platform.createInstance(P1, spec({ disks: [{ device: '/dev/vda', format: 'raw', size: -1 }] })), /non-negative integer/);
    await assert.rejects(platform.createInstance(P1, spec({ name: '' })), /new instance\.name/);
    await assert.rejects(platform.createInstance('not-a-project', spec()), /Invalid project id/);
    assert.deepEqual(await readdir(restoreDir), beforeDirs);
  });

  it('in-place sinks replace content only on commit; abort keeps the original', async () => {
    const original = await readAll(platform, P1, vm1, '/dev/vda');
    const tokenBefore = await platform.openDiskSource((await platform.getInstance(P1, vm1))!, { device: '/dev/vda', format: 'raw' }).then(async (s) => {
      await s.close();
      return s.changeToken;
    });

    const aborted = await platform.openInPlaceSinks(P1, vm1, [{ device: '/dev/vda', size: 3 * MiB }]);
    await aborted.sinks.get('/dev/vda')!.write(randomBytes(4096), 0);
    assert.ok((await readAll(platform, P1, vm1, '/dev/vda')).equals(original), 'unchanged while writing');
    await aborted.discard();
    assert.ok((await readAll(platform, P1, vm1, '/dev/vda')).equals(original), 'unchanged after abort');

    const inPlace = await platform.openInPlaceSinks(P1, vm1, [{ device: '/dev/vda', size: 3 * MiB }]);
    const data = randomBytes(8192);
    await inPlace.sinks.get('/dev/vda')!.write(data, MiB);
    assert.ok((await readAll(platform, P1, vm1, '/dev/vda')).equals(original), 'unchanged before commit');
    await assert.rejects(inPlace.publish(), /not committed/);
    await inPlace.sinks.get('/dev/vda')!.commit();
    assert.equal((await inPlace.publish()).id, vm1);
    const after = await readAll(platform, P1, vm1, '/dev/vda');
    const want = Buffer.alloc(3 * MiB);
    data.copy(want, MiB);
    assert.ok(after.equals(want), 'new content, resized to the snapshot size');
    const tokenAfter = await platform.openDiskSource((await platform.getInstance(P1, vm1))!, { device: '/dev/vda', format: 'raw' }).then(async (s) => {
      await s.close();
      return s.changeToken;
    });
    assert.notEqual(tokenAfter, tokenBefore);
    // No temp files beside the images.
    const disks = await readdir(path.join(dir, 'disks'));
    assert.deepEqual(disks.filter((n) => n.startsWith('.')), []);
  });

  it('in-place restore through a symlinked image replaces the real file and keeps the link', async () => {
    const real = path.join(dir, 'real-image.raw');
    await writeFile(real, Buffer.alloc(MiB, 1));
    const inv = JSON.parse(await readFile(inventoryPath, 'utf8')) as { instances: { id: string; disks: { path: string }[] }[] };
    const entry = inv.instances.find((i) => i.id === vm2)!;
    const link = entry.disks[0]!.path;
    await rm(link, { force: true });
    await symlink(real, link);
    const prepared = await platform.openInPlaceSinks(P1, vm2, [{ device: '/dev/vda', size: MiB }]);
    await prepared.sinks.get('/dev/vda')!.write(Buffer.from('via link'), 0);
    await prepared.sinks.get('/dev/vda')!.commit();
    assert.ok((await lstat(link)).isSymbolicLink());
    assert.equal((await readFile(real)).subarray(0, 8).toString(), 'via link');
  });

  it('in-place sinks are project scoped and check devices', async () => {
    await assert.rejects(platform.openInPlaceSinks(P1, other, [{ device: '/dev/vda', size: MiB }]), { kind: 'not-found' });
    await assert.rejects(platform.openInPlaceSinks(P1, vm1, [{ device: '/dev/vdq', size: MiB }]), /has no disk \/dev\/vdq/);
  });

  it('beginBackup opens every disk with its change token, no checkpoint; end closes them all', async () => {
    const inst = (await platform.getInstance(P1, vm1))!;
    const session = await platform.beginBackup(inst, { baseCheckpoint: null });
    assert.deepEqual(
      session.disks.map((d) => d.disk.device),
      ['/dev/vda', '/dev/vdb'],
    );
    assert.equal(session.disks[1]!.source.size, MiB);
    assert.equal(session.checkpoint, null);
    assert.deepEqual(session.warnings, []);
    assert.ok(session.disks.every((d) => typeof d.source.changeToken === 'string' && d.source.changedExtentsSince === undefined));
    await session.end('committed');
    await assert.rejects(session.disks[0]!.source.read(Buffer.alloc(1), 0, 1, 0), /closed|EBADF/);
    await session.end('committed'); // idempotent
  });

  it('beginBackup is all or none: a missing image closes the disks already open', async () => {
    const inst = (await platform.getInstance(P1, vm1))!;
    const vdbPath = parseInventory(await readFile(inventoryPath, 'utf8'), 'inventory').find((i) => i.id === vm1)!.disks[1]!.path;
    const vdaPath = await realpath(parseInventory(await readFile(inventoryPath, 'utf8'), 'inventory').find((i) => i.id === vm1)!.disks[0]!.path);
    const open = await platform.beginBackup(inst, { baseCheckpoint: null });
    // One descriptor, or two where the image is also read with O_DIRECT (file-disk.ts).
    assert.ok((await fdsOpenOn(vdaPath)).length >= 1, 'an open session holds the image open (the probe works)');
    await open.end('failed');
    assert.deepEqual(await fdsOpenOn(vdaPath), []);
    const keep = await readFile(vdbPath);
    await rm(vdbPath);
    try {
      await assert.rejects(platform.beginBackup(inst, { baseCheckpoint: null }), /Disk \/dev\/vdb of instance vm-1 .* is unavailable: its image file is missing/);
      assert.deepEqual(await fdsOpenOn(vdaPath), [], 'the vda opened first was closed again');
    } finally {
      await writeFile(vdbPath, keep);
    }
  });

  it('cleanupRestore removes the temp file a killed in-place restore left, and nothing else', async () => {
    const restoreId = '6f1c1f5e-8a39-4c52-9d43-1f0a4e2b7c10';
    const original = await readAll(platform, P1, vm1, '/dev/vda');
    // The worker "dies" holding the sink: neither commit nor abort runs.
    const prepared = await platform.openInPlaceSinks(P1, vm1, [{ device: '/dev/vda', size: MiB }], { restoreId });
    await prepared.sinks.get('/dev/vda')!.write(randomBytes(4096), 0);
    const leftovers = async () => (await readdir(path.join(dir, 'disks'))).filter((n) => n.includes(restoreId));
    assert.equal((await leftovers()).length, 1, 'the leftover is there before cleanup');
    await platform.cleanupRestore(P2, { restoreId }, [vm1]); // another project: finds nothing of P1
    assert.equal((await leftovers()).length, 1);
    await platform.cleanupRestore(P1, { restoreId }, [vm1]);
    assert.deepEqual(await leftovers(), []);
    assert.ok((await readAll(platform, P1, vm1, '/dev/vda')).equals(original), 'the image is untouched');
    await platform.cleanupRestore(P1, { restoreId }, [vm1]); // idempotent
    await prepared.discard(); // closes the dead worker's descriptor in this test process
  });

  it('cleanupRestore removes the partial instance of a killed one-click restore, never a published one', async () => {
    const dead = '0b5a3c2e-1d4f-4a6b-8c7d-9e0f1a2b3c4d';
    const partial = await platform.createInstance(P1, spec(), { restoreId: dead });
    await partial.sinks.get('/dev/vda')!.write(randomBytes(4096), 0);
    await partial.sinks.get('/dev/vdb')!.commit();
    // The same restore published another instance before it died: that one stays.
    const published = await platform.createInstance(P1, spec({ name: 'kept', disks: [{ device: '/dev/vda', format: 'raw', size: MiB }] }), { restoreId: dead });
    await published.sinks.get('/dev/vda')!.commit();
    const kept = await published.publish();
    // Another restore's partial instance (its worker is alive) stays too.
    const alive = await platform.createInstance(P1, spec({ disks: [{ device: '/dev/vda', format: 'raw', size: MiB }] }), { restoreId: '7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e1f' });

    const entries = async () => (await readdir(restoreDir)).sort();
    assert.ok((await entries()).includes(partial.instance.id), 'the leftover is there before cleanup');
    await platform.cleanupRestore(P1, { restoreId: dead }, []);
    const after = await entries();
    assert.ok(!after.includes(partial.instance.id), 'partial instance directory removed');
    assert.ok(after.includes(kept.id), 'published instance kept');
    assert.ok(after.includes(alive.instance.id), "a live restore's instance kept");
    assert.deepEqual(
      after.filter((n) => n.startsWith('.')),
      [`.partial.7c8d9e0f-1a2b-4c3d-8e5f-6a7b8c9d0e1f.${alive.instance.id}`],
      "only the live restore's marker remains",
    );
    assert.equal((await platform.getInstance(P1, partial.instance.id)), null);
    await partial.discard();
    await alive.discard();
    assert.deepEqual((await entries()).filter((n) => n.startsWith('.')), [], 'discard removes its marker');
  });

  it('picks up inventory edits made while running', async () => {
    const text = await readFile(inventoryPath, 'utf8');
    const doc = JSON.parse(text) as { instances: { name: string; id: string }[] };
    doc.instances.find((i) => i.id === vm2)!.name = 'vm-2-renamed';
    await writeFile(inventoryPath, JSON.stringify(doc));
    assert.equal((await platform.getInstance(P1, vm2))?.name, 'vm-2-renamed');
  });
});
