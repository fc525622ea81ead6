import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NewInstanceSpec } from '../platform.js';
import { busOfDevice, serverBody, type ServerParts } from './restore.js';

/**
 * The POST /servers body of a restored server: every disk at its original device name and on
 * the bus that name stands for, so names of two prefixes (a SCSI `sda` beside a virtio `vda`)
 * are not put on one bus where libvirt numbers them alike. Nova's side is the OpenStack tests'.
 */
const spec: NewInstanceSpec = { name: 'web', availability_zone: '', flavor: { vcpus: 1, ram: 64, disk: 1, ephemeral: 0, name: 'f' }, security_groups: [], nics: [], metadata: {}, disks: [] };
const parts = (over: Partial<ServerParts>): ServerParts => ({ flavorId: 'f1', networks: [], groups: [], volumes: new Map(), rootImage: null, rootDevice: null, keyName: null, tag: { restoreId: 'r1' }, ...over });
type Bdm = Record<string, unknown>;
const bdmOf = (body: Record<string, unknown>) => body.block_device_mapping_v2 as Bdm[];

describe('restored server body', () => {
  it('names a disk bus for sdX (scsi) and vdX (virtio) only', () => {
    assert.equal(busOfDevice('/dev/sda'), 'scsi');
    assert.equal(busOfDevice('/dev/sdab'), 'scsi');
    assert.equal(busOfDevice('/dev/vdb'), 'virtio');
    assert.equal(busOfDevice('vdc'), 'virtio');
    for (const other of ['/dev/hda', '/dev/xvda', '/dev/sda1', '/dev/nvme0n1', '', '/dev/vd']) assert.equal(busOfDevice(other), undefined, other);
  });

  it('a volume-booted original of two prefixes: the first volume boots, each volume on its name bus', () => {
    const body = serverBody(spec, parts({ volumes: new Map([['/dev/sda', 'v-root'], ['/dev/vda', 'v-data']]) }));
    assert.deepEqual(bdmOf(body), [
      { boot_index: 0, uuid: 'v-root', source_type: 'volume', destination_type: 'volume', device_name: '/dev/sda', disk_bus: 'scsi', delete_on_termination: false },
      { boot_index: -1, uuid: 'v-data', source_type: 'volume', destination_type: 'volume', device_name: '/dev/vda', disk_bus: 'virtio', delete_on_termination: false },
    ]);
    assert.equal(body.imageRef, undefined);
  });

  it("a volume-booted original boots from its recorded boot disk, listed first; without one, from the first device name", () => {
    const volumes = new Map([['/dev/vda', 'v-a'], ['/dev/vdb', 'v-b'], ['/dev/vdc', 'v-c']]);
    const boots = (root?: string) => bdmOf(serverBody({ ...spec, ...(root ? { root_device: root } : {}) }, parts({ volumes }))).map((b) => [b.uuid, b.boot_index]);
    assert.deepEqual(boots('/dev/vdb'), [['v-b', 0], ['v-a', -1], ['v-c', -1]]);
    assert.deepEqual(boots(), [['v-a', 0], ['v-b', -1], ['v-c', -1]]);
    assert.deepEqual(boots('/dev/sda'), [['v-a', 0], ['v-b', -1], ['v-c', -1]], 'a boot disk not restored: the first volume');
  });

  it('an image-backed root keeps its device name and bus; a name of no known bus is sent without one', () => {
    const body = serverBody(spec, parts({ rootImage: 'img', rootDevice: '/dev/vda', volumes: new Map([['/dev/hdb', 'v1']]) }));
    assert.deepEqual(bdmOf(body), [
      { boot_index: 0, uuid: 'img', source_type: 'image', destination_type: 'local', device_name: '/dev/vda', disk_bus: 'virtio', delete_on_termination: true },
      { boot_index: -1, uuid: 'v1', source_type: 'volume', destination_type: 'volume', device_name: '/dev/hdb', delete_on_termination: false },
    ]);
    assert.equal(body.imageRef, 'img');
  });
});
