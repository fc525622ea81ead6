/**
 * Request bodies of the tempest flows (spec/workloadmgr-api.md), shared by the tests that run a
 * flow on the local platform (restores.api) and on the loopback OpenStack (openstack-flows).
 */

/** A network as a restore's networks_mapping names it. */
export interface MappedNetwork {
  name: string;
  id: string;
  subnet: { id: string };
}

/** A vdisk of a selective restore (tempest sends its zone and an empty or new volume type). */
export interface RestoreVdisk {
  id: string;
  availability_zone: string;
  new_volume_type: string;
}

/**
 * F8's restore options: a selective restore of `keep` under the name tempest_test_vm_1_restored
 * with `vdisks`, `exclude` left out, no topology, one network mapped from `snapshot` to `target`.
 */
export function f8SelectiveRestoreOptions(o: { keep: string; exclude: string; vdisks: RestoreVdisk[]; snapshot: MappedNetwork; target: MappedNetwork }) {
  return {
    name: 'Tempest_test_restore',
    description: 'Tempest_test_restore_description',
    type: 'openstack',
    oneclickrestore: false,
    restore_type: 'selective',
    openstack: {
      instances: [
        { id: o.keep, include: true, restore_boot_disk: true, name: 'tempest_test_vm_1_restored', availability_zone: 'nova', vdisks: o.vdisks },
        { id: o.exclude, availability_zone: 'nova', include: false },
      ],
      restore_topology: false,
      networks_mapping: { networks: [{ snapshot_network: o.snapshot, target_network: o.target }] },
    },
  };
}
