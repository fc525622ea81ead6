import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDemoInventory, writeTestInventory } from './demo-inventory.js';
import { parseInventory } from './inventory.js';
import { LocalPlatform } from './local.platform.js';

const MiB = 1024 * 1024;
const P = 'abcdefabcdefabcdefabcdefabcdefab';

/** Share of 1 MiB regions that are all zero, and the sha256 of the whole file. */
async function profile(file: string): Promise<{ zeroMiB: number; textMiB: number; sha: string }> {
  const data = await readFile(file);
  let zeroMiB = 0;
  let textMiB = 0;
  const zero = Buffer.alloc(MiB);
  for (let off = 0; off < data.length; off += MiB) {
    const part = data.subarray(off, off + MiB);
    if (part.equals(zero)) zeroMiB++;
    else if (/^[a-z \n]+$/.test(part.subarray(0, 4096).toString('latin1'))) textMiB++;
  }
  return { zeroMiB, textMiB, sha: createHash('sha256').update(data).digest('hex') };
}

describe('demo inventory', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-demo-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates two sparse demo VMs with content, reproducibly', async () => {
    const inventoryPath = path.join(dir, 'a', 'inventory.json');
    const res = await ensureDemoInventory({ inventoryPath, diskDir: path.join(dir, 'a', 'disks'), projectId: P, sizeMiB: 64 });
    assert.equal(res.created, true);
    assert.deepEqual(res.instances.map((i) => i.name), ['demo-vm-1', 'demo-vm-2']);
    assert.ok(res.instances[0]?.disks[0]?.image_id && res.instances[0].disks[0].image_name, 'vm-1 is image-backed');
    assert.ok(res.instances[1]?.disks[0]?.volume_id, 'vm-2 is volume-backed');

    const platform = await LocalPlatform.open({ inventoryPath, restoreDir: path.join(dir, 'r') });
    assert.equal((await platform.listInstances(P)).length, 2);

    const profiles = [];
    for (const inst of res.instances) {
      const file = inst.disks[0]!.path;
      const st = await stat(file);
      assert.equal(st.size, 64 * MiB);
      const p = await profile(file);
      profiles.push(p);
      assert.ok(p.zeroMiB >= 64 * 0.4 && p.zeroMiB <= 64 * 0.85, `holes: ${p.zeroMiB} of 64 MiB`);
      assert.ok(p.textMiB >= 4, `text regions: ${p.textMiB}`);
      // Sparse: allocation is about the written regions, well below the size.
      assert.ok(st.blocks * 512 <= (64 - p.zeroMiB) * MiB + MiB, `allocated ${st.blocks * 512} vs data ${(64 - p.zeroMiB) * MiB}`);
    }
    assert.notEqual(profiles[0]?.sha, profiles[1]?.sha);

    // The same call elsewhere produces byte-identical disks and the same ids.
    const again = await ensureDemoInventory({ inventoryPath: path.join(dir, 'b', 'inventory.json'), diskDir: path.join(dir, 'b', 'disks'), projectId: P, sizeMiB: 64 });
    assert.deepEqual(again.instances.map((i) => i.id), res.instances.map((i) => i.id));
    assert.equal((await profile(again.instances[0]!.disks[0]!.path)).sha, profiles[0]?.sha);
    // Shared "base image" start, then different.
    const a = await readFile(res.instances[0]!.disks[0]!.path);
    const b = await readFile(res.instances[1]!.disks[0]!.path);
    assert.ok(a.subarray(0, 4 * MiB).equals(b.subarray(0, 4 * MiB)));
  });

  it('does nothing when the inventory file exists', async () => {
    const inventoryPath = path.join(dir, 'exists.json');
    await writeFile(inventoryPath, '{"instances": []}');
    const res = await ensureDemoInventory({ inventoryPath, diskDir: path.join(dir, 'c'), projectId: P });
    assert.equal(res.created, false);
    assert.equal(await readFile(inventoryPath, 'utf8'), '{"instances": []}');
    await assert.rejects(stat(path.join(dir, 'c')), { code: 'ENOENT' }, 'no disks written');
  });

  it('256 MiB demo disks are sparse and fast', async () => {
    const inventoryPath = path.join(dir, 'big', 'inventory.json');
    const t0 = Date.now();
    const res = await ensureDemoInventory({ inventoryPath, diskDir: path.join(dir, 'big'), projectId: P });
    const ms = Date.now() - t0;
    for (const inst of res.instances) {
      const st = await stat(inst.disks[0]!.path);
      assert.equal(st.size, 256 * MiB);
      assert.ok(st.blocks * 512 < 0.6 * 256 * MiB, `allocated ${st.blocks * 512}`);
      assert.ok(st.blocks * 512 > 0.15 * 256 * MiB, `allocated ${st.blocks * 512}`);
    }
    // Not a timing assertion on the hot path (see ARCHITECTURE bench rule): only a loud diagnostic.
    if (ms > 2000) console.log(`note: demo inventory with two 256 MiB disks took ${ms} ms`);
  });

  it('writeTestInventory writes small disks with the given content', async () => {
    const sub = path.join(dir, 'test-helper');
    const { inventoryPath, instances } = await writeTestInventory(sub, [{ name: 'x', projectId: P, disks: [{ sizeMiB: 2, content: [{ offset: MiB, data: Buffer.from('hello') }] }] }]);
    const parsed = parseInventory(await readFile(inventoryPath, 'utf8'), inventoryPath);
    assert.deepEqual(parsed, instances);
    const data = await readFile(instances[0]!.disks[0]!.path);
    assert.equal(data.length, 2 * MiB);
    assert.equal(data.subarray(MiB, MiB + 5).toString(), 'hello');
    assert.ok(data.subarray(0, MiB).equals(Buffer.alloc(MiB)));
  });
});
