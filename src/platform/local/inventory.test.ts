import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { InventoryFile, parseInventory, validateInventory, validateInventoryDoc } from './inventory.js';

const P1 = '0123456789abcdef0123456789abcdef';

function vm(over: Record<string, unknown> = {}, i = 1): Record<string, unknown> {
  return {
    id: `00000000-0000-4000-8000-00000000000${i}`,
    name: `vm-${i}`,
    project_id: P1,
    status: 'ACTIVE',
    availability_zone: 'nova',
    flavor: { vcpus: 1, ram: 512, disk: 1, ephemeral: 0 },
    security_groups: ['default'],
    nics: [
      {
        mac_address: 'fa:16:3e:00:00:01',
        ip_address: '10.0.0.5',
        network: {
          id: '00000000-0000-4000-8000-0000000000aa',
          name: 'private',
          subnet: { id: '00000000-0000-4000-8000-0000000000bb', name: 'private-subnet', cidr: '10.0.0.0/24', ip_version: 4, gateway_ip: '10.0.0.1' },
        },
      },
    ],
    disks: [{ device: '/dev/vda', path: `/srv/vm-${i}-vda.raw`, format: 'raw' }],
    metadata: {},
    ...over,
  };
}

/** Asserts validation fails and the message contains every `parts` string. */
function rejects(doc: unknown, ...parts: string[]): void {
  assert.throws(
    () => validateInventory(doc, 'inv.json'),
    (e: unknown) => {
      assert.ok(e instanceof ValidationError, `expected ValidationError, got ${String(e)}`);
      for (const p of parts) assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
      return true;
    },
  );
}

function captureLogger(): Logger & { errors: string[]; warns: string[] } {
  const errors: string[] = [];
  const warns: string[] = [];
  const log = {
    errors,
    warns,
    info() {},
    debug() {},
    warn(o: object | string, msg?: string) {
      warns.push(`${msg ?? ''} ${JSON.stringify(o)}`);
    },
    error(o: object | string, msg?: string) {
      errors.push(`${msg ?? ''} ${JSON.stringify(o)}`);
    },
    child() {
      return log;
    },
  };
  return log;
}

describe('inventory validation', () => {
  it('accepts a valid inventory and fills defaults', () => {
    const [a, b] = validateInventory({ instances: [vm(), vm({ status: undefined, availability_zone: undefined, nics: undefined, security_groups: undefined, metadata: undefined }, 2)] });
    assert.equal(a?.name, 'vm-1');
    assert.equal(b?.status, 'ACTIVE');
    assert.equal(b?.availability_zone, 'nova');
    assert.deepEqual(b?.nics, []);
    assert.deepEqual(b?.metadata, {});
    assert.deepEqual(validateInventory({ instances: [] }), []);
  });

  it('rejects bad JSON and a bad top level', () => {
    assert.throws(() => parseInventory('{"instances": [', 'inv.json'), /Invalid inventory inv\.json: not valid JSON/);
    rejects([], '(top level): must be an object');
    rejects({}, '(top level).instances: is required');
    rejects({ instances: [], extra: 1 }, '(top level).extra: unknown field');
  });

  it('names the instance index and field', () => {
    rejects({ instances: [vm(), vm({ id: 'nope' }, 2)] }, 'instances[1].id: must be a lowercase UUID (got "nope")');
    rejects({ instances: [vm({ id: '00000000-0000-4000-8000-00000000000A' })] }, 'instances[0].id: must be a lowercase UUID');
    rejects({ instances: [vm({ project_id: 'demo' })] }, 'instances[0].project_id: must be 32 lowercase hex');
    rejects({ instances: [vm({ name: '' })] }, 'instances[0].name: must be a non-empty string');
    rejects({ instances: [vm({ flavor: { vcpus: 0, ram: 512, disk: 1, ephemeral: 0 } })] }, 'instances[0].flavor.vcpus: must be an integer >= 1');
    rejects({ instances: [vm({ status: 'active' })] }, 'instances[0].status');
    rejects({ instances: [vm({ metadata: { a: 1 } })] }, 'instances[0].metadata.a: must be a string');
    rejects({ instances: [vm({ volumeid: 'x' })] }, 'instances[0].volumeid: unknown field');
    rejects({ instances: [vm({ disks: undefined })] }, 'instances[0].disks: is required');
  });

  it('checks nics', () => {
    const nic = (over: Record<string, unknown>) => vm({ nics: [{ ...(vm().nics as Record<string, unknown>[])[0], ...over }] });
    rejects({ instances: [nic({ mac_address: 'fa:16:3e' })] }, 'instances[0].nics[0].mac_address');
    rejects({ instances: [nic({ ip_address: '10.0.0.999' })] }, 'instances[0].nics[0].ip_address: must be an IPv4 or IPv6 address');
    rejects(
      { instances: [nic({ network: { id: '00000000-0000-4000-8000-0000000000aa', name: 'n', subnet: { id: '00000000-0000-4000-8000-0000000000bb', name: 's', cidr: '10.0.0.0/24', ip_version: 6, gateway_ip: null } } })] },
      'instances[0].nics[0].network.subnet.cidr: is IPv4 but ip_version is 6',
    );
  });

  it('rejects duplicate ids, duplicate devices, shared images', () => {
    rejects({ instances: [vm(), vm({ id: vm().id, disks: [{ device: '/dev/vda', path: '/srv/other.raw' }] }, 2)] }, 'instances[1].id: duplicate instance id 00000000-0000-4000-8000-000000000001 (also instances[0])');
    rejects(
      {
        instances: [
          vm({
            disks: [
              { device: '/dev/vda', path: '/srv/a.raw', format: 'raw' },
              { device: '/dev/vda', path: '/srv/b.raw', format: 'raw' },
            ],
          }),
        ],
      },
      'instances[0].disks[1].device: duplicate device /dev/vda within the instance',
    );
    rejects({ instances: [vm(), vm({ disks: [{ device: '/dev/vda', path: '/srv/vm-1-vda.raw', format: 'raw' }] }, 2)] }, 'instances[1].disks[0].path: image /srv/vm-1-vda.raw is already used by instances[0].disks[0]');
  });

  it('rejects relative or unnormalized paths, non-raw formats, bad device names', () => {
    rejects({ instances: [vm({ disks: [{ device: '/dev/vda', path: 'vm-1.raw', format: 'raw' }] })] }, 'instances[0].disks[0].path: must be an absolute path (got "vm-1.raw")');
    rejects({ instances: [vm({ disks: [{ device: '/dev/vda', path: '/srv/../etc/x.raw', format: 'raw' }] })] }, 'instances[0].disks[0].path: must be a normalized path');
    rejects({ instances: [vm({ disks: [{ device: '/dev/vda', path: '/srv/a.qcow2', format: 'qcow2' }] })] }, 'instances[0].disks[0].format: only "raw"', 'qcow2');
    rejects({ instances: [vm({ disks: [{ device: 'vda/../../x', path: '/srv/a.raw', format: 'raw' }] })] }, 'instances[0].disks[0].device: must be a device name');
    rejects({ instances: [vm({ disks: [{ device: '/dev/vda', path: '/srv/a.raw', volume_id: 'vol-1' }] })] }, 'instances[0].disks[0].volume_id: must be a lowercase UUID');
  });

  it('declared networks: validated, ids unique, project_id absent (shared) or a project', () => {
    const sub = { id: '00000000-0000-4000-8000-0000000000cc', name: 'dmz-subnet', cidr: '192.0.2.0/24', ip_version: 4, gateway_ip: null };
    const doc = validateInventoryDoc({ instances: [vm()], networks: [{ id: '00000000-0000-4000-8000-0000000000c1', name: 'dmz', subnets: [sub] }, { id: '00000000-0000-4000-8000-0000000000c2', name: 'own', project_id: P1 }] });
    assert.deepEqual(doc.networks, [
      { id: '00000000-0000-4000-8000-0000000000c1', name: 'dmz', project_id: null, subnets: [sub] },
      { id: '00000000-0000-4000-8000-0000000000c2', name: 'own', project_id: P1, subnets: [] },
    ]);
    assert.equal(doc.instances.length, 1);
    const id = '00000000-0000-4000-8000-0000000000c1';
    rejects({ instances: [], networks: [{ id, name: 'a' }, { id, name: 'b' }] }, `networks[1].id: duplicate network id ${id} (also networks[0])`);
    rejects({ instances: [], networks: [{ id: 'x', name: 'a', project_id: 'P', subnets: [{ id, name: 's', cidr: '10.0.0.0/99', ip_version: 4 }], color: 'red' }] }, 'networks[0].id', 'networks[0].project_id: must be 32 lowercase hex', 'networks[0].subnets[0].cidr', 'networks[0].color: unknown field');
    rejects({ instances: [], networks: {} }, 'networks');
  });

  it('lists several problems in one message', () => {
    rejects({ instances: [vm({ name: 1 }), vm({ flavor: {} }, 2)] }, 'instances[0].name', 'instances[1].flavor.vcpus: is required', 'instances[1].flavor.ram: is required');
  });
});

describe('InventoryFile', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lifeboat-inv-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const doc = (...instances: unknown[]) => `${JSON.stringify({ instances }, null, 2)}\n`;

  it('treats a missing file as empty, and load() fails fast on an invalid file', async () => {
    const inv = new InventoryFile({ path: path.join(dir, 'missing.json') });
    assert.deepEqual(await inv.load(), []);
    const bad = path.join(dir, 'bad-at-start.json');
    await writeFile(bad, doc(vm({ project_id: 'x' })));
    await assert.rejects(new InventoryFile({ path: bad }).load(), /instances\[0\]\.project_id/);
    // Without the strict load, a bad file at start is an empty inventory plus a logged error.
    const log = captureLogger();
    assert.deepEqual(await new InventoryFile({ path: bad, logger: log }).instances(), []);
    assert.equal(log.errors.length, 1);
  });

  it('reloads after an in-place edit and after replace-by-rename', async () => {
    const file = path.join(dir, 'reload.json');
    await writeFile(file, doc(vm()));
    const inv = new InventoryFile({ path: file });
    assert.deepEqual((await inv.load()).map((i) => i.name), ['vm-1']);
    assert.equal(await inv.instances(), await inv.instances(), 'unchanged file: same cached array, no re-read');

    await writeFile(file, doc(vm(), vm({}, 2))); // in place
    assert.deepEqual((await inv.instances()).map((i) => i.name), ['vm-1', 'vm-2']);

    const tmp = path.join(dir, 'reload.json.new');
    await writeFile(tmp, doc(vm({ name: 'renamed' }, 3))); // replace by rename (editors, config management)
    await rename(tmp, file);
    assert.deepEqual((await inv.instances()).map((i) => i.name), ['renamed']);

    await rm(file);
    assert.deepEqual(await inv.instances(), []);
  });

  it('keeps the last good inventory when the file turns invalid, and reports it once', async () => {
    const file = path.join(dir, 'lastgood.json');
    await writeFile(file, doc(vm()));
    const log = captureLogger();
    const inv = new InventoryFile({ path: file, logger: log });
    await inv.load();
    await writeFile(file, doc(vm({ disks: [{ device: '/dev/vda', path: 'relative.raw' }] })));
    assert.deepEqual((await inv.instances()).map((i) => i.name), ['vm-1']);
    await inv.instances();
    assert.equal(log.errors.length, 1);
    assert.match(log.errors[0] ?? '', /keeping the last good inventory.*instances\[0\]\.disks\[0\]\.path: must be an absolute path/);
    await writeFile(file, '{ not json');
    assert.deepEqual((await inv.instances()).map((i) => i.name), ['vm-1']);
    assert.equal(log.errors.length, 2);
    await writeFile(file, doc(vm({ name: 'fixed' })));
    assert.deepEqual((await inv.instances()).map((i) => i.name), ['fixed']);
  });

  it('writes merge with hand edits made meanwhile, atomically, leaving no temp files', async () => {
    const sub = await mkdtemp(path.join(dir, 'merge-'));
    const file = path.join(sub, 'inventory.json');
    await writeFile(file, doc(vm()));
    const inv = new InventoryFile({ path: file });
    await inv.load();
    await writeFile(file, doc(vm(), vm({}, 2))); // hand edit the object has not seen
    const added = validateInventory({ instances: [vm({}, 3)] })[0];
    assert.ok(added);
    // Concurrent writes are serialized: both land.
    await Promise.all([inv.addInstance(added), inv.addInstance(validateInventory({ instances: [vm({}, 4)] })[0] ?? added)]);
    const onDisk = parseInventory(await readFile(file, 'utf8'), file);
    assert.deepEqual(onDisk.map((i) => i.name), ['vm-1', 'vm-2', 'vm-3', 'vm-4']);
    assert.deepEqual((await inv.instances()).map((i) => i.name), ['vm-1', 'vm-2', 'vm-3', 'vm-4']);
    assert.deepEqual(await readdir(sub), ['inventory.json']);
    // A duplicate id is refused and the file is unchanged.
    await assert.rejects(inv.addInstance(added), /duplicate instance id/);
    assert.equal(parseInventory(await readFile(file, 'utf8'), file).length, 4);
    assert.deepEqual(await readdir(sub), ['inventory.json']);
  });

  it('refuses to write over an invalid file and creates a missing one', async () => {
    const sub = await mkdtemp(path.join(dir, 'refuse-'));
    const file = path.join(sub, 'inventory.json');
    const inv = new InventoryFile({ path: file });
    const entry = validateInventory({ instances: [vm()] })[0];
    assert.ok(entry);
    await writeFile(file, '{"instances": [ half an edit');
    await assert.rejects(inv.addInstance(entry), /Cannot update the inventory: .*not valid JSON.*Fix the file/);
    assert.equal(await readFile(file, 'utf8'), '{"instances": [ half an edit');
    await rm(file);
    await inv.addInstance(entry);
    assert.deepEqual(parseInventory(await readFile(file, 'utf8'), file).map((i) => i.id), [entry.id]);
  });
});
